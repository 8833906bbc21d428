"""Shared pieces of the security suite (issue 10): the five services, started in-process once per
module on one test database and one topic prefix, and the reviewed rules in tools/authz_rules.py."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest_asyncio

from shared.testing.fixtures import create_test_database, make_service_env, running_app
from shared.testing.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]


class LiveServices:
    """Starts a service on first use and keeps it running until the module ends."""

    def __init__(self, env: dict[str, str], stack: AsyncExitStack) -> None:
        self.env = env
        self._stack = stack
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._specs: dict[str, dict] = {}
        self.apps: dict[str, object] = {}

    async def client(self, service: str) -> httpx.AsyncClient:
        if service not in self._clients:
            rules = load_tool("authz_rules")
            app = rules.create_app(service, self.env)
            self.apps[service] = app
            self._clients[service] = await self._stack.enter_async_context(running_app(app))
        return self._clients[service]

    async def openapi(self, service: str) -> dict:
        """The OpenAPI document the running service serves."""
        if service not in self._specs:
            response = await (await self.client(service)).get("/openapi.json")
            response.raise_for_status()
            self._specs[service] = response.json()
        return self._specs[service]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_services(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory):
    database_url = await create_test_database(postgres_admin_url)
    env = make_service_env(
        database_url, kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.", dev_issuer, data_keys, tmp_path_factory.mktemp("security")
    )
    async with AsyncExitStack() as stack:
        yield LiveServices(env, stack)
