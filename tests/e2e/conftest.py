from __future__ import annotations

import uuid

import pytest

from shared.testing.fixtures import create_test_database, make_service_env
from shared.testing.processes import serve_stack


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
    yield from serve_stack(module_env, tmp_path_factory.mktemp("logs"))
