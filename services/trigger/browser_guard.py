"""Browser guard: a pure ASGI middleware that keeps web pages from acting on the API (CSRF, DNS
rebinding). It runs before anything reads the body, so a refused request changes nothing.

- **Host.** The `Host` header must name this engine: one of `STEPLINE_ALLOWED_HOSTS` (comma-separated
  host names or addresses, any port; `*` allows every name; default the loopback names `127.0.0.1`,
  `localhost`, `::1`), or the address the API is bound to when that is a specific one. Anything else is
  421 `misdirected_request`: a page on `evil.example` whose name was re-bound to 127.0.0.1 sends
  `Host: evil.example`. `/healthz` and `/readyz` are exempt (probes address a pod by its IP).
- **Content type.** POST, PUT, PATCH and DELETE with a body must send it as JSON (`application/json` or
  `application/*+json`); without a body they may send no `Content-Type` or a JSON one. Anything else is
  415 `unsupported_media_type`: the content types a page may send cross-origin without a CORS
  preflight (forms, `text/plain`) never reach a route. `POST /v1/hooks/...` also takes
  `application/x-www-form-urlencoded` (Slack slash commands and interactivity, GitHub's form
  deliveries): a delivery is authenticated by its signature, which a page cannot make.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.trigger.asgi_headers import header
from services.trigger.errors import error_response

LOOPBACK_HOSTS = "127.0.0.1,localhost,::1"
ANY_HOST = "*"
FORM = "application/x-www-form-urlencoded"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOST_EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
HOOKS_PREFIX = "/v1/hooks/"


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json` ("" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def host_name(host: str) -> str:
    """The name in a `Host` header or a configured entry, without port, brackets or final dot."""
    text = host.strip().lower()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def allowed_host_names(configured: str, bind_host: str = "") -> frozenset[str]:
    """The names of `STEPLINE_ALLOWED_HOSTS`, plus the bind address unless it is a wildcard one."""
    names = {host_name(part) for part in configured.split(",") if part.strip()}
    try:
        specific = bool(bind_host) and not ip_address(host_name(bind_host)).is_unspecified
    except ValueError:
        specific = bool(bind_host)
    return frozenset(names | ({host_name(bind_host)} if specific else set()))


def _has_body(scope: Scope) -> bool | None:
    """None when `Content-Length` is not a number: body_limit.py answers that with 400."""
    length = header(scope, b"content-length")
    if length is not None:
        return int(length) > 0 if length.strip().isdigit() and length.isascii() else None
    return header(scope, b"transfer-encoding") is not None


def _media_allowed(media: str, path: str, has_body: bool) -> bool:
    if not media:
        return not has_body
    return is_json(media) or (media == FORM and path.startswith(HOOKS_PREFIX))


class BrowserGuardMiddleware:
    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        path, method = str(scope.get("path", "")), str(scope.get("method", ""))
        host = header(scope, b"host")
        if path not in HOST_EXEMPT_PATHS and not self._host_allowed(host):
            return _misdirected(host)
        media, has_body = media_type(header(scope, b"content-type")), _has_body(scope)
        if method in STATE_CHANGING and has_body is not None and not _media_allowed(media, path, has_body):
            return _unsupported(method, path, media)
        return None

    def _host_allowed(self, host: str | None) -> bool:
        return ANY_HOST in self.allowed or (host is not None and host_name(host) in self.allowed)


def _misdirected(host: str | None) -> Response:
    shown = "no Host header" if host is None else f"Host {host[:100]!r}"
    message = (f"{shown} does not name this engine; if it should, add the name to STEPLINE_ALLOWED_HOSTS "
               "(comma-separated)")
    return error_response(421, "misdirected_request", message, [{"pointer": "/header/Host", "message": message}])


def _unsupported(method: str, path: str, media: str) -> Response:
    accepted = "application/json" + (f" or {FORM}" if path.startswith(HOOKS_PREFIX) else "")
    sent = f"Content-Type {media[:100]!r}" if media else "a body without a Content-Type"
    message = f"{method} {path[:200]} accepts only {accepted} bodies; the request sent {sent}"
    return error_response(415, "unsupported_media_type", message,
                          [{"pointer": "/header/Content-Type", "message": message}])
