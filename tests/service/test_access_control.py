"""Access control end to end on the embedded engine: API keys, roles, workspaces, decisions by
identity, callback tokens, trigger permissions. Every refusal is checked to have changed nothing
(by reading the store back)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from libs.catalog.entities import EntityPatch
from libs.catalog.store import Catalog
from libs.core.workspaces import DEFAULT_WORKSPACE
from libs.store.ports import RunFilter
from services.trigger.app import build_app
from tests.auth_helpers import bearer, user_headers
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, wait_run, webhook
from tests.service.test_waiting_nodes import decision_path, node, run_of, start, until_waiting


async def workspace_headers(api: httpx.AsyncClient, workspace: str, role: str = "admin",
                            user: str = "other@example.com") -> dict[str, str]:
    created = await api.post("/v1/workspaces", json={"identifier": workspace, "title": workspace.title()})
    assert created.status_code in (201, 409), created.text
    return await user_headers(api, user, role=role, workspace=workspace)


def approval(identifier: str, **config: Any) -> dict[str, Any]:
    gate = node("gate", {"type": "APPROVAL", "assignees": ["bob@example.com", "role:admin"], "message": "ok?", **config})
    return chain(identifier, gate)


# ---- identity -------------------------------------------------------------------------------------

async def test_the_first_start_writes_an_owner_key_file_readable_by_its_owner_only(engine: Any) -> None:
    assert engine.admin_key_path.stat().st_mode & 0o777 == 0o600
    assert engine.admin_key.startswith("stl_")
    stored = await engine.store.list_entries("api-key")
    assert len(stored) == 1 and stored[0].data["role"] == "owner"
    assert engine.admin_key not in str(stored[0].data), "only a hash of the key is stored"


async def test_requests_without_a_valid_key_are_refused_and_change_nothing(engine: Any, api: httpx.AsyncClient) -> None:
    assert (await api.put("/v1/secrets/token", json={"value": "s3cret-value"})).status_code == 201
    base = httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://127.0.0.1")
    async with base as anonymous:
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nope"},
                        {"X-API-Key": "stl_" + "b" * 52}):
            refused = await anonymous.delete("/v1/secrets/token", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"] == "unauthorized"
        assert (await anonymous.get("/healthz")).status_code == 200
    assert await engine.app.state.secrets.reveal("token") == "s3cret-value"


async def test_a_key_is_shown_once_and_a_revoked_key_stops_working(api: httpx.AsyncClient, engine: Any) -> None:
    created = await api.post("/v1/api-keys", json={"name": "ci", "workspace": "default", "role": "runner",
                                                   "user": "ci@example.com"})
    assert created.status_code == 201, created.text
    key, info = created.json()["key"], created.json()["apiKey"]
    assert set(info) == {"id", "name", "workspace", "role", "user", "createdAt", "expiresAt"}
    listed = await api.get("/v1/api-keys")
    assert key not in listed.text and info["id"] in listed.text
    assert (await api.get("/v1/workflows", headers=bearer(key))).status_code == 200
    assert (await api.delete(f"/v1/api-keys/{info['id']}")).status_code == 200
    assert (await api.get("/v1/workflows", headers=bearer(key))).status_code == 401
    assert (await api.delete(f"/v1/api-keys/{info['id']}")).status_code == 404


async def test_another_replica_honours_a_revocation_within_its_recheck_time(api: httpx.AsyncClient, engine: Any) -> None:
    now = [time.time()]
    replica = build_app(engine.settings, engine.store, engine.bus, clock=lambda: now[0])
    key = (await api.post("/v1/api-keys", json={"name": "r", "workspace": "default", "role": "viewer",
                                                "user": "v@example.com"})).json()
    transport = httpx.ASGITransport(app=replica)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=bearer(key["key"])) as other:
        assert (await other.get("/v1/workflows")).status_code == 200
        assert (await api.delete(f"/v1/api-keys/{key['apiKey']['id']}")).status_code == 200
        now[0] += 1.0
        assert (await other.get("/v1/workflows")).status_code == 401


async def test_key_bodies_are_checked(api: httpx.AsyncClient) -> None:
    cases = [({"name": "x", "workspace": "default", "role": "god", "user": "u"}, "/role"),
             ({"name": "x", "workspace": "nowhere", "role": "viewer", "user": "u"}, "/workspace"),
             ({"name": "x", "workspace": "default", "role": "viewer", "user": "u",
               "expiresAt": "2001-01-01T00:00:00Z"}, "/expiresAt")]
    for body, pointer in cases:
        refused = await api.post("/v1/api-keys", json=body)
        assert refused.status_code == 422, refused.text
        assert pointer in [d["pointer"] for d in refused.json()["details"]]


async def test_an_expired_key_is_refused(engine: Any, api: httpx.AsyncClient) -> None:
    from libs.access.keystore import ApiKeys

    _, key = await ApiKeys(engine.store).create(name="old", workspace="default", role="owner", user="o",
                                                expires_at=time.time() - 1)
    assert (await api.get("/v1/workflows", headers=bearer(key))).status_code == 401


# ---- roles -----------------------------------------------------------------------------------------

async def test_roles_limit_what_a_key_may_do(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, chain("roles-wf", node("noop", {"type": "NOOP"})))
    viewer = await user_headers(api, "v@example.com", role="viewer")
    admin = await user_headers(api, "a@example.com", role="admin")
    refused = await api.post("/v1/workflows/roles-wf/runs", json={}, headers=viewer)
    assert refused.status_code == 403 and "run.start" in refused.json()["message"]
    assert (await api.get("/v1/secrets", headers=viewer)).status_code == 403
    assert (await api.post("/v1/workspaces", json={"identifier": "x", "title": "X"}, headers=admin)).status_code == 403
    owner_key = await api.post("/v1/api-keys", headers=admin,
                               json={"name": "n", "workspace": "default", "role": "owner", "user": "u"})
    assert owner_key.status_code == 403
    runs, total = await engine.store.list_runs(RunFilter(), limit=10, offset=0)
    assert total == 0


# ---- workspaces ------------------------------------------------------------------------------------

async def test_workspaces_are_isolated_and_may_reuse_identifiers(api: httpx.AsyncClient, engine: Any) -> None:
    other = await workspace_headers(api, "acme")
    await create(api, approval("shared"))
    mine = await api.post("/v1/workflows", json=chain("shared", node("noop", {"type": "NOOP"})), headers=other)
    assert mine.status_code == 201, mine.text
    assert mine.json()["workflow"]["workspace"] == "acme" and mine.json()["workflow"]["identifier"] == "shared"
    run_id = await start(api, "shared")
    waiting = await until_waiting(api, run_id, "gate")
    assert (await api.put("/v1/secrets/token", json={"value": "default-only"})).status_code == 201
    for path in ("/v1/workflows/runs/" + run_id, f"/v1/workflows/nodes/runs/{waiting['identifier']}",
                 f"/v1/workflows/runs/{run_id}/cancel", f"/v1/workflows/runs/{run_id}/rerun"):
        method = "GET" if path.endswith(run_id) else ("PATCH" if "/nodes/runs/" in path else "POST")
        body = {"status": "IN_PROGRESS"} if method == "PATCH" else None
        answer = await api.request(method, path, json=body, headers=other)
        assert answer.status_code == 404, (path, answer.text)
    decided = await api.post(decision_path(run_id), json={"decision": "reject"}, headers=other)
    assert decided.status_code == 404
    assert (await api.get("/v1/workflows/runs", headers=other)).json()["total"] == 0
    assert [s["name"] for s in (await api.get("/v1/secrets", headers=other)).json()["secrets"]] == []
    assert (await api.delete("/v1/secrets/token", headers=other)).status_code == 404
    for path in ("/v1/workflows/shared/tags/$LIVE", "/v1/blueprints/service/entities/svc"):
        assert (await api.get(path, headers=other)).status_code == (200 if "tags" in path else 404), path
    await Catalog(engine.store, engine.clock).upsert("service", EntityPatch(identifier="svc"))
    assert (await api.get("/v1/blueprints/service/entities/svc")).status_code == 200
    assert (await api.get("/v1/blueprints/service/entities/svc", headers=other)).status_code == 404
    audit = (await api.get("/v1/audit", headers=other)).json()["records"]
    assert audit and all(r["workspace"] == "acme" for r in audit), "an admin reads its own workspace's records"
    other_version = await api.get("/v1/workflows/shared/versions/1", headers=other)
    assert other_version.json()["version"]["definition"]["nodes"][1]["config"]["type"] == "NOOP"
    assert (await run_of(api, run_id))["status"] == "IN_PROGRESS"
    assert await engine.app.state.secrets.reveal("token") == "default-only"


async def test_a_workflow_reads_only_its_own_workspace_secrets_and_catalog(api: httpx.AsyncClient, engine: Any,
                                                                          target: Target) -> None:
    other = await workspace_headers(api, "beta")
    assert (await api.put("/v1/secrets/token", json={"value": "default-value"})).status_code == 201
    assert (await api.put("/v1/secrets/token", json={"value": "beta-value"}, headers=other)).status_code == 201
    hook = webhook("send", f"{target.base_url}/beta", config={"headers": {"X-Token": "{{ .secrets[\"token\"] }}"}})
    upsert = node("entity", {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                             "mapping": {"identifier": "svc", "properties": {"tier": "gold"}}})
    assert (await api.post("/v1/workflows", json=chain("reads", hook, upsert), headers=other)).status_code == 201
    started = await api.post("/v1/workflows/reads/runs", json={}, headers=other)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://127.0.0.1",
                                 headers=other) as beta:
        run = await wait_run(beta, started.json()["workflowRun"]["identifier"])
    assert run["result"] == "SUCCESS", run
    assert target.requests[-1]["headers"]["x-token"] == "beta-value"
    assert (await api.get("/v1/blueprints/service/entities/svc", headers=other)).status_code == 200
    assert (await api.get("/v1/blueprints/service/entities/svc")).status_code == 404


# ---- decisions by identity --------------------------------------------------------------------------

async def test_a_forged_approval_is_refused(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, approval("forged"))
    run_id = await start(api, "forged")
    waiting = await until_waiting(api, run_id, "gate")
    mallory = await user_headers(api, "mallory@example.com", role="editor")
    forged = await api.post(decision_path(run_id), json={"decision": "approve", "by": "bob@example.com"},
                            headers=mallory)
    assert forged.status_code == 403 and "not the caller" in forged.json()["message"]
    stranger = await api.post(decision_path(run_id), json={"decision": "approve"}, headers=mallory)
    assert stranger.status_code == 403
    assert (await engine.store.get_node_run_by_id(waiting["identifier"])).status == "WAITING"
    assert await engine.store.get_entry("approval-decisions", f"{run_id}/gate/1") is None


async def test_requesters_approve_their_own_run_only_when_the_node_allows_it(api: httpx.AsyncClient) -> None:
    bob = await user_headers(api, "bob@example.com", role="runner")
    for identifier, allowed in (("self-no", False), ("self-yes", True)):
        await create(api, approval(identifier, allowSelfApproval=allowed))
        started = await api.post(f"/v1/workflows/{identifier}/runs", json={}, headers=bob)
        run_id = started.json()["workflowRun"]["identifier"]
        assert started.json()["workflowRun"]["createdBy"] == "bob@example.com"
        await until_waiting(api, run_id, "gate")
        decided = await api.post(decision_path(run_id), json={"decision": "approve"}, headers=bob)
        assert decided.status_code == (200 if allowed else 403), decided.text
    by_role = await api.post(decision_path(run_id), json={"decision": "approve"})
    assert by_role.status_code == 409, "decided already"


async def test_a_role_assignee_decides(api: httpx.AsyncClient) -> None:
    await create(api, approval("by-role"))
    run_id = await start(api, "by-role")
    await until_waiting(api, run_id, "gate")
    admin = await user_headers(api, "ada@example.com", role="admin")
    assert (await api.post(decision_path(run_id), json={"decision": "approve"}, headers=admin)).status_code == 200
    assert (await wait_run(api, run_id))["variables"]["outputs"]["gate"]["by"] == "ada@example.com"


async def test_a_callback_token_completes_its_node_run_without_a_key(api: httpx.AsyncClient, engine: Any,
                                                                     target: Target) -> None:
    hook = webhook("ask", f"{target.base_url}/async/ask", config={"synchronized": False})
    await create(api, chain("called-back", hook, webhook("other", f"{target.base_url}/async/other",
                                                         config={"synchronized": False})))
    run_id = await start(api, "called-back")
    asked = await until_waiting(api, run_id, "ask")
    token = (await target.wait_for("/async/ask"))[0]["headers"]["x-stepline-callback-token"]
    transport = httpx.ASGITransport(app=engine.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as outside:
        path = f"/v1/workflows/nodes/runs/{asked['identifier']}"
        done = {"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": True}}
        wrong = await outside.patch(path, json=done, headers={"X-Stepline-Callback-Token": token[:-2] + "xx"})
        assert wrong.status_code == 401
        assert (await engine.store.get_node_run_by_id(asked["identifier"])).status == "WAITING"
        assert (await outside.patch(path, json=done, headers={"X-Stepline-Callback-Token": token})).status_code == 200
        other = await until_waiting(api, run_id, "other")
        reused = await outside.patch(f"/v1/workflows/nodes/runs/{other['identifier']}", json=done,
                                     headers={"X-Stepline-Callback-Token": token})
        assert reused.status_code == 401, "a token opens only its own node run"
    assert token not in str(await run_of(api, run_id))


async def test_runners_may_not_complete_node_runs(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("no-patch", webhook("ask", f"{target.base_url}/async/ask", config={"synchronized": False})))
    run_id = await start(api, "no-patch")
    asked = await until_waiting(api, run_id, "ask")
    runner = await user_headers(api, "r@example.com", role="runner")
    refused = await api.patch(f"/v1/workflows/nodes/runs/{asked['identifier']}", headers=runner,
                              json={"status": "COMPLETED", "result": "SUCCESS"})
    assert refused.status_code == 403 and "node.complete" in refused.json()["message"]


# ---- trigger permissions ----------------------------------------------------------------------------

async def test_self_serve_permissions_and_private_runs(api: httpx.AsyncClient) -> None:
    definition = chain("private", node("noop", {"type": "NOOP"}))
    definition["nodes"][0]["config"].update({"permissions": {"users": ["rita@example.com"], "roles": []},
                                             "allowAnyoneToViewRuns": False})
    await create(api, definition)
    rita = await user_headers(api, "rita@example.com", role="runner")
    rob = await user_headers(api, "rob@example.com", role="runner")
    refused = await api.post("/v1/workflows/private/runs", json={}, headers=rob)
    assert refused.status_code == 403 and "permissions" in refused.json()["message"]
    started = await api.post("/v1/workflows/private/runs", json={}, headers=rita)
    assert started.status_code == 201, started.text
    run_id = started.json()["workflowRun"]["identifier"]
    assert (await api.get(f"/v1/workflows/runs/{run_id}", headers=rita)).status_code == 200
    assert (await api.get(f"/v1/workflows/runs/{run_id}", headers=rob)).status_code == 404
    listed = (await api.get("/v1/workflows/runs", headers=rob)).json()["workflowRuns"]
    assert run_id not in [r["identifier"] for r in listed]
    assert (await api.get(f"/v1/workflows/runs/{run_id}")).status_code == 200, "owners read every run"


# ---- audit -----------------------------------------------------------------------------------------

async def test_changes_and_denials_are_audited_in_one_verifiable_chain(api: httpx.AsyncClient) -> None:
    await create(api, chain("audited", node("noop", {"type": "NOOP"})))
    await start(api, "audited")
    assert (await api.put("/v1/secrets/k", json={"value": "v-123456"})).status_code == 201
    viewer = await user_headers(api, "v@example.com", role="viewer")
    assert (await api.delete("/v1/secrets/k", headers=viewer)).status_code == 403
    records = (await api.get("/v1/audit", params={"limit": 100})).json()["records"]
    actions = [r["action"] for r in records]
    for expected in ("workflow.created", "run.started", "secret.written", "apikey.created", "auth.denied"):
        assert expected in actions, actions
    denied = next(r for r in records if r["action"] == "auth.denied")
    assert denied["actor"] == "v@example.com" and denied["workspace"] == DEFAULT_WORKSPACE
    assert "v-123456" not in str(records)
    verified = (await api.get("/v1/audit/verify")).json()
    assert verified["intact"] is True and verified["count"] == len(records)


# ---- events and queue messages start their own workspace's triggers only -----------------------------

async def test_catalog_events_and_queue_messages_start_only_their_workspace(api: httpx.AsyncClient,
                                                                           engine: Any) -> None:
    from tests.service.test_catalog import listener
    from tests.service.test_queue_trigger import external, queued, runs_of, wait_runs

    other = await workspace_headers(api, "gamma")
    for headers in ({}, other):
        assert (await api.post("/v1/workflows", json=listener("on-service"), headers=headers)).status_code == 201
        assert (await api.post("/v1/workflows", json=queued("on-order"), headers=headers)).status_code == 201
    event = {"action": "CREATE", "context": {"blueprintIdentifier": "service", "entityIdentifier": "svc"},
             "diff": {"before": None, "after": {"identifier": "svc"}}, "workspace": "default"}
    assert (await api.post("/v1/catalog/events", json=event, headers=other)).status_code == 202
    await engine.bus.publish("orders.v1", external({"order": 1, "workspace": "gamma"}, offset=0))
    started = await wait_runs(engine, "gamma~on-service", 1) + await wait_runs(engine, "gamma~on-order", 1)
    assert all(run.workflow.startswith("gamma~") for run in started)
    await engine.bus.drain()
    await engine.bus.drain()
    assert await runs_of(engine, "on-service") == [] and await runs_of(engine, "on-order") == []
