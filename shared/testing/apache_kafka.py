"""A real single-node Apache Kafka 4.x broker (KRaft) for tests and CI.

No Docker and no kafka.apache.org: the broker jars come from Maven Central via
``deploy/kafka/pom.xml`` (``deploy/kafka/fetch-kafka.sh``, cached under
``~/.cache/borgerblik/kafka/<version>/libs`` or ``$BORGERBLIK_KAFKA_HOME/libs``),
and the broker is launched by ``deploy/kafka/run-kafka.sh`` (the same script a
developer runs by hand), which needs ``java`` (17+) and, on first use, ``mvn``.

Usage::

    from shared.testing.apache_kafka import ApacheKafkaBroker

    broker = ApacheKafkaBroker(tmp_path / "kafka")      # free port picked for you
    broker.start()                                      # blocks until metadata answers
    ... AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers) ...
    broker.restart()                                    # same port, same data dir
    broker.stop()

    # inside a running event loop, prefer the non-blocking wrappers:
    await broker.astart(); await broker.arestart(); await broker.astop()

    # or as a context manager:
    with ApacheKafkaBroker(path) as broker: ...

From a shell::

    python -m shared.testing.apache_kafka --port 9092 --data-dir /tmp/x

Only the standard library is used here (readiness is checked with a hand-made
Metadata v4 request over a plain socket, so it works from sync and async code).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

__all__ = [
    "ApacheKafkaBroker",
    "KafkaBrokerError",
    "DEPLOY_DIR",
    "ensure_kafka_jars",
    "java_available",
    "kafka_version",
    "free_port",
]

DEPLOY_DIR = Path(
    os.environ.get("BORGERBLIK_KAFKA_DEPLOY_DIR")
    or Path(__file__).resolve().parents[2] / "deploy" / "kafka"
)
FETCH_SCRIPT = DEPLOY_DIR / "fetch-kafka.sh"
RUN_SCRIPT = DEPLOY_DIR / "run-kafka.sh"
HOST = "127.0.0.1"
NODE_ID = 1


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, started or stopped."""


def java_available() -> bool:
    """True when a ``java`` executable (or ``$JAVA``) is on the PATH."""
    return shutil.which(os.environ.get("JAVA", "java")) is not None


def kafka_version() -> str:
    """The Kafka version in use: ``$BORGERBLIK_KAFKA_VERSION`` or the pom's default."""
    env = os.environ.get("BORGERBLIK_KAFKA_VERSION")
    if env:
        return env
    text = (DEPLOY_DIR / "pom.xml").read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)].strip()


