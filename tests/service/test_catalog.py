"""The catalog through an embedded engine: UPSERT_ENTITY writes entities and announces catalog events,
EVENT_TRIGGER starts runs from them (and from `POST /v1/catalog/events`), the catalog API reads them.

Absence of a run is asserted after `bus.drain()` twice: the first waits until the catalog event was
handled (its StartRun published), the second until every StartRun was consumed by the scheduler.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from libs.store.pausing import pause
from tests.service.test_embedded_runs import create, run_to_end, wait_run


def upserter(identifier: str = "register-service", *, title: bool = True) -> dict[str, Any]:
    """Upserts service `name` with the given properties (and its `title` input, if `title`)."""
    inputs = {"properties": {"name": {"type": "string"}, "title": {"type": "string"},
                             "properties": {"type": "object"}},
              "required": ["name", "properties"]}
    definition: dict[str, Any] = {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": inputs}},
            {"identifier": "upsert", "config": {
                "type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                "mapping": {"identifier": "{{ .outputs.trigger.name }}", "title": "{{ .outputs.trigger.title }}",
                            "team": "platform", "properties": "{{ .outputs.trigger.properties }}"}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "upsert"}],
    }
    if not title:
        del definition["nodes"][1]["config"]["mapping"]["title"]
    return definition


def listener(identifier: str, event_type: str = "ENTITY_CREATED", expressions: list[str] | None = None,
             combinator: str = "and") -> dict[str, Any]:
    config: dict[str, Any] = {"type": "EVENT_TRIGGER", "event": {"type": event_type, "blueprintIdentifier": "service"}}
    if expressions is not None:
        config["condition"] = {"type": "JQ", "expressions": expressions, "combinator": combinator}
    return {
        "identifier": identifier,
        "nodes": [{"identifier": "on-service", "config": config},
                  {"identifier": "note", "config": {"type": "TRANSFORM",
                                                     "expression": ".outputs[\"on-service\"].context.entityIdentifier"}}],
        "connections": [{"sourceIdentifier": "on-service", "targetIdentifier": "note"}],
    }


GOLD_ONLY = [".diff.after.properties.tier == \"gold\""]


async def runs_of(api: httpx.AsyncClient, workflow: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/workflows/runs", params={"workflow": workflow, "limit": 1000})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["workflowRuns"]
    return runs


async def settled(engine: Any) -> None:
    """Every catalog event handled, and every StartRun it published consumed."""
    await engine.bus.drain()
    await engine.bus.drain()


async def upsert(api: httpx.AsyncClient, name: str, properties: dict[str, Any], *,
                 workflow: str = "register-service", **extra: Any) -> dict[str, Any]:
    run = await run_to_end(api, workflow, {"name": name, "properties": properties, **extra})
    assert run["result"] == "SUCCESS", run
    return run


def event(identifier: str, tier: str, *, event_id: str | None = None, action: str = "CREATE") -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action,
        "context": {"blueprintIdentifier": "service", "entityIdentifier": identifier},
        "diff": {"before": None if action == "CREATE" else {"identifier": identifier, "properties": {}},
                 "after": {"identifier": identifier, "blueprint": "service", "properties": {"tier": tier}}},
    }
    if event_id is not None:
        body["id"] = event_id
    return body


async def test_upsert_entity_creates_then_updates_only_the_given_fields(api: httpx.AsyncClient) -> None:
    await create(api, upserter())
    first = await upsert(api, "payments", {"tier": "gold", "language": "go"}, title="Payments")
    output = first["variables"]["outputs"]["upsert"]
    assert output["response"]["data"]["identifier"] == "payments"

    created = (await api.get("/v1/blueprints/service/entities/payments")).json()["entity"]
    assert created["properties"] == {"tier": "gold", "language": "go"}
    assert (created["title"], created["team"], created["blueprint"]) == ("Payments", ["platform"], "service")

    await create(api, upserter("touch-service", title=False))
    await upsert(api, "payments", {"tier": "silver", "oncall": "ana"}, workflow="touch-service")
    response = await api.get("/v1/blueprints/service/entities/payments")
    assert response.status_code == 200
    entity = response.json()["entity"]
    assert entity["properties"] == {"tier": "silver", "language": "go", "oncall": "ana"}
    assert entity["title"] == "Payments", "a field the mapping leaves out is kept"
    assert entity["createdAt"] == created["createdAt"]

    listed = (await api.get("/v1/blueprints/service/entities")).json()
    assert [e["identifier"] for e in listed["entities"]] == ["payments"]


async def test_upsert_entity_generates_an_identifier(api: httpx.AsyncClient) -> None:
    definition = upserter()
    del definition["nodes"][1]["config"]["mapping"]["identifier"]
    await create(api, definition)
    run = await upsert(api, "ignored", {"tier": "gold"})
    identifier = run["variables"]["outputs"]["upsert"]["response"]["data"]["identifier"]
    assert identifier.startswith("e_")
    assert (await api.get(f"/v1/blueprints/service/entities/{identifier}")).status_code == 200


async def test_bad_rendered_mapping_fails_the_node_without_retry(api: httpx.AsyncClient) -> None:
    await create(api, upserter())
    run = await run_to_end(api, "register-service", {"name": "bad name!", "properties": {}})
    assert run["result"] == "FAILED"
    [node_run] = [nr for nr in run["nodeRuns"] if nr["nodeIdentifier"] == "upsert"]
    assert "config.mapping.identifier must be an entity identifier" in node_run["error"]

    definition = upserter("props-not-object")
    definition["nodes"][1]["config"]["mapping"]["properties"] = "{{ .outputs.trigger.name }}"
    await create(api, definition)
    run = await run_to_end(api, "props-not-object", {"name": "svc", "properties": {}})
    assert run["result"] == "FAILED"
    [node_run] = [nr for nr in run["nodeRuns"] if nr["nodeIdentifier"] == "upsert"]
    assert node_run["error"] == "config.mapping.properties must be an object after rendering, got a string"
    assert node_run["attempt"] == 1


async def test_event_trigger_starts_a_run_for_a_gold_service_only(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, upserter())
    await create(api, listener("on-gold-service", expressions=GOLD_ONLY))
    await upsert(api, "payments", {"tier": "gold"})
    await upsert(api, "ledger", {"tier": "silver"})
    await settled(engine)

    runs = await runs_of(api, "on-gold-service")
    assert len(runs) == 1
    run = await wait_run(api, runs[0]["identifier"])
    assert run["result"] == "SUCCESS"
    assert run["trigger"]["type"] == "EVENT"
    trigger_output = run["variables"]["outputs"]["on-service"]
    assert trigger_output["action"] == "CREATE"
    assert trigger_output["diff"]["before"] is None
    assert trigger_output["diff"]["after"]["properties"] == {"tier": "gold"}
    assert trigger_output["context"] == {"blueprintIdentifier": "service", "entityIdentifier": "payments"}
    assert run["variables"]["outputs"]["note"] == "payments"

    await upsert(api, "payments", {"tier": "platinum"})  # an update: ENTITY_CREATED does not fire
    await settled(engine)
    assert len(await runs_of(api, "on-gold-service")) == 1


async def test_update_events_carry_before_and_after(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, upserter())
    await create(api, listener("on-promotion", "ENTITY_UPDATED",
                               [".diff.before.properties.tier != \"gold\"", ".diff.after.properties.tier == \"gold\""]))
    await upsert(api, "payments", {"tier": "silver"})
    await upsert(api, "payments", {"tier": "gold"})
    await upsert(api, "payments", {"tier": "gold"})  # no change: no event
    await settled(engine)
    [run] = await runs_of(api, "on-promotion")
    trigger_output = run["inputs"]
    assert trigger_output["action"] == "UPDATE"
    assert trigger_output["diff"]["before"]["properties"] == {"tier": "silver"}
    assert trigger_output["diff"]["after"]["properties"] == {"tier": "gold"}


async def test_posted_event_starts_matching_runs_once(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, listener("on-gold-service", expressions=GOLD_ONLY))
    await create(api, listener("on-any-change", "ANY_ENTITY_CHANGE"))
    await create(api, listener("on-delete", "ENTITY_DELETED"))

    response = await api.post("/v1/catalog/events", json=event("billing", "gold", event_id="evt-1"))
    assert response.status_code == 202, response.text
    assert response.json()["event"]["id"] == "evt-1"
    again = await api.post("/v1/catalog/events", json=event("billing", "gold", event_id="evt-1"))
    assert again.status_code == 202
    await settled(engine)

    for workflow in ("on-gold-service", "on-any-change"):
        [run] = await runs_of(api, workflow)
        assert run["inputs"]["id"] == "evt-1"
        assert (await wait_run(api, run["identifier"]))["result"] == "SUCCESS"
    assert await runs_of(api, "on-delete") == []

    generated = await api.post("/v1/catalog/events", json=event("billing", "silver"))
    assert generated.json()["event"]["id"].startswith("evt_")
    await settled(engine)
    assert len(await runs_of(api, "on-any-change")) == 2
    assert len(await runs_of(api, "on-gold-service")) == 1


async def test_or_combinator_and_failing_condition(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, listener("gold-or-bronze", expressions=GOLD_ONLY + [".diff.after.properties.tier == \"bronze\""],
                               combinator="or"))
    await create(api, listener("broken-condition", expressions=[".diff.after.properties.tier | error"]))
    for identifier, tier in (("a", "gold"), ("b", "bronze"), ("c", "silver")):
        assert (await api.post("/v1/catalog/events", json=event(identifier, tier))).status_code == 202
    await settled(engine)
    assert sorted(r["inputs"]["context"]["entityIdentifier"] for r in await runs_of(api, "gold-or-bronze")) == ["a", "b"]
    assert await runs_of(api, "broken-condition") == []
    assert engine.bus.stats().get("stepline.dead-letters.v1", {}).get("published", 0) == 0


async def test_paused_workflow_gets_no_run(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, listener("paused-listener"))
    await create(api, listener("active-listener"))
    await pause(engine.store, "paused-listener", by=None, now=engine.clock())
    assert (await api.post("/v1/catalog/events", json=event("svc", "gold"))).status_code == 202
    await settled(engine)
    assert len(await runs_of(api, "active-listener")) == 1
    assert await runs_of(api, "paused-listener") == []


async def test_bad_event_trigger_config_is_rejected_with_a_pointer(api: httpx.AsyncClient) -> None:
    unknown_type = listener("bad-type", "ENTITY_RENAMED")
    response = await api.post("/v1/workflows", json=unknown_type)
    assert response.status_code == 422
    assert "/nodes/0/config/event/type" in [d["pointer"] for d in response.json()["details"]]

    bad_jq = listener("bad-jq", expressions=[".diff.after | ]"])
    response = await api.post("/v1/workflows", json=bad_jq)
    assert response.status_code == 422
    assert [d["pointer"] for d in response.json()["details"]] == ["/nodes/0/config/condition/expressions/0"]


async def test_bad_upsert_config_is_rejected_with_a_pointer(api: httpx.AsyncClient) -> None:
    definition = upserter("bad-upsert")
    config = definition["nodes"][1]["config"]
    config["mapping"]["identifier"] = "no spaces allowed"
    config["mapping"]["properties"] = ["not", "an", "object"]  # optional (Port), but an object when given
    response = await api.post("/v1/workflows", json=definition)
    assert response.status_code == 422
    pointers = {d["pointer"] for d in response.json()["details"]}
    assert pointers == {"/nodes/1/config/mapping/identifier", "/nodes/1/config/mapping/properties"}


async def test_catalog_api_errors(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/blueprints/service/entities/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"

    bad_blueprint = await api.get("/v1/blueprints/no%20spaces/entities")
    assert bad_blueprint.status_code == 422
    assert bad_blueprint.json()["details"][0]["pointer"] == "/path/blueprint"

    no_after = event("svc", "gold")
    del no_after["diff"]["after"]
    response = await api.post("/v1/catalog/events", json=no_after)
    assert response.status_code == 422
    assert "/diff/after" in [d["pointer"] for d in response.json()["details"]]

    response = await api.post("/v1/catalog/events", json={**event("svc", "gold"), "action": "RENAME", "extra": 1})
    assert response.status_code == 422
    assert {d["pointer"] for d in response.json()["details"]} == {"/action", "/extra"}


async def test_the_examples_chain_through_a_catalog_event(api: httpx.AsyncClient, engine: Any) -> None:
    examples = Path(__file__).parents[2] / "examples"
    for name in ("upsert-entity.json", "event-trigger.json"):
        await create(api, json.loads((examples / name).read_text()))
    run = await run_to_end(api, "register-service", {"name": "checkout", "tier": "gold"})
    assert run["variables"]["outputs"]["summary"] == {"service": "checkout", "tier": "gold"}
    await settled(engine)
    [welcome] = await runs_of(api, "welcome-gold-service")
    assert (await wait_run(api, welcome["identifier"]))["result"] == "SUCCESS"
    entity = (await api.get("/v1/blueprints/service/entities/checkout")).json()["entity"]
    assert entity["properties"]["onboarding"] == "started"
    assert (entity["title"], entity["team"]) == ("Payments", ["platform"])
