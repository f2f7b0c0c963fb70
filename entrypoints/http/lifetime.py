"""Ends a request's work when its deadline passes or its client goes away.

Either way the handler is cancelled, which makes asyncpg cancel the running statement
on the server and return its connection to the pool, so abandoned requests cannot
pile up on the database.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from entrypoints.http.problems import RETRY_AFTER_S, send_problem

logger = logging.getLogger(__name__)

STATUS_STATE_KEY = "final_status"
# nginx's code for "the client closed the connection before the answer"; only logged.
CLIENT_CLOSED_REQUEST = 499


class RequestLifetime:
    def __init__(self, app: ASGIApp, deadline_s: float) -> None:
        self._app = app
        self._deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return

        started = False
        finished = False
        client_gone = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            started = True
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        # Messages from the server reach the app through this one-place inbox, while a
        # watcher keeps listening for the disconnect that would otherwise go unseen.
        inbox: asyncio.Queue[ReceiveMessage] = asyncio.Queue(maxsize=1)

        async def run_app() -> None:
            await self._app(scope, inbox.get, tracking_send)

        work = asyncio.create_task(run_app())

        def on_disconnect() -> None:
            nonlocal client_gone
            if not finished:
                client_gone = True
                work.cancel()

        watcher = asyncio.create_task(_watch(receive, inbox, on_disconnect))
        try:
            async with asyncio.timeout(self._deadline_s):
                await work
        except TimeoutError:
            logger.warning("request deadline passed path=%s", scope["path"])
            if not started:
                await send_problem(
                    scope,
                    send,
                    503,
                    "The request took longer than its deadline; try again.",
                    [(b"retry-after", str(RETRY_AFTER_S).encode())],
                )
        except asyncio.CancelledError:
            if not client_gone:
                raise
            scope["state"][STATUS_STATE_KEY] = CLIENT_CLOSED_REQUEST
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch(
    receive: Receive,
    inbox: asyncio.Queue[ReceiveMessage],
    on_disconnect: Callable[[], None],
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            on_disconnect()
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(message)
            return
        await inbox.put(message)
