"""The platform a rehearsal runs on: PostgreSQL, a broker, the five services as processes, and
what the rehearsal measures of them (CPU, memory, consumer lag) and does to them (kill -9, a
PostgreSQL restart, a broker restart).

``Stack.start`` brings up what is not given, as ``make up`` does (embedded PostgreSQL, Tansu or a
real Apache Kafka), with tokens minted by an in-process development issuer (its JWKS handed to the
services), the services on free ports and their JSON logs in the work directory. The e2e test
hands in its fixtures' database and broker instead.

A service may run as several replicas (``replicas``: dispatch, responses and analytics), each its
own process on its own port with the same settings: one consumer group, so they share the
topics' partitions, and one database. ``url(service)`` hands out their addresses in turn, so
the driver's requests are spread over them; the measures add their processes up.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from shared.auth.dev_issuer import DevIssuer
from shared.bus.kafka import DEAD_LETTER_SUFFIX
from shared.crypto import new_key
from shared.infra import TansuBroker, free_port, start_embedded_postgres
from shared.testing.processes import SERVICES, ServiceProcess

OPERATOR_SCOPES = ["rounds:admin", "aggregates:read", "kommuner:all"]
BI_SCOPES = ["aggregates:read", "kommuner:all"]
# The services that can run as several replicas in a rehearsal: the three that carry the round's
# load (letters, answers, publication). Ingest and sampling run once (a round's deliveries and
# its draw are each one operator's sequence).
REPLICABLE = ("dispatch", "responses", "analytics")


def data_keys() -> dict[str, str]:
    return {
        "PSEUDONYM_KEY": new_key(),
        "CPR_KEYS": json.dumps({"cpr-1": new_key()}),
        "CPR_ACTIVE_KEY_ID": "cpr-1",
        "CONTACT_KEYS": json.dumps({"contact-1": new_key()}),
        "CONTACT_ACTIVE_KEY_ID": "contact-1",
        "LINK_KEY": new_key(),
    }


@dataclass
class Stack:
    """The running platform. ``replicas``: each service's processes by name (one, or several for
    ``REPLICABLE``); ``services``: the first of each. ``restart_postgres`` / ``restart_broker``
    are None where this stack cannot do it (an external server, a memory-only broker)."""

    work: Path
    replicas: dict[str, list[ServiceProcess]]
    issuer: DevIssuer
    sink: Path
    bootstrap_servers: str
    topic_prefix: str
    broker_kind: str
    postgres_data: Path | None = None  # the embedded server's data directory (its processes are measured)
    broker: object | None = None  # a broker we started
    _pg_server: object | None = field(default=None, repr=False)
    _cleanups: list = field(default_factory=list, repr=False)
    _turns: dict = field(default_factory=dict, repr=False)

    @property
    def services(self) -> dict[str, ServiceProcess]:
        return {name: processes[0] for name, processes in self.replicas.items()}

    # --- start and stop -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        work: Path,
        *,
        broker: str = "tansu",
        database_url: str | None = None,
        bootstrap_servers: str | None = None,
        extra_env: dict[str, str] | None = None,
        replicas: dict[str, int] | None = None,
        log=print,
    ) -> Stack:
        """``replicas``: how many processes of each of ``REPLICABLE`` (one where not named)."""
        replicas = replicas or {}
        if unknown := set(replicas) - set(REPLICABLE):
            raise ValueError(f"only {', '.join(REPLICABLE)} run as replicas, not {', '.join(sorted(unknown))}")
        work.mkdir(parents=True, exist_ok=True)
        (work / "logs").mkdir(exist_ok=True)
        stack = cls(work=work, replicas={}, issuer=DevIssuer(), sink=work / "sink", bootstrap_servers="",
                    topic_prefix=f"r{uuid.uuid4().hex[:8]}.", broker_kind=broker)
        try:
            if database_url is None:
                server, database_url = start_embedded_postgres(work / "pg", database="borgerblik")
                stack._pg_server, stack.postgres_data = server, work / "pg"
                stack._cleanups.append(server.cleanup)
                log(f"PostgreSQL  embedded, {work / 'pg'}")
            if bootstrap_servers is None:
                if broker == "kafka":
                    from shared.testing.apache_kafka import ApacheKafkaBroker

                    started = ApacheKafkaBroker(work / "kafka")
                    started.start(timeout=600)
                else:
                    started = TansuBroker(log_file=work / "logs" / "tansu.log").start()
                stack.broker = started
                stack._cleanups.append(started.stop)
                bootstrap_servers = started.bootstrap_servers
                log(f"broker      {broker} at {bootstrap_servers}")
            stack.bootstrap_servers = bootstrap_servers
            ports = {name: [free_port() for _ in range(max(1, replicas.get(name, 1)))] for name in SERVICES}
            env = {
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "KAFKA_TOPIC_PREFIX": stack.topic_prefix,
                "AUTH_JWKS_JSON": stack.issuer.jwks_json(),
                "DEV_SINK_DIR": str(stack.sink),
                "UPLOAD_DIR": str(work / "uploads"),
                "LOG_JSON": "true",
                "SURVEY_BASE_URL": f"http://127.0.0.1:{ports['responses'][0]}/s/",
                # Every citizen of the rehearsal answers from 127.0.0.1: the per-address budget for
                # unknown links is for one attacker, not for a whole country behind one address.
                "UNKNOWN_TOKEN_PER_ADDRESS": "1000000/minute",
                "UNKNOWN_TOKEN_GLOBAL": "1000000/minute",
                # Releases while answers arrive: after this many quiet seconds (make up: 20).
                "PUBLICATION_RELEASE_QUIET_SECONDS": "10",
                # Faults: a killed consumer's partitions move on within seconds, not 45 s.
                "CONSUMER_SESSION_TIMEOUT_MS": "6000",
                "CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
                # Dispatch as its national bench runs it (bench/dispatch_national.py): each MeMo
                # shape validated against the XSD once per process, not every letter (~3 ms each).
                "MEMO_VALIDATE_ALL": "false",
                **data_keys(),
                **(extra_env or {}),
            }
            stack.replicas = {
                name: [ServiceProcess(name, port, env, log_file=work / "logs" / (f"{name}.log" if i == 0 else f"{name}-{i + 1}.log")).start()
                       for i, port in enumerate(ports[name])]
                for name in SERVICES
            }
            stack._cleanups.append(stack.stop_services)
            for service in stack.processes():
                service.wait_healthy(180)
            if any(len(p) > 1 for p in stack.replicas.values()):
                log("replicas    " + ", ".join(f"{name} {len(p)}" for name, p in stack.replicas.items() if len(p) > 1))
        except BaseException:
            stack.stop()
            raise
        return stack

    def processes(self) -> list[ServiceProcess]:
        return [process for processes in self.replicas.values() for process in processes]

    def stop_services(self) -> None:
        for service in self.processes():
            children = _descendants(service)
            service.stop()
            _kill(children)  # a worker busy past the service's shutdown (analytics' builder) would outlive it

    def stop(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                print(f"  stopping: {exc}")
        self._cleanups.clear()

    # --- URLs and tokens -------------------------------------------------------------------------

    def url(self, service: str) -> str:
        """The service's address; of its replicas, the next in turn."""
        turn = self._turns.setdefault(service, itertools.cycle(self.replicas[service]))
        return next(turn).url

    def urls(self, service: str) -> list[str]:
        """Every replica's address."""
        return [process.url for process in self.replicas[service]]

    def operator_token(self) -> str:
        return self.issuer.mint("kl-operator", OPERATOR_SCOPES, ttl_seconds=24 * 3600)

    def bi_token(self) -> str:
        return self.issuer.mint("bi-reader", BI_SCOPES, ttl_seconds=24 * 3600)

    def vendor_token(self, kommuner: list[str]) -> str:
        return self.issuer.mint("momentum-dev", ["extracts:write"], kommuner, ttl_seconds=24 * 3600)

    # --- faults ---------------------------------------------------------------------------------

    def kill_and_restart(self, name: str) -> float:
        """kill -9 of one service (its first replica), then start it again; the seconds until it
        is healthy."""
        started = time.monotonic()
        # The whole process tree, as a crashed container goes: a worker process left behind (ingest's
        # preparation workers, analytics' builder) would go on using CPU beside its successor.
        children = _descendants(self.services[name])
        self.services[name].kill()
        _kill(children)
        self.services[name].start().wait_healthy(180)
        return time.monotonic() - started

    @property
    def can_restart_postgres(self) -> bool:
        return self._pg_server is not None

    def restart_postgres(self) -> float:
        """An immediate-mode restart of the embedded server (no shutdown checkpoint: crash
        recovery on start), on the same socket. The devstack has no call for it; pg_ctl does it."""
        from embedded_postgres._commands import pg_ctl

        started = time.monotonic()
        pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=self._pg_server.pgdata, user=self._pg_server.system_user, timeout=120)
        return time.monotonic() - started

    @property
    def can_restart_broker(self) -> bool:
        return hasattr(self.broker, "restart")  # Apache Kafka keeps its log; Tansu here is memory-only

    def restart_broker(self) -> float:
        started = time.monotonic()
        self.broker.restart(timeout=180)
        return time.monotonic() - started

    # --- what the broker holds -------------------------------------------------------------------

    async def dead_letters(self) -> dict[str, int]:
        """Messages in each of this stack's dead-letter topics (``<prefix><topic>.dlq``)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            topics = [t for t in await consumer.topics() if t.startswith(self.topic_prefix) and t.endswith(DEAD_LETTER_SUFFIX)]
            found = {}
            for topic in topics:
                partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
                if not partitions:
                    found[topic.removeprefix(self.topic_prefix)] = 0
                    continue
                begin = await consumer.beginning_offsets(partitions)
                end = await consumer.end_offsets(partitions)
                found[topic.removeprefix(self.topic_prefix)] = sum(end[tp] - begin[tp] for tp in partitions)
            return found
        finally:
            await consumer.stop()


def _descendants(service: ServiceProcess) -> list[psutil.Process]:
    try:
        return psutil.Process(service.process.pid).children(recursive=True) if service.process else []
    except psutil.Error:
        return []


def _kill(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass


# --- measuring the processes ----------------------------------------------------------------------

LAG_LINE = re.compile(r'^borgerblik_consumer_lag\{[^}]*\}\s+([0-9.eE+-]+)$', re.M)
BACKLOG_LINE = re.compile(r'^borgerblik_outbox_backlog\{[^}]*\}\s+([0-9.eE+-]+)$', re.M)


@dataclass
class PhaseFigures:
    name: str
    wall: float
    cpu: dict[str, float]
    peak_rss_mb: dict[str, float]
    max_lag: dict[str, float]
    max_backlog: dict[str, float]
    load: tuple[float, float, float]


class Sampler:
    """A thread that samples, every ``interval`` seconds, each service's process tree (CPU and
    RSS through psutil; a restarted service's dead processes keep the CPU they had at their last
    sample), PostgreSQL's and the broker's, and each service's /metrics (consumer lag, outbox
    backlog). ``phase(name)`` closes the current phase and returns its figures."""

    def __init__(self, stack: Stack, interval: float = 1.0) -> None:
        self.stack = stack
        self.interval = interval
        self._lock = threading.Lock()
        self._cpu_by_pid: dict[str, dict[int, float]] = {}
        self._peak_rss: dict[str, float] = {}
        self._max_lag: dict[str, float] = {}
        self._max_backlog: dict[str, float] = {}
        self._phase_started = time.monotonic()
        self._cpu_at_start: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rehearsal-sampler", daemon=True)
        self._procs: dict[int, psutil.Process] = {}
        self._http = httpx.Client(timeout=2)

    def start(self) -> Sampler:
        self._sample()
        self._cpu_at_start = self._totals()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._http.close()

    def _roots(self) -> dict[str, list[int]]:
        roots = {name: [s.process.pid for s in processes if s.process and s.process.poll() is None]
                 for name, processes in self.stack.replicas.items()}
        if self.stack.postgres_data is not None:
            try:
                roots["postgres"] = [int((self.stack.postgres_data / "postmaster.pid").read_text().split()[0])]
            except (OSError, ValueError, IndexError):
                pass
        pid = getattr(self.stack.broker, "pid", None)
        if pid is None and getattr(self.stack.broker, "_process", None) is not None:
            pid = self.stack.broker._process.pid
        if pid:
            roots["broker"] = [pid]
        roots["driver"] = [os.getpid()]
        return roots

    def _proc(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = psutil.Process(pid)
        return proc

    def _sample(self) -> None:
        # One pass over the machine's processes for the parent links (psutil's children() scans
        # them all on every call).
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)

        def tree_of(pid: int) -> list[int]:
            found, todo = [], [pid]
            while todo:
                found.append(current := todo.pop())
                todo.extend(children.get(current, []))
            return found

        for name, pids in self._roots().items():
            rss = 0
            for root in pids:
                # The driver without its children (the services it started are measured apart).
                tree = [root] if name == "driver" else tree_of(root)
                for pid in tree:
                    try:
                        proc = self._proc(pid)
                    except psutil.Error:
                        continue
                    try:
                        with proc.oneshot():
                            times = proc.cpu_times()
                            mem = proc.memory_info().rss
                    except psutil.Error:
                        continue
                    with self._lock:
                        self._cpu_by_pid.setdefault(name, {})[proc.pid] = times.user + times.system
                    rss += mem
            with self._lock:
                self._peak_rss[name] = max(self._peak_rss.get(name, 0.0), rss / 1e6)
        for name, processes in self.stack.replicas.items():
            # Lag: each replica reports its own partitions (summed); backlog: each reports the
            # service's one outbox (the largest seen).
            lag = backlog = 0.0
            for service in processes:
                try:
                    text = self._http.get(f"{service.url}/metrics").text
                except httpx.HTTPError:
                    continue
                lag += sum(float(v) for v in LAG_LINE.findall(text))
                backlog = max(backlog, sum(float(v) for v in BACKLOG_LINE.findall(text)))
            with self._lock:
                self._max_lag[name] = max(self._max_lag.get(name, 0.0), lag)
                self._max_backlog[name] = max(self._max_backlog.get(name, 0.0), backlog)

    def _totals(self) -> dict[str, float]:
        with self._lock:
            return {name: sum(by_pid.values()) for name, by_pid in self._cpu_by_pid.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception as exc:  # a sample lost is a sample lost; the rehearsal goes on
                print(f"  sampler: {type(exc).__name__}: {exc}")

    def phase(self, name: str) -> PhaseFigures:
        self._sample()
        now = time.monotonic()
        totals = self._totals()
        with self._lock:
            figures = PhaseFigures(
                name=name,
                wall=now - self._phase_started,
                cpu={k: totals.get(k, 0.0) - self._cpu_at_start.get(k, 0.0) for k in totals},
                peak_rss_mb=dict(self._peak_rss),
                max_lag=dict(self._max_lag),
                max_backlog=dict(self._max_backlog),
                load=os.getloadavg(),
            )
            self._peak_rss.clear()
            self._max_lag.clear()
            self._max_backlog.clear()
        self._phase_started, self._cpu_at_start = now, totals
        return figures
