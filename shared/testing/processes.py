"""Run the services as real processes (uvicorn), for ``make up`` and end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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

    def start(self) -> ServiceProcess:
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", f"services.{self.name}.main:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
            ],
            # Without the test that started it: the process outlives that test (route_log.py).
            env={**{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}, **self.env, "SERVICE_NAME": self.name},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT if self.log_file else subprocess.DEVNULL,
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
        """SIGKILL: no shutdown hooks run, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
