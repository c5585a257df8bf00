"""The permission matrix: every route of the API (services/trigger/authz.py `ROUTES`) × each role ×
a key of the objects' own workspace or of another one × no key and a bad key, with the expected
status of every cell. A route added to the API without a sample here fails the first test.

Expected, per cell:
- no key, or an unknown key: 401 (open routes answer as they would anyway);
- a role without the route's action: 403, whichever workspace;
- a role with it, in the objects' workspace: neither 401, 403 nor 404;
- a role with it, in another workspace: 404 for routes that address an object of the first workspace
  (as if it did not exist), otherwise as in its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from libs.access.principal import ROLES, Principal, Role
from libs.access.roles import at_least
from libs.catalog.entities import EntityPatch
from libs.catalog.store import Catalog
from services.trigger.authz import OPEN, ROUTES
from tests.auth_helpers import bearer, user_headers
from tests.service.test_embedded_runs import chain, create
from tests.service.test_waiting_nodes import node, start, until_waiting

OTHER = "zeta"
BAD_KEY = "stl_" + "q" * 52


@dataclass
class World:
    """Objects of the default workspace that the routes address."""

    api: httpx.AsyncClient
    engine: Any
    run_id: str = ""
    node_run_id: str = ""
    counter: itertools.count[int] = itertools.count()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    async def new_workflow(self) -> str:
        identifier = self.fresh("doomed")
        await create(self.api, chain(identifier, node("noop", {"type": "NOOP"})))
        return identifier

    async def new_secret(self) -> str:
        name = self.fresh("doomed")
        assert (await self.api.put(f"/v1/secrets/{name}", json={"value": "value-1234"})).status_code == 201
        return name

    async def new_key(self) -> str:
        answer = await self.api.post("/v1/api-keys", json={"name": "n", "workspace": "default", "role": "viewer",
                                                           "user": "x@example.com"})
        return str(answer.json()["apiKey"]["id"])


Request = tuple[str, Any]
Build = Callable[[World, Principal | None], Awaitable[Request]]


@dataclass(frozen=True)
class Sample:
    build: Build
    scoped: bool = False
    """Addresses an object of the default workspace: another workspace's key gets 404."""
    owner_crosses: bool = False
    """An owner reaches the object from any workspace (API keys)."""


def fixed(path: str, body: Any = None, *, scoped: bool = False) -> Sample:
    async def build(world: World, caller: Principal | None) -> Request:
        return path.format(run=world.run_id, node_run=world.node_run_id), body
    return Sample(build, scoped=scoped)


def made(build: Build, *, scoped: bool = False, owner_crosses: bool = False) -> Sample:
    return Sample(build, scoped=scoped, owner_crosses=owner_crosses)


async def _delete_workflow(world: World, caller: Principal | None) -> Request:
    return f"/v1/workflows/{await world.new_workflow()}", None


async def _delete_secret(world: World, caller: Principal | None) -> Request:
    return f"/v1/secrets/{await world.new_secret()}", None


async def _delete_key(world: World, caller: Principal | None) -> Request:
    return f"/v1/api-keys/{await world.new_key()}", None


async def _create_workflow(world: World, caller: Principal | None) -> Request:
    return "/v1/workflows", chain(world.fresh("made"), node("noop", {"type": "NOOP"}))


async def _create_key(world: World, caller: Principal | None) -> Request:
    workspace = caller.workspace if caller is not None else "default"
    return "/v1/api-keys", {"name": "k", "workspace": workspace, "role": "viewer", "user": "k@example.com"}


async def _ack(world: World, caller: Principal | None) -> Request:
    return "/v1/org/acme/workflows/runs/ack", {"nodeRunIdentifier": world.node_run_id}


async def _create_workspace(world: World, caller: Principal | None) -> Request:
    return "/v1/workspaces", {"identifier": world.fresh("ws"), "title": "W"}


POLICY = {"combinator": "and", "rules": [{"property": {"context": "user", "property": "role"}, "operator": "=",
                                         "value": "runner"}]}


def _node_permissions(with_policy: bool) -> Build:
    """A fresh workflow's trigger-node permissions path; with `with_policy`, the node has a policy."""
    async def build(world: World, caller: Principal | None) -> Request:
        path = f"/v1/workflows/{await world.new_workflow()}/nodes/trigger/permissions"
        if with_policy:
            assert (await world.api.post(path, json=POLICY)).status_code == 201
        return path, POLICY
    return build


