"""An ASGI middleware for every API response: `X-Content-Type-Options: nosniff` (a browser never
guesses a JSON answer to be HTML) and `Cache-Control: no-store` (runs, outputs and secrets' metadata
are not kept by caches) unless a route set its own; and a path with a trailing slash is answered as
the path without it, not redirected to a URL built from the request's `Host` header."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class HttpHygieneMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(without_trailing_slash(scope), receive, with_headers)


def without_trailing_slash(scope: Scope) -> Scope:
    path: str = scope.get("path", "")
    if len(path) <= 1 or not path.endswith("/"):
        return scope
    trimmed = path.rstrip("/") or "/"
    raw = scope.get("raw_path")
    raw_trimmed = raw.rstrip(b"/") or b"/" if isinstance(raw, bytes) else raw
    return {**scope, "path": trimmed, "raw_path": raw_trimmed}
