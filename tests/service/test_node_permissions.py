"""Port's node-permission routes (`/v1/workflows/{wf}/nodes/{node}/permissions`) on the embedded engine:
the `{combinator, rules}` policy is stored in the SELF_SERVE_TRIGGER's `config.permissions.policy`,
answered in Port's `{ok, workflow}` shape, and enforced when a run starts."""

from __future__ import annotations

from typing import Any

import httpx

from tests.auth_helpers import user_headers
from tests.service.test_embedded_runs import chain, create
from tests.service.test_waiting_nodes import node

FORM_DEV = {"combinator": "or", "rules": [
    {"property": {"context": "form", "property": "env"}, "operator": "in", "value": ["dev", "qa"]},
    {"property": {"context": "user", "property": "email"}, "operator": "=", "value": "lead@example.com"}]}


def guarded(identifier: str, **permissions: Any) -> dict[str, Any]:
    definition = chain(identifier, node("noop", {"type": "NOOP"}))
    definition["nodes"][0]["config"]["userInputs"] = {
        "properties": {"env": {"type": "string"}}, "required": ["env"]}
    if permissions:
        definition["nodes"][0]["config"]["permissions"] = permissions
    return definition


async def test_the_policy_is_created_read_replaced_and_deleted_in_ports_shape(api: httpx.AsyncClient) -> None:
    await create(api, guarded("perm-crud"))
    path = "/v1/workflows/perm-crud/nodes/trigger/permissions"
    missing = await api.get(path)
    assert missing.status_code == 404 and "no permissions policy" in missing.json()["message"]
    created = await api.post(path, json=FORM_DEV)
    assert created.status_code == 201, created.text
    assert created.json() == {"ok": True, "workflow": FORM_DEV}
    assert (await api.get(path)).json() == {"ok": True, "workflow": FORM_DEV}
    stored = (await api.get("/v1/workflows/perm-crud")).json()["workflow"]
    assert stored["version"] == 2 and stored["nodes"][0]["config"]["permissions"]["policy"] == FORM_DEV
    assert (await api.post(path, json=FORM_DEV)).status_code == 409
    narrowed = {"combinator": "and", "rules": FORM_DEV["rules"][:1]}
    assert (await api.patch(path, json=narrowed)).json() == {"ok": True, "workflow": narrowed}
    assert (await api.get(path)).json()["workflow"] == narrowed
    deleted = await api.delete(path)
    assert deleted.status_code == 200 and deleted.json()["workflow"] == narrowed
    assert (await api.get(path)).status_code == 404
    assert (await api.patch(path, json=FORM_DEV)).status_code == 404
    after = (await api.get("/v1/workflows/perm-crud")).json()["workflow"]
    assert after["version"] == 4 and after["nodes"][0]["config"]["permissions"] == {}


async def test_bad_policies_nodes_and_workflows_are_refused_naming_them(api: httpx.AsyncClient) -> None:
    await create(api, guarded("perm-bad"))
    path = "/v1/workflows/perm-bad/nodes/trigger/permissions"
    bad = await api.post(path, json={"combinator": "xor", "rules": [{"property": {"context": "team", "property": "x"},
                                                                      "operator": "="}]})
    assert bad.status_code == 422
    pointers = {d["pointer"] for d in bad.json()["details"]}
    assert {"/combinator", "/rules/0"} <= pointers, bad.text
    assert (await api.get(path)).status_code == 404, "a refused policy is not stored"
    not_a_trigger = await api.post("/v1/workflows/perm-bad/nodes/noop/permissions", json=FORM_DEV)
    assert not_a_trigger.status_code == 409 and "SELF_SERVE_TRIGGER" in not_a_trigger.json()["message"]
    assert (await api.get("/v1/workflows/perm-bad/nodes/ghost/permissions")).status_code == 404
    assert (await api.get("/v1/workflows/ghost/nodes/trigger/permissions")).status_code == 404
    put = guarded("perm-bad", policy={"combinator": "and", "rules": [{"operator": "="}]})
    refused = await api.put("/v1/workflows/perm-bad", json=put)
    assert refused.status_code == 422
    assert any(d["pointer"].startswith("/nodes/0/config/permissions/policy") for d in refused.json()["details"])


async def test_the_policy_admits_callers_the_static_lists_do_not(api: httpx.AsyncClient) -> None:
    await create(api, guarded("perm-run", users=["rita@example.com"], roles=[]))
    path = "/v1/workflows/perm-run/nodes/trigger/permissions"
    rob = await user_headers(api, "rob@example.com", role="runner")
    rita = await user_headers(api, "rita@example.com", role="runner")
    lead = await user_headers(api, "lead@example.com", role="runner")
    runs = "/v1/workflows/perm-run/runs"
    assert (await api.post(runs, json={"inputs": {"env": "dev"}}, headers=rob)).status_code == 403
    assert (await api.post(path, json=FORM_DEV)).status_code == 201
    admitted = await api.post(runs, json={"inputs": {"env": "dev"}}, headers=rob)
    assert admitted.status_code == 201, admitted.text
    refused = await api.post(runs, json={"inputs": {"env": "prod"}}, headers=rob)
    assert refused.status_code == 403 and "permissions" in refused.json()["message"]
    assert (await api.post(runs, json={"inputs": {"env": "prod"}}, headers=rita)).status_code == 201, "listed user"
    assert (await api.post(runs, json={"inputs": {"env": "prod"}}, headers=lead)).status_code == 201, "user rule"
    assert (await api.post(runs, json={"inputs": {"env": "prod"}})).status_code == 201, "owners always"
    listed = (await api.get("/v1/workflows/runs?workflowIdentifiers=perm-run")).json()["workflowRuns"]
    assert sorted(r["createdBy"] for r in listed) == ["admin", "lead@example.com", "rita@example.com",
                                                      "rob@example.com"]
