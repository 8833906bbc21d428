"""Run the services as real processes (uvicorn), for ``make up`` and end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("ingest", "sampling", "dispatch", "responses", "analytics")
DEFAULT_PORTS = {"ingest": 8001, "sampling": 8002, "dispatch": 8003, "responses": 8004, "analytics": 8005}
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", f"services.{self.name}.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
        ]

    def start(self) -> ServiceProcess:
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(),
            # Without the test that started it: the process outlives that test (route_log.py).
            env={**{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}, **self.env, "SERVICE_NAME": self.name},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT if self.log_file else subprocess.DEVNULL,
            # Its own process group, so that stopping the service ends every process it started
            # (worker pools, e.g. analytics' build workers) with it: see _end_group.
            start_new_session=True,
        )
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode} (log: {self.log_file})")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy within {timeout:.0f} s (log: {self.log_file})")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash (its worker processes go with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._end_group(grace=0)

    def stop(self) -> None:
        """SIGTERM and wait for the service's shutdown; then whatever it left running in its
        process group is ended too (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._end_group()

    def _end_group(self, grace: float = 2.0) -> None:
        if self.process is None:
            return
        group = self.process.pid  # the session leader's pid is its process group's id
        for sig in ((signal.SIGTERM,) if grace else ()) + (signal.SIGKILL,):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return  # nothing left in the group
            # A signal takes effect a moment later: wait for it (SIGKILL's is not long).
            deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
            while _group_alive(group) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _group_alive(group):
                return


def _group_alive(group: int) -> bool:
    """Whether any process of the group still runs (zombies waiting to be reaped do not count)."""
    if not os.path.isdir("/proc"):  # no procfs (macOS): ask the kernel, zombies included
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        state, _ppid, pgrp = stat[stat.rindex(b")") + 2 :].split(b" ", 3)[:3]
        if int(pgrp) == group and state != b"Z":
            return True
    return False


def serve_stack(env: dict[str, str], logs: Path, **extra_env: str) -> Iterator[dict[str, ServiceProcess]]:
    """The five services as real processes on free ports, sharing ``env``'s database and broker
    (an e2e test's stack): settings every e2e stack needs, then ``extra_env``; yields them by
    name, healthy, and stops them after."""
    from shared.infra import free_port

    ports = {name: free_port() for name in SERVICES}
    env = {
        **env,
        "SURVEY_BASE_URL": f"http://127.0.0.1:{ports['responses']}/s/",
        # The test polls links before responses has learnt them, all from 127.0.0.1: those
        # lookups are unknown links, and the guessing budgets would stop the round.
        "UNKNOWN_TOKEN_PER_ADDRESS": "100000/minute",
        "UNKNOWN_TOKEN_GLOBAL": "100000/minute",
        # Analytics releases a round's tables once it has been quiet this long (production:
        # minutes). Longer than any pause while the test answers: a release in the middle would
        # hide every cell that then moves by fewer than 5 respondents (docs/analytics-method.md),
        # the national count the test waits for included.
        "PUBLICATION_RELEASE_QUIET_SECONDS": "10",
        **extra_env,
    }
    processes = {name: ServiceProcess(name, ports[name], env, log_file=logs / f"{name}.log").start() for name in SERVICES}
    try:
        for process in processes.values():
            process.wait_healthy(90)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
