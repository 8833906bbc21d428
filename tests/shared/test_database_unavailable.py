"""shared.db.database_unavailable: what says "the database cannot be reached" (retry, 503) and what
says nothing about it, from the errors the driver and the OS really raise."""

from __future__ import annotations

import asyncpg

from shared.db import database_unavailable


async def _error_of(connect) -> BaseException:
    try:
        await connect
    except Exception as exc:
        return exc
    raise AssertionError("connected")


async def test_a_server_socket_that_is_not_there_is_the_database_unavailable(tmp_path):
    # PostgreSQL restarting on a unix socket: the socket file is gone for a moment.
    exc = await _error_of(asyncpg.connect(host=str(tmp_path), port=5432, user="x", database="x", timeout=5))
    assert isinstance(exc, FileNotFoundError)
    assert database_unavailable(exc)


async def test_a_refused_port_is_the_database_unavailable():
    from shared.infra import free_port

    exc = await _error_of(asyncpg.connect(host="127.0.0.1", port=free_port(), user="x", database="x", timeout=5))
    assert database_unavailable(exc)


def test_a_missing_file_of_the_work_itself_is_not_the_database():
    try:
        open("/nonexistent/borgerblik/template.html")  # noqa: SIM115
    except FileNotFoundError as exc:
        assert not database_unavailable(exc)