AGENT = {"title": "A", "tools": ["list_entities"]}
MCP_SERVER = {"transport": "http", "url": "http://127.0.0.1:9/mcp"}


def _stored(collection: str, body: dict[str, Any]) -> Build:
    """A fresh agent or MCP server of the default workspace (made with the owner key), addressed."""
    async def build(world: World, caller: Principal | None) -> Request:
        path = f"/v1/{collection}/{world.fresh('made')}"
        assert (await world.api.put(path, json=body)).status_code == 201
        return path, None
    return build


EVENT = {"action": "CREATE", "context": {"blueprintIdentifier": "service", "entityIdentifier": "e1"},
         "diff": {"before": None, "after": {"identifier": "e1"}}}
DONE = {"status": "COMPLETED", "result": "SUCCESS"}

SAMPLES: dict[tuple[str, str], Sample] = {
    ("GET", "/healthz"): fixed("/healthz"),
    ("GET", "/readyz"): fixed("/readyz"),
    ("POST", "/v1/hooks/{workflow_id}"): fixed("/v1/hooks/wf", {"a": 1}),
    ("PUT", "/v1/secrets/{name}"): fixed("/v1/secrets/written", {"value": "value-1234"}),
    ("GET", "/v1/secrets"): fixed("/v1/secrets"),
    ("DELETE", "/v1/secrets/{name}"): made(_delete_secret, scoped=True),
    ("GET", "/v1/blueprints/{blueprint}/entities"): fixed("/v1/blueprints/service/entities"),
    ("GET", "/v1/blueprints/{blueprint}/entities/{identifier:path}"): fixed("/v1/blueprints/service/entities/svc",
                                                                             scoped=True),
    ("POST", "/v1/catalog/events"): fixed("/v1/catalog/events", EVENT),
    ("POST", "/v1/workflows/{workflow_id}/runs"): fixed("/v1/workflows/wf/runs", {}, scoped=True),
    ("GET", "/v1/workflows/runs"): fixed("/v1/workflows/runs"),
    ("GET", "/v1/workflows/runs/{run_id}"): fixed("/v1/workflows/runs/{run}", scoped=True),
    ("POST", "/v1/workflows/runs/{run_id}/cancel"): fixed("/v1/workflows/runs/{run}/cancel", scoped=True),
    ("POST", "/v1/workflows/runs/{run_id}/rerun"): fixed("/v1/workflows/runs/{run}/rerun", {}, scoped=True),
    ("POST", "/v1/workflows/{workflow_id}/pause"): fixed("/v1/workflows/wf/pause", scoped=True),
    ("POST", "/v1/workflows/{workflow_id}/resume"): fixed("/v1/workflows/wf/resume", scoped=True),
    ("PATCH", "/v1/workflows/nodes/runs/{node_run_id}"): fixed("/v1/workflows/nodes/runs/{node_run}", DONE,
                                                               scoped=True),
    ("PATCH", "/v1/workflows/runs/{run_id}/nodes/{node_run_id}"): fixed(
        "/v1/workflows/runs/{run}/nodes/{node_run}", DONE, scoped=True),
    ("POST", "/v1/workflows/nodes/runs/{node_run_id}/logs"): fixed(
        "/v1/workflows/nodes/runs/{node_run}/logs", {"logs": [{"level": "INFO", "message": "m"}]}, scoped=True),
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/approval"): fixed(
        "/v1/workflows/runs/{run}/nodes/gate/approval", {"decision": "reject"}, scoped=True),
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/input"): fixed(
        "/v1/workflows/runs/{run}/nodes/gate/input", {"button": "ok"}, scoped=True),
    ("POST", "/v1/org/{org_id}/workflows/runs/claim-pending"): fixed(
        "/v1/org/acme/workflows/runs/claim-pending", {"installationId": "inst-1"}),
    ("PATCH", "/v1/org/{org_id}/workflows/runs/ack"): made(_ack, scoped=True),
    ("POST", "/v1/workflows"): made(_create_workflow),
    ("GET", "/v1/workflows"): fixed("/v1/workflows"),
    ("GET", "/v1/workflows/{workflow_id}"): fixed("/v1/workflows/wf", scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}"): fixed("/v1/workflows/wf/nodes/gate", scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): made(_node_permissions(True), scoped=True),
    ("POST", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): made(_node_permissions(False), scoped=True),
    ("PATCH", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): made(_node_permissions(True), scoped=True),
    ("DELETE", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): made(_node_permissions(True),
                                                                             scoped=True),
    ("PUT", "/v1/workflows/{workflow_id}"): fixed("/v1/workflows/wf", None, scoped=True),
    ("DELETE", "/v1/workflows/{workflow_id}"): made(_delete_workflow, scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/versions"): fixed("/v1/workflows/wf/versions", scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/versions/{version}"): fixed("/v1/workflows/wf/versions/1", scoped=True),
    ("PUT", "/v1/workflows/{workflow_id}/tags/{tag}"): fixed("/v1/workflows/wf/tags/$STABLE", {"version": 1},
                                                             scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/tags/{tag}"): fixed("/v1/workflows/wf/tags/$LIVE", scoped=True),
    ("GET", "/v1/workflows/{workflow_id}/metrics"): fixed("/v1/workflows/wf/metrics", scoped=True),
    ("GET", "/metrics"): fixed("/metrics"),
    ("POST", "/v1/api-keys"): made(_create_key),
    ("GET", "/v1/api-keys"): fixed("/v1/api-keys"),
    ("DELETE", "/v1/api-keys/{key_id}"): made(_delete_key, scoped=True, owner_crosses=True),
    ("POST", "/v1/workspaces"): made(_create_workspace),
    ("GET", "/v1/workspaces"): fixed("/v1/workspaces"),
    ("GET", "/v1/audit"): fixed("/v1/audit"),
    ("GET", "/v1/audit/verify"): fixed("/v1/audit/verify"),
    ("PUT", "/v1/agents/{identifier}"): fixed("/v1/agents/written", AGENT),
    ("GET", "/v1/agents/{identifier}"): made(_stored("agents", AGENT), scoped=True),
    ("DELETE", "/v1/agents/{identifier}"): made(_stored("agents", AGENT), scoped=True),
    ("PUT", "/v1/mcp-servers/{identifier}"): fixed("/v1/mcp-servers/written", MCP_SERVER),
    ("GET", "/v1/mcp-servers/{identifier}"): made(_stored("mcp-servers", MCP_SERVER), scoped=True),
    ("DELETE", "/v1/mcp-servers/{identifier}"): made(_stored("mcp-servers", MCP_SERVER), scoped=True),
    ("GET", "/v1/ai/providers"): fixed("/v1/ai/providers"),
}

