"""One focused test per Port incompatibility removed (issue 12), through an embedded engine and a real
loopback target: Port's `config.onFailure`, display fields kept, UPSERT_ENTITY without properties,
the run context Port's templates read, INTEGRATION_ACTION in Port's shape with the configured GitHub
token (Ocean providers: test_integration_workers.py), KAFKA without topic, AI nodes and Go-template
helpers refused at save time."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.secrets.vault import open_vault
from tests.auth_helpers import engine_client, user_headers
from tests.conftest import Target
from tests.service.test_catalog import runs_of, settled
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end, wait_run, webhook
from tests.service.test_kafka_node import listen
from tests.service.test_waiting_nodes import until_waiting


def failing(identifier: str, target: Target, **node: Any) -> dict[str, Any]:
    return webhook(identifier, f"{target.base_url}/status/500", **node)


async def test_on_failure_inside_config_continues_the_run(api: httpx.AsyncClient, target: Target) -> None:
    broken = failing("broken", target, config={"onFailure": "continue"})
    await create(api, chain("port-continue", broken, webhook("after", f"{target.base_url}/after")))
    run = await run_to_end(api, "port-continue")
    assert run["result"] == "SUCCESS", run
    assert run["nodes"]["broken"]["state"] == "FAILED"
    assert len(node_runs(run, "after")) == 1


async def test_on_failure_on_the_node_wins_over_config(api: httpx.AsyncClient, target: Target) -> None:
    broken = failing("broken", target, onFailure="terminate", config={"onFailure": "continue"})
    await create(api, chain("port-terminate", broken, webhook("after", f"{target.base_url}/after")))
    run = await run_to_end(api, "port-terminate")
    assert run["result"] == "FAILED"
    assert node_runs(run, "after") == []


async def test_bad_failure_policies_in_config_are_refused_with_pointers(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("w", f"{target.base_url}/w", config={"onFailure": "ignore", "onTimeout": "retry"})
    answer = await api.post("/v1/workflows", json=chain("port-bad-policy", node))
    assert answer.status_code == 422
    pointers = {d["pointer"] for d in answer.json()["details"]}
    assert pointers == {"/nodes/1/config/onFailure", "/nodes/1/config/onTimeout"}


async def test_display_fields_are_accepted_and_kept(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("w", f"{target.base_url}/w", links=["https://runbook.example"], verbose=False, category="Ops",
                   icon="Slack", description=None)
    await create(api, {**chain("port-display", node), "category": "Claude Agents"})
    shown = (await api.get("/v1/workflows/port-display")).json()["workflow"]
    assert shown["category"] == "Claude Agents"
    assert {k: shown["nodes"][1].get(k) for k in ("links", "verbose", "category", "icon")} == {
        "links": ["https://runbook.example"], "verbose": False, "category": "Ops", "icon": "Slack"}
    wrong = webhook("w", f"{target.base_url}/w", links="not-a-list")
    answer = await api.post("/v1/workflows", json=chain("port-display-bad", wrong))
    assert answer.status_code == 422 and answer.json()["details"][0]["pointer"] == "/nodes/1/links"


async def test_upsert_entity_without_properties_sets_the_team(api: httpx.AsyncClient) -> None:
    node = {"identifier": "assign", "config": {"type": "UPSERT_ENTITY", "blueprintIdentifier": "service",
                                               "mapping": {"identifier": "web", "team": "platform"}}}
    await create(api, chain("port-team-only", node))
    run = await run_to_end(api, "port-team-only")
    assert run["result"] == "SUCCESS", run
    entity = (await api.get("/v1/blueprints/service/entities/web")).json()["entity"]
    assert entity["team"] == ["platform"] and entity["properties"] == {}


CONTEXT_BODY = {"email": "{{ .trigger.by.user.email }}", "at": "{{ .trigger.at }}",
                "run": "{{ .workflowRun.identifier }}", "workflow": "{{ .workflow.identifier }}",
                "entity": "{{ .entity.identifier }}"}


async def test_templates_read_ports_run_context(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("port-context", webhook("w", f"{target.base_url}/ctx", config={"body": CONTEXT_BODY})))
    run = await run_to_end(api, "port-context")
    [request] = await target.wait_for("/ctx")
    body = request["body"]
    assert body["email"] == run["trigger"]["by"] and body["email"]
    assert body["at"] == run["trigger"]["at"] and body["at"].endswith("Z")
    assert (body["run"], body["workflow"], body["entity"]) == (run["identifier"], "port-context", None)


async def test_event_runs_see_the_entity(api: httpx.AsyncClient, engine: Any, target: Target) -> None:
    listener = {"identifier": "on-service", "config": {
        "type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "service"}}}
    definition = {"identifier": "port-entity", "nodes": [listener, webhook("w", f"{target.base_url}/entity",
                                                                             config={"body": CONTEXT_BODY})],
                  "connections": [{"sourceIdentifier": "on-service", "targetIdentifier": "w"}]}
    await create(api, definition)
    event = {"action": "CREATE", "diff": {"before": None, "after": {"identifier": "web", "properties": {}}},
             "context": {"blueprintIdentifier": "service", "entityIdentifier": "web"}}
    assert (await api.post("/v1/catalog/events", json=event)).status_code == 202
    await settled(engine)
    [run] = await runs_of(api, "port-entity")
    assert (await wait_run(api, run["identifier"]))["result"] == "SUCCESS"
    [request] = await target.wait_for("/entity")
    assert request["body"]["entity"] == "web"
    assert request["body"]["email"] is None, "no caller: .trigger.by is still an object"


def port_github_node(**config: Any) -> dict[str, Any]:
    return {"identifier": "deploy", "config": {
        "type": "INTEGRATION_ACTION", "installationId": "gh-app-1", "integrationProvider": "GITHUB",
        "integrationInvocationType": "dispatch_workflow",
        "integrationActionExecutionProperties": {"org": "acme", "repo": "web", "workflow": "deploy.yml",
                                                 "workflowInputs": {"version": "{{ .inputs.version }}"}},
        **config}}


@pytest.fixture
async def gh_engine(tmp_path: Path, target: Target) -> AsyncIterator[Any]:
    """An engine whose GitHub API is the target, with the default GitHub token secret `GITHUB_TOKEN`."""
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    key = base64.b64encode(os.urandom(32)).decode()
    eng = Engine(EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                  lease_seconds=5.0, partitions=4, secrets_key=key,
                                  github_api_url=f"{target.base_url}/gh"))
    await eng.start()
    vault = open_vault(eng.store, key)
    assert vault is not None
    await vault.put("GITHUB_TOKEN", "ghp_configured0123456789", now=time.time())
    yield eng
    await eng.stop()


async def test_integration_action_in_ports_shape_uses_the_configured_token(gh_engine: Any, target: Target) -> None:
    definition = chain("port-gh", port_github_node())
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"version": {"type": "string"}}}
    async with engine_client(gh_engine) as api:
        await create(api, definition)
        run = await run_to_end(api, "port-gh", {"version": "1.4.2"})
    assert run["result"] == "SUCCESS", run
    [request] = await target.wait_for("/gh/repos/acme/web/actions/workflows/deploy.yml/dispatches")
    assert request["body"] == {"ref": "main", "inputs": {"version": "1.4.2"}}
    assert request["headers"]["authorization"] == "Bearer ghp_configured0123456789"
    assert "ghp_configured" not in str(run)


async def test_a_github_node_in_neither_shape_is_refused(api: httpx.AsyncClient) -> None:
    node = port_github_node(integrationActionExecutionProperties={"org": "acme"})
    answer = await api.post("/v1/workflows", json=chain("port-gh-bad", node))
    assert answer.status_code == 422
    pointers = {d["pointer"] for d in answer.json()["details"]}
    assert pointers == {"/nodes/1/config/integrationActionExecutionProperties/repo",
                        "/nodes/1/config/integrationActionExecutionProperties/workflow"}


async def test_an_ai_node_with_ports_fields_is_accepted_and_a_missing_prompt_refused(api: httpx.AsyncClient) -> None:
    node = {"identifier": "think", "config": {"type": "AI", "userPrompt": "hi {{ .inputs.x }}", "systemPrompt": "s",
                                              "tools": ["^(list|get)_.*"], "provider": "p", "model": "m"}}
    answer = await api.post("/v1/workflows", json=chain("port-ai", node))
    assert answer.status_code == 201, answer.text
    node["config"].pop("userPrompt")
    answer = await api.post("/v1/workflows", json=chain("port-ai-bad", node))
    assert answer.status_code == 422
    [detail] = answer.json()["details"]
    assert detail["pointer"] == "/nodes/1/config/userPrompt" or "userPrompt" in detail["message"]


async def test_go_template_helpers_are_refused_naming_the_jq(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("w", f"{target.base_url}/w", config={"body": {"at": '{{ now | date "2006-01-02" }}'}})
    answer = await api.post("/v1/workflows", json=chain("port-go", node))
    assert answer.status_code == 422
    [detail] = answer.json()["details"]
    assert detail["pointer"] == "/nodes/1/config/body/at" and "now | todate" in detail["message"]


async def test_kafka_without_topic_publishes_to_the_runs_topic(engine: Any, api: httpx.AsyncClient) -> None:
    inbox = listen(engine, "port.runs")
    node = {"identifier": "publish", "config": {"type": "KAFKA", "payload": {"hello": "{{ .workflow.identifier }}"}}}
    await create(api, chain("port-kafka", node))
    run = await run_to_end(api, "port-kafka")
    assert run["result"] == "SUCCESS", run
    message = await inbox.next()
    assert message.data["payload"] == {"hello": "port-kafka"}
    assert run["variables"]["outputs"]["publish"]["topic"] == "port.runs"


async def test_logs_in_ports_later_shape_by_post_and_patch(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("hook", f"{target.base_url}/async/hook", config={"synchronized": False})
    await create(api, chain("port-logs", node))
    started = await api.post("/v1/workflows/port-logs/runs", json={"inputs": {}})
    run_id = started.json()["workflowRun"]["identifier"]
    waiting = await until_waiting(api, run_id, "hook")
    posted = await api.post(f"/v1/workflows/nodes/runs/{waiting['identifier']}/logs",
                            json={"logs": [{"level": "WARN", "message": "starting"}]})
    assert posted.status_code == 200, posted.text
    patched = await api.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}",
                              json={"status": "COMPLETED", "result": "SUCCESS",
                                    "logs": [{"level": "INFO", "message": "done"}]})
    assert patched.status_code == 200, patched.text
    run = await wait_run(api, run_id)
    logs = [(e["logLevel"], e["log"]) for e in node_runs(run, "hook")[0]["nodeRunLogs"] if e["source"] == "user"]
    assert logs == [("WARN", "starting"), ("INFO", "done")]
    empty = await api.post(f"/v1/workflows/nodes/runs/{waiting['identifier']}/logs", json={"logs": []})
    assert empty.status_code == 422


async def test_run_list_filters_in_ports_bracket_form(api: httpx.AsyncClient, target: Target) -> None:
    for identifier in ("port-list-a", "port-list-b"):
        await create(api, chain(identifier, webhook("w", f"{target.base_url}/w")))
        await run_to_end(api, identifier)
    query = [("workflowIdentifiers[]", "port-list-a"), ("createdBy[]", "admin"), ("statuses[]", "COMPLETED")]
    listed = (await api.get("/v1/workflows/runs", params=query)).json()["workflowRuns"]
    assert [r["workflowIdentifier"] for r in listed] == ["port-list-a"]
    nobody = await api.get("/v1/workflows/runs", params=[("createdBy[]", "nobody@example.com")])
    assert nobody.json()["workflowRuns"] == []


def timer_workflow(identifier: str, target: Target) -> dict[str, Any]:
    trigger = {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": {
        "type": "TIMER_EXPIRED", "blueprintIdentifier": "environment", "propertyIdentifier": "ttl"}}}
    notify = webhook("notify", f"{target.base_url}/expired",
                     config={"body": {"env": "{{ .outputs.trigger.diff.after.identifier }}",
                                      "ttl": "{{ .entity.properties.ttl }}"}})
    return {"identifier": identifier, "nodes": [trigger, notify],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "notify"}]}


def env_event(identifier: str, ttl: str, *, action: str = "UPDATE", note: str = "") -> dict[str, Any]:
    entity = {"identifier": identifier, "properties": {"ttl": ttl, "note": note}}
    before = None if action == "CREATE" else entity
    after = None if action == "DELETE" else entity
    return {"action": action, "diff": {"before": before, "after": after},
            "context": {"blueprintIdentifier": "environment", "entityIdentifier": identifier}}


def timers_at(engine: Any, at: float) -> Any:
    from libs.bus.publisher import Publisher
    from libs.store.definitions import DefinitionCache
    from services.trigger.entity_timers import EntityTimers
    from services.trigger.live_triggers import LiveTriggers
    from services.trigger.starting import RunStarter

    starter = RunStarter(engine.store, Publisher(engine.bus, "stepline/trigger"), DefinitionCache(engine.store),
                         lambda: at, 10.0)
    return EntityTimers(engine.store, starter, LiveTriggers(engine.store, DefinitionCache(engine.store)),
                        clock=lambda: at)


async def test_timer_expired_fires_once_per_entity_and_value(api: httpx.AsyncClient, engine: Any,
                                                             target: Target) -> None:
    await create(api, timer_workflow("port-timer", target))
    for event in (env_event("env-1", "2020-01-01T00:00:00Z", action="CREATE"),
                  env_event("env-1", "2020-01-01T00:00:00Z", note="same value, another change"),
                  env_event("env-2", "2999-01-01T00:00:00Z", action="CREATE")):
        assert (await api.post("/v1/catalog/events", json=event)).status_code == 202
    await settled(engine)
    [request] = await target.wait_for("/expired")
    assert request["body"] == {"env": "env-1", "ttl": "2020-01-01T00:00:00Z"}
    await timers_at(engine, engine.clock()).pass_once()  # another replica's pass
    await settled(engine)
    assert len(await runs_of(api, "port-timer")) == 1, "env-1 fired once; env-2 is not due"
    assert await timers_at(engine, 32503680000.0 + 1).pass_once() == 1, "env-2 fires once it is due"
    await target.wait_for("/expired", count=2)
    runs = await runs_of(api, "port-timer")
    assert len(runs) == 2
    for run in runs:
        assert (await wait_run(api, run["identifier"]))["result"] == "SUCCESS"


async def test_a_new_value_re_arms_the_timer_and_a_delete_clears_it(api: httpx.AsyncClient, engine: Any,
                                                                    target: Target) -> None:
    await create(api, timer_workflow("port-timer-2", target))
    far = "2999-01-01T00:00:00Z"
    for event in (env_event("env-3", far, action="CREATE"), env_event("env-3", "2998-01-01T00:00:00Z"),
                  env_event("env-4", far, action="CREATE"), env_event("env-4", far, action="DELETE")):
        assert (await api.post("/v1/catalog/events", json=event)).status_code == 202
    await settled(engine)
    assert await timers_at(engine, 32503680000.0 + 1).pass_once() == 1, "env-3 at its new value only; env-4 gone"
    [request] = await target.wait_for("/expired")
    assert request["body"]["ttl"] == "2998-01-01T00:00:00Z"


async def test_timer_expired_needs_its_property(api: httpx.AsyncClient, target: Target) -> None:
    definition = timer_workflow("port-timer-bad", target)
    del definition["nodes"][0]["config"]["event"]["propertyIdentifier"]
    answer = await api.post("/v1/workflows", json=definition)
    assert answer.status_code == 422
    assert answer.json()["details"][0]["pointer"] == "/nodes/0/config/event/propertyIdentifier"


SERVER_FIELDS = {"workspace", "version", "latestVersion", "versionTags", "isDeleted", "createdAt", "updatedAt",
                 "createdBy", "updatedBy", "paused"}


def terraform_shaped(identifier: str, target: Target) -> dict[str, Any]:
    """As Port's Terraform provider sends it: `category`, node `links`/`verbose`, CONDITION `outlets`,
    connections with `sourceOutletIdentifier` and no identifiers, an unknown display field."""
    check = {"identifier": "check", "title": "Check", "icon": None, "description": None, "links": [], "verbose": False,
             "config": {"type": "CONDITION", "outlets": [
                 {"identifier": "big", "title": "Big", "expression": ".outputs.trigger.n > 5"}]},
             "variables": {}}
    return {"identifier": identifier, "title": "Round trip", "icon": "Git", "description": None,
            "category": "Ops", "allowAnyoneToViewRuns": True, "someDisplayField": {"color": "blue"},
            "nodes": [{"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"n": {"type": "number"}}}, "published": True}},
                      check, webhook("big-one", f"{target.base_url}/big")],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "check", "description": None},
                            {"sourceIdentifier": "check", "targetIdentifier": "big-one",
                             "sourceOutletIdentifier": "big", "description": None}]}


async def test_get_returns_what_was_put(api: httpx.AsyncClient, target: Target) -> None:
    sent = terraform_shaped("port-round-trip", target)
    await create(api, sent)
    for method in ("POST", "PUT"):
        if method == "PUT":
            sent["title"] = "Round trip 2"
            assert (await api.put("/v1/workflows/port-round-trip", json=sent)).status_code == 200
        got = (await api.get("/v1/workflows/port-round-trip")).json()["workflow"]
        assert {k: v for k, v in got.items() if k not in SERVER_FIELDS} == sent, method
    run = await run_to_end(api, "port-round-trip", {"n": 9})
    assert run["nodes"]["check"]["branch"] == "big" and len(node_runs(run, "big-one")) == 1


async def test_jq_defaults_of_self_serve_inputs_are_evaluated_for_api_runs(api: httpx.AsyncClient,
                                                                          target: Target) -> None:
    definition = chain("port-jq-default", webhook("w", f"{target.base_url}/jq-default",
                                                  config={"body": {"owner": "{{ .inputs.owner }}"}}))
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"owner": {
        "type": "string", "format": "user", "default": {"jqQuery": ".trigger.by.user.email"}}}, "required": ["owner"]}
    await create(api, definition)
    viewer = await user_headers(api, "rita@example.com", role="runner")
    started = await api.post("/v1/workflows/port-jq-default/runs", json={"inputs": {}}, headers=viewer)
    assert started.status_code == 201, started.text
    assert (await wait_run(api, started.json()["workflowRun"]["identifier"]))["inputs"] == {"owner": "rita@example.com"}
    given = await run_to_end(api, "port-jq-default", {"owner": "sam@example.com"})
    assert given["inputs"] == {"owner": "sam@example.com"}, "a given input wins"
    definition["identifier"] = "port-jq-default-bad"
    definition["nodes"][0]["config"]["userInputs"]["properties"]["owner"]["default"] = {"jqQuery": "error(\"no\")"}
    await create(api, definition)
    failed = await api.post("/v1/workflows/port-jq-default-bad/runs", json={"inputs": {}})
    assert failed.status_code == 422 and failed.json()["details"][0]["pointer"] == "/inputs/owner"


async def test_trigger_variables_reshape_the_trigger_output(api: httpx.AsyncClient, engine: Any,
                                                           target: Target) -> None:
    listener = {"identifier": "trigger", "variables": {"key": "{{ .diff.after.identifier }}",
                                                       "status": "{{ .diff.after.properties.status }}"},
                "config": {"type": "EVENT_TRIGGER", "event": {"type": "ENTITY_CREATED", "blueprintIdentifier": "issue"}}}
    hook = webhook("w", f"{target.base_url}/issue/{{{{ .outputs.trigger.key }}}}",
                   config={"body": {"status": "{{ .outputs.trigger.status }}", "raw": "{{ .inputs.action }}"}})
    await create(api, {"identifier": "port-trigger-vars", "nodes": [listener, hook],
                       "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "w"}]})
    event = {"action": "CREATE", "diff": {"before": None, "after": {"identifier": "PROJ-7", "properties": {"status": "open"}}},
             "context": {"blueprintIdentifier": "issue", "entityIdentifier": "PROJ-7"}}
    assert (await api.post("/v1/catalog/events", json=event)).status_code == 202
    await settled(engine)
    [run] = await runs_of(api, "port-trigger-vars")
    run = await wait_run(api, run["identifier"])
    assert run["variables"]["outputs"]["trigger"] == {"key": "PROJ-7", "status": "open"}
    assert node_runs(run, "trigger")[0]["output"] == {"key": "PROJ-7", "status": "open"}
    [request] = await target.wait_for("/issue/PROJ-7")
    assert request["body"] == {"status": "open", "raw": "CREATE"}, ".inputs stays the event itself"


async def test_api_trigger_variables_and_their_failure(api: httpx.AsyncClient, target: Target) -> None:
    definition = chain("port-api-vars", webhook("w", f"{target.base_url}/api-vars",
                                                config={"body": {"shout": "{{ .outputs.trigger.shout }}"}}))
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"name": {"type": "string"}}}
    definition["nodes"][0]["variables"] = {"shout": "{{ .name | ascii_upcase }}"}
    await create(api, definition)
    run = await run_to_end(api, "port-api-vars", {"name": "ada"})
    assert run["inputs"] == {"name": "ada"} and run["variables"]["outputs"]["trigger"] == {"shout": "ADA"}
    [request] = await target.wait_for("/api-vars")
    assert request["body"] == {"shout": "ADA"}
    definition["identifier"] = "port-api-vars-bad"
    definition["nodes"][0]["variables"] = {"shout": "{{ .name | error }}"}
    await create(api, definition)
    failed = await api.post("/v1/workflows/port-api-vars-bad/runs", json={"inputs": {"name": "ada"}})
    assert failed.status_code == 422 and "/nodes/0/variables" in failed.text


async def test_a_patch_may_cancel_a_node_run(api: httpx.AsyncClient, target: Target) -> None:
    hook = webhook("hook", f"{target.base_url}/async/cancel", config={"synchronized": False})
    await create(api, chain("port-cancel", hook, webhook("after", f"{target.base_url}/after-cancel")))
    started = await api.post("/v1/workflows/port-cancel/runs", json={"inputs": {}})
    run_id = started.json()["workflowRun"]["identifier"]
    waiting = await until_waiting(api, run_id, "hook")
    done = await api.patch(f"/v1/workflows/nodes/runs/{waiting['identifier']}", json={"result": "CANCELLED"})
    assert done.status_code == 200, done.text
    run = await wait_run(api, run_id)
    [node_run] = node_runs(run, "hook")
    assert (node_run["status"], node_run["result"]) == ("COMPLETED", "CANCELLED")
    assert run["result"] == "FAILED" and "completed with result CANCELLED" in run["error"]
    assert node_runs(run, "after") == []


async def test_node_runs_show_ports_title_icon_and_type(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, chain("port-icons", webhook("w", f"{target.base_url}/icons", title="Notify", icon="Slack")))
    run = await run_to_end(api, "port-icons")
    [node_run] = node_runs(run, "w")
    assert (node_run["nodeTitle"], node_run["nodeIcon"], node_run["nodeConfigType"]) == ("Notify", "Slack", "WEBHOOK")


async def test_on_timeout_continue_goes_on_after_a_timeout_only(api: httpx.AsyncClient, target: Target) -> None:
    slow = webhook("slow", f"{target.base_url}/async/slow", timeoutSeconds=0.2,
                   config={"synchronized": False, "onTimeout": "continue"})
    await create(api, chain("port-timeout", slow, webhook("after", f"{target.base_url}/after-timeout")))
    run = await run_to_end(api, "port-timeout")
    assert run["result"] == "SUCCESS", run
    assert run["nodes"]["slow"]["state"] == "FAILED" and "timed out after 0.2s" in node_runs(run, "slow")[0]["error"]
    assert len(node_runs(run, "after")) == 1
    broken = failing("broken", target, config={"onTimeout": "continue"})
    await create(api, chain("port-timeout-other", broken, webhook("after", f"{target.base_url}/after-other")))
    failed = await run_to_end(api, "port-timeout-other")
    assert failed["result"] == "FAILED" and node_runs(failed, "after") == [], "not a timeout: onFailure decides"


async def test_get_one_node_of_a_workflow(api: httpx.AsyncClient, target: Target) -> None:
    await create(api, terraform_shaped("port-node-get", target))
    answer = (await api.get("/v1/workflows/port-node-get/nodes/check")).json()
    assert answer["node"]["config"]["outlets"][0]["identifier"] == "big"
    assert answer["workflow"]["identifier"] == "port-node-get"
    assert (await api.get("/v1/workflows/port-node-get/nodes/nope")).status_code == 404


async def test_runs_show_their_workflows_title_and_icon(api: httpx.AsyncClient, target: Target) -> None:
    """Port's run `title`, `icon` (the workflow's) and `nodeConfigType` (the starting trigger's type), in
    the start answer, the run and the list."""
    definition = {**chain("port-run-labels", webhook("w", f"{target.base_url}/labels")), "title": "Labels", "icon": "Git"}
    await create(api, definition)
    started = (await api.post("/v1/workflows/port-run-labels/runs", json={"inputs": {}})).json()["workflowRun"]
    assert (started["title"], started["icon"], started["nodeConfigType"]) == ("Labels", "Git", "SELF_SERVE_TRIGGER")
    run = await wait_run(api, started["identifier"])
    assert (run["title"], run["icon"], run["nodeConfigType"]) == ("Labels", "Git", "SELF_SERVE_TRIGGER")
    listed = (await api.get("/v1/workflows/runs", params={"workflow": "port-run-labels"})).json()["workflowRuns"]
    assert [(r["title"], r["icon"], r["nodeConfigType"]) for r in listed] == [("Labels", "Git", "SELF_SERVE_TRIGGER")]


async def test_async_webhooks_carry_ports_context_in_the_body(api: httpx.AsyncClient, target: Target) -> None:
    """A receiver written from Port's docs reads `context.workflowRunId` and `context.nodeRunId` from the
    body and completes the node run with them; the configured body is sent alongside, and a body that
    sets its own `context` (or is not an object) is sent as configured."""
    hook = webhook("hook", f"{target.base_url}/async/ctx", config={"synchronized": False})
    own = webhook("own", f"{target.base_url}/async/own", config={"synchronized": False,
                                                                  "body": {"context": "mine"}})
    await create(api, chain("port-context", hook, own))
    run_id = (await api.post("/v1/workflows/port-context/runs", json={"inputs": {}})).json()["workflowRun"]["identifier"]
    received = (await target.wait_for("/async/ctx"))[0]["body"]
    assert received["run"] == run_id, "the configured body is kept"
    context = received["context"]
    assert context["workflowRunId"] == run_id and context["nodeRunId"].startswith("wfnr_")
    done = await api.patch(f"/v1/workflows/runs/{context['workflowRunId']}/nodes/{context['nodeRunId']}",
                           json={"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": 1}})
    assert done.status_code == 200, done.text
    second = (await target.wait_for("/async/own"))[0]
    assert second["body"] == {"context": "mine"}
    await api.patch(f"/v1/workflows/nodes/runs/{second['headers']['x-stepline-node-run-id']}",
                    json={"status": "COMPLETED", "result": "SUCCESS"})
    run = await wait_run(api, run_id)
    assert run["result"] == "SUCCESS" and run["variables"]["outputs"]["hook"] == {"ok": 1}
