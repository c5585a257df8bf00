"""Authentication: a pure ASGI middleware in front of every route. A `/v1` request (and `/metrics`) must
carry an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) that the key store verifies; otherwise it is
answered 401 before any route reads or changes anything. The principal is put in the request's
state for the routes and the authorization dependency (authz.py).

Open without a key: the health routes, the API description, `POST /v1/hooks/{workflow}` (signed
deliveries) and a node-run PATCH that carries a callback token (the route checks the token)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from libs.access.keystore import ApiKeys
from libs.core.errors import SteplineError
from services.trigger.asgi_headers import header
from services.trigger.errors import UNAVAILABLE_MESSAGE, error_response

CALLBACK_HEADER = "x-stepline-callback-token"
_OPEN_PREFIXES = ("/v1/hooks/",)
_KEYED_OUTSIDE_V1 = frozenset({"/metrics"})
_NODE_RUN_PATCH_MARKERS = ("/v1/workflows/nodes/runs/", "/nodes/")


def presented_key(scope: Scope) -> str | None:
    """The key a request presents, or None when it presents none."""
    authorization = header(scope, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    api_key = header(scope, b"x-api-key")
    return api_key.strip() if api_key is not None else None


def _needs_key(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    if not path.startswith("/v1/") and path != "/v1":
        return path in _KEYED_OUTSIDE_V1
    if path.startswith(_OPEN_PREFIXES) and scope.get("method") == "POST":
        return False
    return not _is_callback(scope, path)


def _is_callback(scope: Scope, path: str) -> bool:
    return (scope.get("method") == "PATCH" and header(scope, CALLBACK_HEADER.encode()) is not None
            and any(marker in path for marker in _NODE_RUN_PATCH_MARKERS))


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, *, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _needs_key(scope):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        try:
            principal = await self.keys.verify(key) if key else None
        except SteplineError as exc:
            if not exc.retryable:
                raise
            await error_response(503, exc.code, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"})(scope, receive, send)
            return
        if principal is None:
            await _unauthorized(key)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _unauthorized(key: str | None) -> ASGIApp:
    reason = ("no API key: send Authorization: Bearer <key> or X-API-Key: <key>" if key is None else
              "the Authorization header is not 'Bearer <key>'" if key == "" else
              "the API key is unknown, revoked or expired")
    return error_response(401, "unauthorized", reason, [{"pointer": "/header/Authorization", "message": reason}],
                          headers={"WWW-Authenticate": "Bearer"})
