"""Test processes leave nothing running: stopping (or killing) a service the e2e helper started
ends the processes it started too, such as analytics' build workers, even one that ignores
SIGTERM."""

from __future__ import annotations

import os
import sys
import time

import pytest

from shared.testing.processes import ServiceProcess, _group_alive

# A service stand-in: starts a worker that ignores SIGTERM (as a pool worker busy with a task
# may), writes the worker's pid, and waits to be stopped.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


class StandIn(ServiceProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", PARENT, self.env["PID_FILE"]]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] != b"Z"


def _started(tmp_path) -> tuple[StandIn, int]:
    pid_file = tmp_path / "worker.pid"
    service = StandIn("standin", 0, {"PID_FILE": str(pid_file)}).start()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the stand-in did not start its worker"
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    assert _running(worker) and os.getpgid(worker) == service.process.pid
    return service, worker


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("end", ["stop", "kill"])
def test_ending_a_service_ends_the_processes_it_started(tmp_path, end):
    service, worker = _started(tmp_path)
    getattr(service, end)()
    assert not _running(worker)
    assert not _group_alive(service.process.pid)
