"""Bytes moved between a design and PostgreSQL, counted on the wire by a loopback proxy.

"Bytes moved" is what the protocol carries: every message each way (row descriptions,
data rows, binds, command tags), after the statements are prepared. It is the same
measure for every design, whatever the shape of its rows. The proxy adds a hop, so it
is used only for this count, never while a design is timed.
"""

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Traffic:
    to_client: int
    to_server: int


class CountingProxy:
    """Listens on a free loopback port and forwards every connection to the server."""

    def __init__(self, server_url: str) -> None:
        self._url = make_url(server_url)
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.to_client = 0
        self.to_server = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def reset(self) -> None:
        self.to_client = 0
        self.to_server = 0

    def traffic(self) -> Traffic:
        return Traffic(to_client=self.to_client, to_server=self.to_server)

    async def connect(self) -> asyncpg.Connection:
        """A connection to the same database as the URL, through this proxy."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return await asyncpg.connect(
            host="127.0.0.1",
            port=port,
            user=self._url.username,
            password=self._url.password,
            database=self._url.database,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        port = self._url.port or 5432
        host = self._url.host or self._url.query.get("host")
        if isinstance(host, tuple):
            host = host[0]
        if host is None or host.startswith("/"):
            # libpq's convention: a host that is a folder holds the server's Unix socket.
            folder = host or "/var/run/postgresql"
            return await asyncio.open_unix_connection(f"{folder}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_upstream()
        upward = asyncio.create_task(self._pump(reader, up_writer, to_server=True))
        downward = asyncio.create_task(self._pump(up_reader, writer, to_server=False))
        self._pumps |= {upward, downward}
        await asyncio.gather(upward, downward, return_exceptions=True)
        self._pumps -= {upward, downward}

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        to_server: bool,
    ) -> None:
        try:
            while chunk := await source.read(_CHUNK):
                if to_server:
                    self.to_server += len(chunk)
                else:
                    self.to_client += len(chunk)
                sink.write(chunk)
                await sink.drain()
        finally:
            sink.close()
            with contextlib.suppress(ConnectionError):
                await sink.wait_closed()
