"""A lean HTTP/1.1 client for one keep-alive connection to the server under test.

A general client (httpx, with h11 parsing in Python) costs more CPU per request than the
report itself on a machine whose two cores also run the server and PostgreSQL. This one
writes a prepared request and reads the answer with two buffered reads, so what it costs
stays small and is measured (the benchmark reports its CPU time per batch).
"""

import asyncio
import contextlib


class HttpError(Exception):
    """The server answered with something other than a well-formed response."""


class HttpConnection:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self._host = host
        self._port = port
        fixed = {"Host": f"{host}:{port}", **headers}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """Send one request and return the status and the whole body.

        A kept-alive connection the server has closed meanwhile (uvicorn does after 5 idle
        seconds) is noticed before any answer arrives; the request is then sent once more on
        a new connection. Both endpoints only read, so sending again is safe.
        """
        reused = self._writer is not None
        try:
            return await self._exchange(method, target, body, content_type)
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            await self.close()
            answered = isinstance(err, asyncio.IncompleteReadError) and err.partial
            if not reused or answered:
                raise
        return await self._exchange(method, target, body, content_type)

    async def _exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str,
    ) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer

        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_headers}"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        writer.write((head + "\r\n").encode("ascii") + (body or b""))

        status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if b"content-length" in headers:
            answer = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            answer = await _read_chunks(reader)
        else:
            raise HttpError(f"{method} {target}: the response carries no length")
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, answer

    @property
    def local_port(self) -> int | None:
        """This end's port while connected, which tells the server's side of it apart."""
        if self._writer is None:
            return None
        port: int = self._writer.get_extra_info("sockname")[1]
        return port

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    status_line, *lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            # Trailers, if any, end with an empty line like the headers did.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