LEAST: dict[tuple[str, str], Role] = {
    ("PUT", "/v1/secrets/{name}"): "admin",
    ("GET", "/v1/secrets"): "admin",
    ("DELETE", "/v1/secrets/{name}"): "admin",
    ("GET", "/v1/blueprints/{blueprint}/entities"): "viewer",
    ("GET", "/v1/blueprints/{blueprint}/entities/{identifier:path}"): "viewer",
    ("POST", "/v1/catalog/events"): "editor",
    ("POST", "/v1/workflows/{workflow_id}/runs"): "runner",
    ("GET", "/v1/workflows/runs"): "viewer",
    ("GET", "/v1/workflows/runs/{run_id}"): "viewer",
    ("POST", "/v1/workflows/runs/{run_id}/cancel"): "editor",
    ("POST", "/v1/workflows/runs/{run_id}/rerun"): "editor",
    ("POST", "/v1/workflows/{workflow_id}/pause"): "editor",
    ("POST", "/v1/workflows/{workflow_id}/resume"): "editor",
    ("PATCH", "/v1/workflows/nodes/runs/{node_run_id}"): "editor",
    ("PATCH", "/v1/workflows/runs/{run_id}/nodes/{node_run_id}"): "editor",
    ("POST", "/v1/workflows/nodes/runs/{node_run_id}/logs"): "editor",
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/approval"): "viewer",
    ("POST", "/v1/workflows/runs/{run_id}/nodes/{node}/input"): "viewer",
    ("POST", "/v1/org/{org_id}/workflows/runs/claim-pending"): "editor",
    ("PATCH", "/v1/org/{org_id}/workflows/runs/ack"): "editor",
    ("POST", "/v1/workflows"): "editor",
    ("GET", "/v1/workflows"): "viewer",
    ("GET", "/v1/workflows/{workflow_id}"): "viewer",
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}"): "viewer",
    ("GET", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "viewer",
    ("POST", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "editor",
    ("PATCH", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "editor",
    ("DELETE", "/v1/workflows/{workflow_id}/nodes/{node}/permissions"): "editor",
    ("PUT", "/v1/workflows/{workflow_id}"): "editor",
    ("DELETE", "/v1/workflows/{workflow_id}"): "editor",
    ("GET", "/v1/workflows/{workflow_id}/versions"): "viewer",
    ("GET", "/v1/workflows/{workflow_id}/versions/{version}"): "viewer",
    ("PUT", "/v1/workflows/{workflow_id}/tags/{tag}"): "editor",
    ("GET", "/v1/workflows/{workflow_id}/tags/{tag}"): "viewer",
    ("GET", "/v1/workflows/{workflow_id}/metrics"): "viewer",
    ("GET", "/metrics"): "viewer",
    ("POST", "/v1/api-keys"): "admin",
    ("GET", "/v1/api-keys"): "admin",
    ("DELETE", "/v1/api-keys/{key_id}"): "admin",
    ("POST", "/v1/workspaces"): "owner",
    ("GET", "/v1/workspaces"): "viewer",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/audit/verify"): "owner",
    ("PUT", "/v1/agents/{identifier}"): "editor",
    ("GET", "/v1/agents/{identifier}"): "viewer",
    ("DELETE", "/v1/agents/{identifier}"): "editor",
    ("PUT", "/v1/mcp-servers/{identifier}"): "admin",
    ("GET", "/v1/mcp-servers/{identifier}"): "viewer",
    ("DELETE", "/v1/mcp-servers/{identifier}"): "admin",
    ("GET", "/v1/ai/providers"): "viewer",
}
"""The least role each route admits, written independently of authz.ROUTES (routes absent are open)."""

WORKFLOW = chain("wf", node("gate", {"type": "APPROVAL", "message": "ok?",
                                     "assignees": [f"role:{role}" for role in ROLES]}))


def test_every_route_has_a_sample() -> None:
    assert set(SAMPLES) == set(ROUTES), "add the new route to SAMPLES (and to authz.ROUTES)"
    assert {route for route, need in ROUTES.items() if need != OPEN} == set(LEAST)


@pytest.fixture
async def world(api: httpx.AsyncClient, engine: Any) -> World:
    await create(api, WORKFLOW)
    run_id = await start(api, "wf")
    waiting = await until_waiting(api, run_id, "gate")
    await Catalog(engine.store, engine.clock).upsert("service", EntityPatch(identifier="svc"))
    created = await api.post("/v1/workspaces", json={"identifier": OTHER, "title": "Zeta"})
    assert created.status_code == 201, created.text
    return World(api=api, engine=engine, run_id=run_id, node_run_id=waiting["identifier"])


def expected(route: tuple[str, str], sample: Sample, caller: Principal | None, status: int) -> bool:
    if route not in LEAST:
        return status == (401 if route[1].startswith("/v1/hooks") else 200)
    if caller is None:
        return status == 401
    if not at_least(caller.role, LEAST[route]):
        return status == 403
    crosses = caller.workspace != "default" and sample.scoped
    if crosses and not (sample.owner_crosses and caller.role == "owner"):
        return status == 404
    return status not in (401, 403, 404)


async def test_the_matrix(world: World, api: httpx.AsyncClient) -> None:
    callers: list[tuple[Principal | None, dict[str, str]]] = [(None, {}), (None, bearer(BAD_KEY))]
    for role, workspace in itertools.product(ROLES, ("default", OTHER)):
        user = f"{role}.{workspace}@example.com"
        headers = await user_headers(api, user, role=role, workspace=workspace)
        callers.append((Principal(key_id="", user=user, role=role, workspace=workspace), headers))
    wrong: list[str] = []
    transport = httpx.ASGITransport(app=world.engine.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as bare:
        for route, sample in SAMPLES.items():
            for caller, headers in callers:
                path, body = await sample.build(world, caller)
                body = WORKFLOW if route == ("PUT", "/v1/workflows/{workflow_id}") else body
                answer = await bare.request(route[0], path, json=body, headers=headers)
                if not expected(route, sample, caller, answer.status_code):
                    who = f"{caller.role}@{caller.workspace}" if caller else ("bad key" if headers else "no key")
                    wrong.append(f"{route[0]} {path} as {who}: {answer.status_code} {answer.text[:120]}")
    assert not wrong, "\n".join(wrong)
