"""Pytest plugin (``pytest_plugins = ["shared.testing.fixtures"]``).

- ``DATABASE_URL`` set: tests use that server (each test gets a fresh database on it);
  otherwise an embedded PostgreSQL is started once per session.
- ``KAFKA_BOOTSTRAP_SERVERS`` set: tests use that broker (e.g. real Apache Kafka in CI);
  otherwise Tansu is started once per session on a free port.
Every test gets its own topic prefix and consumer groups, so suites can share a broker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.auth.dev_issuer import DevIssuer
from shared.bus import make_producer
from shared.crypto import new_key
from shared.db import to_plain_url
from shared.events import Envelope
from shared.infra import TansuBroker, start_embedded_postgres


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory) -> str:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    # Not under pytest's basetemp: pytest re-restricts that to 0700 at every session start, which
    # would lock out the unprivileged OS user embedded-postgres runs the server as (when root).
    # A short path also keeps the unix socket name under its ~107-byte limit.
    base = Path(tempfile.mkdtemp(prefix="bbpg-"))
    base.chmod(0o755)
    server, url = start_embedded_postgres(base / "data", database="postgres")
    yield url
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


async def create_test_database(admin_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = to_plain_url(admin_url)
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    # Swap the database name in the URL, keeping host/socket parameters.
    before, _, query = plain.partition("?")
    base = before.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def database_url(postgres_admin_url) -> str:
    return await create_test_database(postgres_admin_url)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--broker",
        choices=["tansu", "kafka"],
        default=os.environ.get("BORGERBLIK_TEST_BROKER", "tansu"),
        help="broker the fixtures start when KAFKA_BOOTSTRAP_SERVERS is unset: the embedded Tansu "
        "(default) or a real Apache Kafka in KRaft mode from Maven Central jars",
    )


@dataclass
class ExternalBroker:
    bootstrap_servers: str


@pytest.fixture(scope="session")
def broker(request, tmp_path_factory):
    """The session's broker: given by KAFKA_BOOTSTRAP_SERVERS, or started (Tansu or Apache Kafka)."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield ExternalBroker(servers)
        return
    if request.config.getoption("--broker") == "kafka":
        from shared.testing.apache_kafka import ApacheKafkaBroker

        kafka = ApacheKafkaBroker(tmp_path_factory.mktemp("kafka"))
        kafka.start(timeout=600)  # the first run fetches the jars from Maven Central
        yield kafka
        kafka.stop()
        return
    tansu = TansuBroker(log_file=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield tansu
    tansu.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def durable_broker(request, tmp_path):
    """A real Apache Kafka of the test's own, which it may restart: restarting the session's
    broker would disturb every test after it. Only with --broker=kafka (a memory-only broker
    loses everything on restart, and an external one is not ours to restart)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or request.config.getoption("--broker") != "kafka":
        pytest.skip("needs a restartable, durable broker of its own: run with --broker=kafka (make test-kafka)")
    from shared.testing.apache_kafka import ApacheKafkaBroker

    kafka = ApacheKafkaBroker(tmp_path / "kafka")
    kafka.start(timeout=600)
    yield kafka
    kafka.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def dev_issuer() -> DevIssuer:
    return DevIssuer()


@pytest.fixture(scope="session")
def data_keys() -> dict[str, str]:
    return {
        "PSEUDONYM_KEY": new_key(),
        "CPR_KEYS": f'{{"cpr-1": "{new_key()}"}}',
        "CPR_ACTIVE_KEY_ID": "cpr-1",
        "CONTACT_KEYS": f'{{"contact-1": "{new_key()}"}}',
        "CONTACT_ACTIVE_KEY_ID": "contact-1",
        "LINK_KEY": new_key(),
        "INTERVIEW_KEYS": f'{{"interview-1": "{new_key()}"}}',
        "INTERVIEW_ACTIVE_KEY_ID": "interview-1",
    }


@pytest.fixture
def service_env(database_url, kafka_bootstrap, topic_prefix, dev_issuer, data_keys, tmp_path) -> dict[str, str]:
    """Environment for a service under test (in-process settings or a subprocess)."""
    return make_service_env(database_url, kafka_bootstrap, topic_prefix, dev_issuer, data_keys, tmp_path)


def make_service_env(database_url, kafka_bootstrap, topic_prefix, dev_issuer, data_keys, tmp_path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "AUTH_JWKS_JSON": dev_issuer.jwks_json(),
        "OUTBOX_POLL_INTERVAL_SECONDS": "0.05",
        "CONSUMER_RETRY_BACKOFF_SECONDS": "0.05",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
        "DEV_SINK_DIR": str(tmp_path / "sink"),
        "LOG_JSON": "true",
        "RETENTION_CHECK_INTERVAL_SECONDS": "0.5",
        **data_keys,
    }


def settings_from_env(settings_cls, env: dict[str, str], **overrides):
    """Build a service's settings from an env dict without touching os.environ."""
    values = {key.lower(): value for key, value in env.items()}
    values.update(overrides)
    fields = settings_cls.model_fields
    return settings_cls(**{k: v for k, v in values.items() if k in fields})


@asynccontextmanager
async def running_app(app) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan in-process and give an HTTP client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def served(app, *, lifespan: str = "off", port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a local port (a free one unless given), for a browser or
    another process to reach over real HTTP; its address. ``lifespan="off"``: the app's lifespan
    already runs (``running_app``)."""
    import asyncio

    import uvicorn

    from shared.infra import free_port

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                                           lifespan=lifespan))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()  # a server that could not start says why
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}



async def publish_events(bootstrap: str, prefix: str, payloads, *, source: str = "test", correlation_id: str = "test") -> None:
    """Publish payloads as another service would (each in a new envelope, on its topic and key),
    in order: one producer, one partition per key, so a key's events arrive as listed. A
    payload listed twice goes out twice with two event ids, as a re-publication would."""
    producer = make_producer(bootstrap, f"{source}-test")
    await producer.start()
    try:
        for payload in payloads:
            envelope = Envelope.wrap(payload, source=source, correlation_id=correlation_id)
            await producer.send(f"{prefix}{payload.topic}", envelope.model_dump_json().encode(), key=payload.key().encode())
        await producer.flush()
    finally:
        await producer.stop()
