"""A small app serving the audit router, whose caller is chosen by the bearer token: the token is a
name in `CALLERS` (the real app's authentication sets `request.state.principal` the same way)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from libs.access.principal import Principal
from libs.audit.log import AuditLog
from services.trigger.api import audit
from services.trigger.errors import install_error_handlers

CALLERS = {
    "owner": Principal("key_o", "olga@example.com", "owner", "default"),
    "admin-a": Principal("key_a", "ada@example.com", "admin", "team-a"),
    "admin-b": Principal("key_b", "bob@example.com", "admin", "team-b"),
}


def app_for(log: AuditLog) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def caller(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        request.state.principal = CALLERS.get(token)
        return await call_next(request)

    app.include_router(audit.router)
    app.dependency_overrides[audit.reader] = lambda: log
    install_error_handlers(app)
    return app
