"""A database outage for tests: a TCP proxy in front of the test PostgreSQL that a test can take
away and bring back, so a service (or a consumer) pointed at it meets a real outage over real
sockets, not a mock."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import make_url


class Outage:
    """A TCP proxy in front of PostgreSQL that can take the database away: ``down()`` cuts every
    open connection and refuses new ones (as a server restart does), ``up()`` brings it back."""

    def __init__(self, connect) -> None:
        self.connect = connect  # opens a connection to the real server
        self.available = True
        self.links: set[asyncio.StreamWriter] = set()
        self.server = None

    @classmethod
    def in_front_of(cls, database_url: str) -> Outage:
        url = make_url(database_url)
        socket_dir = url.query.get("host")
        if socket_dir and socket_dir.startswith("/"):  # the embedded server listens on a unix socket
            socket = f"{socket_dir}/.s.PGSQL.{url.port or 5432}"
            return cls(lambda: asyncio.open_unix_connection(socket))
        return cls(lambda: asyncio.open_connection(url.host or "127.0.0.1", url.port or 5432))

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def proxied_url(self, database_url: str) -> str:
        """Start the proxy; ``database_url`` through it."""
        url = make_url(database_url)
        proxied = url.difference_update_query(["host"]).set(host="127.0.0.1", port=await self.start())
        return proxied.render_as_string(hide_password=False)

    async def _accept(self, reader, writer) -> None:
        if not self.available:
            writer.close()
            return
        up_reader, up_writer = await self.connect()
        self.links |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def down(self) -> None:
        self.available = False
        for link in self.links:
            link.transport.abort()
        self.links.clear()

    def up(self) -> None:
        self.available = True

    async def stop(self) -> None:
        self.down()
        self.server.close()
