from __future__ import annotations

import pytest

from shared.infra import free_port
from shared.testing.processes import SERVICES, ServiceProcess


@pytest.fixture
def stack(service_env, tmp_path):
    """The five services as real processes on free ports, sharing one database and broker."""
    ports = {name: free_port() for name in SERVICES}
    env = {**service_env, "SURVEY_BASE_URL": f"http://127.0.0.1:{ports['responses']}/s/"}
    processes = {
        name: ServiceProcess(name, ports[name], env, log_file=tmp_path / f"{name}.log").start() for name in SERVICES
    }
    try:
        for process in processes.values():
            process.wait_healthy(90)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
