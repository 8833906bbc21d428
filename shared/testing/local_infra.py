"""Embedded PostgreSQL and a broker for scripts (benchmarks, tools), as the test fixtures do.

    with local_infra(broker="tansu") as infra:
        infra.database_url, infra.bootstrap_servers

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set. Each call gets a fresh database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.infra import TansuBroker, start_embedded_postgres
from shared.testing.fixtures import create_test_database


@dataclass
class LocalInfra:
    database_url: str
    bootstrap_servers: str
    broker: object | None  # the started broker, if any (ApacheKafkaBroker can restart)


@contextmanager
def local_infra(broker: str = "tansu") -> Iterator[LocalInfra]:
    cleanups = []
    base = Path(tempfile.mkdtemp(prefix="bbinfra-"))
    base.chmod(0o755)  # the embedded server runs as an unprivileged user when we are root
    try:
        admin_url = os.environ.get("DATABASE_URL")
        if not admin_url:
            server, admin_url = start_embedded_postgres(base / "pg", database="postgres")
            cleanups.append(server.cleanup)
        database_url = asyncio.run(create_test_database(admin_url))
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        started = None
        if not bootstrap:
            if broker == "kafka":
                from shared.testing.apache_kafka import ApacheKafkaBroker

                started = ApacheKafkaBroker(base / "kafka")
                started.start(timeout=600)
            else:
                started = TansuBroker().start()
            cleanups.append(started.stop)
            bootstrap = started.bootstrap_servers
        yield LocalInfra(database_url, bootstrap, started)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
        shutil.rmtree(base, ignore_errors=True)
