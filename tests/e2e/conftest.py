from __future__ import annotations

import uuid

import pytest

from shared.infra import free_port
from shared.testing.fixtures import create_test_database, make_service_env
from shared.testing.processes import SERVICES, ServiceProcess


@pytest.fixture(scope="module")
async def module_env(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory) -> dict[str, str]:
    """One database and topic prefix for the module's stack; each test runs its own round."""
    return make_service_env(
        await create_test_database(postgres_admin_url),
        kafka_bootstrap,
        f"t{uuid.uuid4().hex[:10]}.",
        dev_issuer,
        data_keys,
        tmp_path_factory.mktemp("e2e"),
    )


@pytest.fixture(scope="module")
def stack(module_env, tmp_path_factory):
    """The five services as real processes on free ports, sharing one database and broker."""
    logs = tmp_path_factory.mktemp("logs")
    ports = {name: free_port() for name in SERVICES}
    env = {
        **module_env,
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
    }
    processes = {name: ServiceProcess(name, ports[name], env, log_file=logs / f"{name}.log").start() for name in SERVICES}
    try:
        for process in processes.values():
            process.wait_healthy(90)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
