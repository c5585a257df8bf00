"""Authorization: which action every route needs, in one table. A route that is not in the table
makes `check_routes` fail at start-up, so no route can be added without deciding who may use it;
the permission-matrix test walks the same table.

`authorize` runs as an app-wide dependency after authentication (authn.py): the caller's role must
hold the route's action, or the answer is 403 naming the action."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, Protocol, cast

from fastapi import Request
from fastapi.routing import APIRoute

from libs.access.principal import Principal
from libs.access.roles import Action, allows
from libs.core.errors import ForbiddenError

Open = Literal["open"]
CallbackOr = tuple[Literal["callback-or"], Action]
Need = Action | Open | CallbackOr
OPEN: Final[Open] = "open"

ROUTES: Final[dict[tuple[str, str], Need]] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("POST", "/v1/hooks/{workflow_id}"): OPEN,
    ("PUT", "/v1/secrets/{name}"): "secret.write",
    ("GET", "/v1/secrets"): "secret.read",
    ("DELETE", "/v1/secrets/{name}"): "secret.write",
    ("GET", "/v1/blueprints/{blueprint}/entities"): "catalog.read",
    ("GET", "/v1/blueprints/{blueprint}/entities/{identifier:path}"): "catalog.read",
    ("POST", "/v1/catalog/events"): "catalog.write",
    ("POST", "/v1/workflows/{workflow_id}/runs"): "run.start",
    ("GET", "/v1/workflows/runs"): "run.read",
    ("GET", "/v1/workflows/runs/{run_id}"): "run.read",
    ("POST", "/v1/workflows/runs/{run_id}/cancel"): "run.control",
    ("POST", "/v1/workflows/runs/{run_id}/rerun"): "run.control",
    ("POST", "/v1/workflows/{workflow_id}/pause"): "run.control",
    ("POST", "/v1/workflows/{workflow_id}/resume"): "run.control",
    ("PATCH", "/v1/workflows/nodes/runs/{node_run_id}"): ("callback-or", "node.complete"),
    ("PATCH", "/v1/workflows/runs/{run_id}/nodes/{node_run_id}"): ("callback-or", "node.complete"),
    ("POST", "/v1/workflows/nodes/runs/{node_run_id}/logs"): ("callback-or", "node.complete"),
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/approval"): "approval.decide",
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/input"): "approval.decide",
    ("POST", "/v1/org/{org_id}/workflows/runs/claim-pending"): "node.complete",
    ("PATCH", "/v1/org/{org_id}/workflows/runs/ack"): "node.complete",
    ("POST", "/v1/workflows"): "workflow.write",
    ("GET", "/v1/workflows"): "workflow.read",
    ("GET", "/v1/workflows/{workflow_id}"): "workflow.read",
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}"): "workflow.read",
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "workflow.read",
    ("POST", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "workflow.write",
    ("PATCH", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "workflow.write",
    ("DELETE", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "workflow.write",
    ("PUT", "/v1/workflows/{workflow_id}"): "workflow.write",
    ("DELETE", "/v1/workflows/{workflow_id}"): "workflow.write",
    ("GET", "/v1/workflows/{workflow_id}/versions"): "workflow.read",
    ("GET", "/v1/workflows/{workflow_id}/versions/{version}"): "workflow.read",
    ("PUT", "/v1/workflows/{workflow_id}/tags/{tag}"): "workflow.write",
    ("GET", "/v1/workflows/{workflow_id}/tags/{tag}"): "workflow.read",
    ("GET", "/v1/workflows/{workflow_id}/metrics"): "run.read",
    ("GET", "/metrics"): "run.read",
    ("POST", "/v1/api-keys"): "apikey.manage",
    ("GET", "/v1/api-keys"): "apikey.manage",
    ("DELETE", "/v1/api-keys/{key_id}"): "apikey.manage",
    ("POST", "/v1/workspaces"): "workspace.manage",
    ("GET", "/v1/workspaces"): "workspace.read",
    ("GET", "/v1/audit"): "audit.read",
    ("GET", "/v1/audit/verify"): "workspace.manage",  # the one chain spans every workspace
    ("PUT", "/v1/agents/{identifier}"): "workflow.write",
    ("GET", "/v1/agents/{identifier}"): "workflow.read",
    ("DELETE", "/v1/agents/{identifier}"): "workflow.write",
    # A stdio MCP server is a command the executor starts: as trusted as secrets.
    ("PUT", "/v1/mcp-servers/{identifier}"): "secret.write",
    ("GET", "/v1/mcp-servers/{identifier}"): "workflow.read",
    ("DELETE", "/v1/mcp-servers/{identifier}"): "secret.write",
    ("GET", "/v1/ai/providers"): "workflow.read",
}


def route_keys(routes: Iterable[APIRoute]) -> set[tuple[str, str]]:
    return {(method, route.path) for route in routes for method in route.methods or () if method != "HEAD"}


def check_routes(routes: Iterable[APIRoute]) -> None:
    """RuntimeError naming every route the table does not cover."""
    missing = sorted(route_keys(routes) - ROUTES.keys())
    if missing:
        raise RuntimeError(f"routes without an access rule in services/trigger/authz.py: {missing}")


def need_of(request: Request) -> Need:
    route = cast(APIRoute, request.scope["route"])
    return ROUTES[(request.method, route.path)]


def principal_of(request: Request) -> Principal | None:
    return cast(Principal | None, getattr(request.state, "principal", None))


async def authorize(request: Request) -> None:
    """The app-wide dependency: 403 (recorded as `auth.denied`) when the caller's role lacks the
    route's action."""
    need = need_of(request)
    principal = principal_of(request)
    if need == OPEN or (isinstance(need, tuple) and principal is None):
        return  # open, or a callback-token PATCH (the route checks the token)
    action = need[1] if isinstance(need, tuple) else need
    if principal is None or not allows(principal.role, action):
        role = principal.role if principal is not None else "anonymous"
        await context_of(request).audit(principal, "auth.denied", f"{request.method} {request.url.path}",
                                        {"needs": action})
        raise ForbiddenError(f"role {role!r} may not {action} (this route needs the {action!r} permission)")


def context_of(request: Request) -> AuditingContext:
    return cast(AuditingContext, request.app.state.context)


class AuditingContext(Protocol):
    async def audit(self, caller: Principal | None, action: str, target: str,
                    details: dict[str, Any] | None = None) -> None: ...
