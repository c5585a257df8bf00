"""An ASGI middleware that sends nothing before the store has made durable the writes it may report.

The SQLite store commits a short window of writes at once (libs/store/sqlite/commit_window.py), so
a run the engine has just accepted can still be uncommitted when its route answers. Before each
part of a response leaves, the store flushes (`Store.flush`: a check when nothing is pending). A
flush that fails before the status line turns the answer into 503 `store_unavailable`: the client
was told nothing, so retrying is safe; one that fails later aborts the response.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.core.errors import StoreUnavailableError
from libs.store.ports import Store
from services.trigger.errors import UNAVAILABLE_MESSAGE, error_response


class DurableAnswersMiddleware:
    def __init__(self, app: ASGIApp, *, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def durable_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return
            try:
                await self.store.flush()
            except StoreUnavailableError as exc:
                if message["type"] != "http.response.start":
                    raise
                refused = True
                await error_response(503, exc.code, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"})(
                    scope, receive, send)
                return
            await send(message)

        await self.app(scope, receive, durable_send)