def ensure_kafka_jars() -> Path:
    """Fetch the broker jars from Maven Central unless cached; return the libs dir.

    Idempotent and cheap once cached (mvn is not run at all then). Safe to call
    from several processes at once (fetch-kafka.sh takes a file lock).
    """
    if not FETCH_SCRIPT.exists():
        raise KafkaBrokerError(f"{FETCH_SCRIPT} not found (set BORGERBLIK_KAFKA_DEPLOY_DIR?)")
    proc = subprocess.run(
        ["bash", str(FETCH_SCRIPT)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise KafkaBrokerError(
            f"fetching the Kafka jars failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise KafkaBrokerError(f"fetch-kafka.sh printed no libs directory:\n{proc.stderr[-4000:]}")
    libs = Path(lines[-1])
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaBrokerError(f"no kafka_2.13 jar in {libs}")
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _metadata_brokers(port: int, timeout: float = 2.0) -> list[tuple[int, str, int]]:
    """Send a Metadata v4 request (no topics) and return the live brokers.

    Metadata v4 is the oldest version Kafka 4.x still accepts (KIP-896) and the
    newest non-flexible one, so a fixed layout can be hand-encoded here.
    """
    client_id = b"borgerblik-readiness"
    correlation_id = 0x0B0B
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body += struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation=false
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals

    def string() -> str | None:
        nonlocal pos
        (n,) = take(">h")
        if n < 0:
            return None
        s = data[pos : pos + n].decode()
        pos += n
        return s

    (corr,) = take(">i")
    if corr != correlation_id:
        raise ConnectionError(f"unexpected correlation id {corr}")
    take(">i")  # throttle_time_ms
    (count,) = take(">i")
    brokers = []
    for _ in range(max(count, 0)):
        (node_id,) = take(">i")
        host = string() or ""
        (bport,) = take(">i")
        string()  # rack
        brokers.append((node_id, host, bport))
    return brokers


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path})"
    return "\n".join(text[-lines:])


_LIVE: "weakref.WeakSet[ApacheKafkaBroker]" = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:  # pragma: no cover - safety net
    for broker in list(_LIVE):
        try:
            broker.stop(timeout=10)
        except Exception:
            pass


class ApacheKafkaBroker:
    """A real Apache Kafka broker+controller (KRaft, node.id=1) as a subprocess.

    ``data_dir`` holds everything (config, ``data/`` = log.dirs, ``logs/``); keep
    it to keep the broker's state. ``port`` is the PLAINTEXT port on 127.0.0.1;
    when omitted a free one is picked and then kept for the object's lifetime,
    as is the KRaft controller port, so :meth:`restart` comes back on the same
    address with the same topics, records and committed offsets.

    ``heap_opts`` (e.g. ``"-Xms128m -Xmx512m"``, the default) and
    ``extra_properties`` (extra server.properties entries) are passed to
    run-kafka.sh; the other ``BORGERBLIK_KAFKA_*`` variables of the environment
    apply as documented there.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        heap_opts: str | None = None,
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._port_given = port is not None
        self._port: int = port if port is not None else free_port()
        self._controller_port: int | None = None
        self._ever_started = False
        self.heap_opts = heap_opts
        self.extra_properties = dict(extra_properties or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None

    # ------------------------------------------------------------------ info
    @property
    def port(self) -> int:
        return self._port

    @property
    def controller_port(self) -> int | None:
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        """The broker's own log (log4j2)."""
        return self.data_dir / "logs" / "server.log"

    @property
    def console_path(self) -> Path:
        """stdout/stderr of run-kafka.sh and the JVM (normally near-empty)."""
        return self.data_dir / "logs" / "console.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<ApacheKafkaBroker {self.bootstrap_servers} {state} data_dir={self.data_dir}>"

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 90) -> None:
        """Start the broker and block until it answers a metadata request.

        Fetches the jars first if needed (the download is not counted in
        ``timeout``). Raises :class:`KafkaBrokerError` with the log's tail if the
        broker exits or is not ready within ``timeout`` seconds.
        """
        if self.is_running():
            return
        if not java_available():
            raise KafkaBrokerError("java not found on PATH (Kafka 4.x needs Java 17+)")
        ensure_kafka_jars()

        if _port_in_use(self._port):
            if self._port_given or self._ever_started:
                raise KafkaBrokerError(f"{self.bootstrap_servers} is already in use")
            self._port = free_port()
        if self._controller_port is None:
            self._controller_port = self._read_controller_port()
        if (
            self._controller_port is None
            or self._controller_port == self._port
            or _port_in_use(self._controller_port)
        ):
            # With a static controller.quorum.voters the controller port is not
            # stored in the metadata log, so moving it on restart is harmless.
            self._controller_port = free_port()

        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["BORGERBLIK_KAFKA_CONTROLLER_PORT"] = str(self._controller_port)
        if self.heap_opts:  # else $BORGERBLIK_KAFKA_HEAP_OPTS or run-kafka.sh's -Xms128m -Xmx512m
            env["BORGERBLIK_KAFKA_HEAP_OPTS"] = self.heap_opts
        env["BORGERBLIK_KAFKA_PARENT_PID"] = str(os.getpid())
        if self.extra_properties:
            env["BORGERBLIK_KAFKA_EXTRA_PROPERTIES"] = "\n".join(
                f"{k}={v}" for k, v in self.extra_properties.items()
            )
        t0 = time.monotonic()
        with open(self.console_path, "ab") as console:
            console.write(f"--- start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            console.flush()
            self._proc = subprocess.Popen(
                ["bash", str(RUN_SCRIPT), str(self._port), str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: Ctrl-C in the test runner doesn't hit it
            )
        _LIVE.add(self)
        self._ever_started = True

        deadline = t0 + timeout
        last_error: Exception | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise KafkaBrokerError(
                    f"Kafka broker exited with code {code} during start-up.\n"
                    f"--- {self.console_path} ---\n{_tail(self.console_path, 20)}\n"
                    f"--- {self.log_path} ---\n{_tail(self.log_path)}"
                )
            try:
                brokers = _metadata_brokers(self._port)
                if any(node == NODE_ID and bport == self._port for node, _, bport in brokers):
                    break
                last_error = ConnectionError(f"broker not yet in metadata: {brokers}")
            except (OSError, ConnectionError, struct.error) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                self.stop(timeout=10)
                raise KafkaBrokerError(
                    f"Kafka broker on {self.bootstrap_servers} not ready after {timeout}s "
                    f"(last error: {last_error!r}).\n--- {self.log_path} ---\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)
        self.last_start_seconds = time.monotonic() - t0

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (clean controlled shutdown), then SIGKILL after ``timeout`` s."""
        proc = self._proc
        if proc is None:
            return
        t0 = time.monotonic()
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        # run-kafka.sh's watchdog and any half-started helper share the group
        self._signal(proc, signal.SIGKILL, group_only=True)
        self._proc = None
        _LIVE.discard(self)
        self.last_stop_seconds = time.monotonic() - t0

    def kill(self) -> None:
        """Crash the broker (SIGKILL, no clean shutdown); :meth:`start` recovers it."""
        proc = self._proc
        if proc is None:
            return
        self._signal(proc, signal.SIGKILL)
        proc.wait(timeout=10)
        self._signal(proc, signal.SIGKILL, group_only=True)
        self._proc = None
        _LIVE.discard(self)

    def restart(self, timeout: float = 90) -> None:
        """Stop, then start again on the same port and data dir."""
        self.stop()
        self.start(timeout=timeout)

    # async conveniences: don't block a running event loop (consumers' heartbeats)
    async def astart(self, timeout: float = 90) -> None:
        await asyncio.to_thread(self.start, timeout)

    async def astop(self, timeout: float = 30) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def arestart(self, timeout: float = 90) -> None:
        await asyncio.to_thread(self.restart, timeout)

    def __enter__(self) -> "ApacheKafkaBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int, group_only: bool = False) -> None:
        try:
            os.killpg(proc.pid, sig)  # the session/process group run-kafka.sh leads
        except (ProcessLookupError, PermissionError):
            if not group_only:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _read_controller_port(self) -> int | None:
        props = self.data_dir / "server.properties"
        try:
            for line in props.read_text().splitlines():
                if line.startswith("controller.quorum.voters="):
                    return int(line.rsplit(":", 1)[1])
        except (OSError, ValueError):
            pass
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.testing.apache_kafka",
        description="Run a real single-node Apache Kafka (KRaft) broker in the foreground.",
    )
    parser.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: a free one)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="broker state dir (default: a temp dir, removed on exit)"
    )
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args(argv)

    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="borgerblik-kafka-")
        data_dir = Path(tmp)

    broker = ApacheKafkaBroker(data_dir, args.port)

    def _on_term(signum, frame):  # SIGTERM -> same path as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        print(f"Starting Apache Kafka {kafka_version()} (data dir {broker.data_dir}) ...", file=sys.stderr, flush=True)
        broker.start(timeout=args.timeout)
        print(
            f"Kafka ready in {broker.last_start_seconds:.1f}s; log {broker.log_path}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        print(broker.bootstrap_servers, flush=True)
        while broker.is_running():
            time.sleep(0.5)
        print("Kafka broker exited on its own; see " + str(broker.log_path), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Kafka ...", file=sys.stderr, flush=True)
        return 0
    except KafkaBrokerError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        broker.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
