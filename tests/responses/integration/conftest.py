"""One responses service per test module (real PostgreSQL, real broker): starting a service and
joining its consumer group is the slow part, and every test uses fresh links anyway."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from services.responses.protection import GuessLimiter
from shared.testing.browser import CHROMIUM, CHROMIUM_ARGS
from shared.testing.browser import axe_source as load_axe
from shared.testing.fixtures import create_test_database, make_service_env, running_app, served, settings_from_env

FRONTEND = Path(__file__).resolve().parents[3] / "services" / "responses" / "frontend"


@pytest.fixture(scope="module")
async def module_env(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory):
    database_url = await create_test_database(postgres_admin_url)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return make_service_env(database_url, kafka_bootstrap, prefix, dev_issuer, data_keys, tmp_path_factory.mktemp("responses"))


@pytest.fixture(scope="module")
async def app_and_client(module_env):
    app = create_app(settings_from_env(ResponsesSettings, module_env))
    async with running_app(app) as client:
        yield app, client


@pytest.fixture
def app(app_and_client):
    app, _ = app_and_client
    # Each test starts with a fresh guessing budget.
    app.state.limiter = GuessLimiter.from_settings(app.state.settings)
    return app


@pytest.fixture
def client(app_and_client, app):
    _, client = app_and_client
    client.cookies.clear()
    return client


@pytest.fixture
def prefix(module_env) -> str:
    return module_env["KAFKA_TOPIC_PREFIX"]


# The browser tests' service over real HTTP, their Chromium and axe-core.
@pytest.fixture(scope="module")
def axe_source() -> str:
    return load_axe(FRONTEND)


@pytest.fixture(scope="module")
async def live(module_env):
    app = create_app(settings_from_env(ResponsesSettings, module_env))
    async with served(app, lifespan="on") as url:
        yield app, url


@pytest.fixture(scope="module")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
