"""An ASGI middleware that refuses request bodies over `max_body_bytes` with 413 before any route runs.

It checks `Content-Length` first, then reads the (possibly chunked) body itself counting bytes, so a
client that lies about or omits the length is stopped too; a body within the limit is replayed to
the app unchanged. Nothing downstream ever sees an oversized body, so nothing is stored.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.trigger.errors import error_response


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None:
            await error_response(400, "bad_request", "header content-length is not a valid number")(scope, receive, send)
            return
        if declared > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        try:
            messages = await self._read_body(receive)
        except BodyTooLarge:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read_body(self, receive: Receive) -> list[Message]:
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            total += len(message.get("body", b""))
            if total > self.max_body_bytes:
                raise BodyTooLarge()
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body is larger than the limit of {self.max_body_bytes} bytes (max_body_bytes)"
        await error_response(413, "payload_too_large", message, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length (0 when absent), or None when the header is not a non-negative integer."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None
    return 0


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
