"""Agents and the AI_AGENT node in an embedded engine: the agents API, and the tool loop against a
scripted OpenAI-compatible model on loopback (tests/service/scripted_model.py) that asks for a
workflow tool (a child run), a catalog tool and a tool of a real MCP server (tests/service/mcp_server.py)
— the transcript, the step log lines, the maxSteps cut-off, a cancelled run, the prompt-injection
scan of tool results and secrets masked in the logged arguments."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.catalog.entities import EntityPatch
from libs.catalog.store import Catalog
from tests.auth_helpers import engine_client
from tests.service.mcp_server import Gate
from tests.service.scripted_model import Answer, ScriptedModel, scripted_model
from tests.service.test_ai_node import KEY, logs_of, providers
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end, wait_run
from tests.service.test_mcp_node import TOKEN, mcp_http_server
from tests.service.test_notify_node import running_engine
from tests.service.test_waiting_nodes import until_waiting

WAIT = 10.0
AGENT = {"title": "Helper", "systemPrompt": "You help.", "provider": "local",
         "tools": ["workflow:greet", "list_entities"], "mcpServers": ["web"], "maxSteps": 4}
GREET = {"identifier": "greet", "nodes": [
    {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER",
                                         "userInputs": {"properties": {"name": {"type": "string"}}, "required": ["name"]}}},
    {"identifier": "hello", "config": {"type": "TRANSFORM", "expression": "\"hello \" + .inputs.name"}}],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "hello"}]}


@dataclass
class World:
    api: httpx.AsyncClient
    model: ScriptedModel
    gate: Gate


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    gate = Gate()
    async with contextlib.AsyncExitStack() as stack:
        model = await stack.enter_async_context(scripted_model())
        mcp_url = await stack.enter_async_context(mcp_http_server(gate))
        eng = await stack.enter_async_context(running_engine(tmp_path, ai_providers=providers(model)))
        api = await stack.enter_async_context(engine_client(eng))
        await Catalog(eng.store, eng.clock).upsert("service", EntityPatch(identifier="payments", fields={"title": "Payments"}))
        assert (await api.put("/v1/secrets/MODEL_KEY", json={"value": KEY})).status_code == 201
        headers = json.dumps({"Authorization": f"Bearer {TOKEN}"})
        assert (await api.put("/v1/secrets/MCP_HEADERS", json={"value": headers})).status_code == 201
        web = {"transport": "http", "url": mcp_url, "headersSecret": "MCP_HEADERS"}
        assert (await api.put("/v1/mcp-servers/web", json=web)).status_code == 201
        await create(api, GREET)
        yield World(api, model, gate)


async def with_agent(world: World, workflow: str, **agent: Any) -> None:
    answer = await world.api.put(f"/v1/agents/{workflow}-agent", json={**AGENT, **agent})
    assert answer.status_code == 201, answer.text
    node = {"identifier": "agent", "config": {"type": "AI_AGENT", "agentIdentifier": f"{workflow}-agent",
                                              "userPrompt": "Help with {{ .inputs.topic }}"}}
    definition = chain(workflow, node)
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"topic": {"type": "string"}}}
    await create(world.api, definition)


async def run_agent(world: World, workflow: str, **agent: Any) -> dict[str, Any]:
    """The agent node's run, with `run` (the whole run) added."""
    await with_agent(world, workflow, **agent)
    run = await run_to_end(world.api, workflow, {"topic": "payments"})
    [node_run] = node_runs(run, "agent")
    return {**node_run, "run": run}


def call(call_id: str, tool: str, **arguments: Any) -> tuple[str, str, dict[str, Any]]:
    return call_id, tool, arguments


async def test_agents_are_validated_naming_the_field(world: World) -> None:
    api = world.api
    assert (await api.put("/v1/agents/a1", json=AGENT)).status_code == 201
    assert (await api.put("/v1/agents/a1", json={**AGENT, "title": "Again"})).status_code == 200
    assert (await api.get("/v1/agents/a1")).json()["agent"]["title"] == "Again"
    for field, value in (("tools", ["drop_tables"]), ("maxSteps", 0), ("maxSteps", 51), ("mcpServers", ["a b"]),
                         ("systemPrompt", 3), ("colour", "red"), ("provider", "elsewhere")):
        answer = await api.put("/v1/agents/a2", json={**AGENT, field: value})
        assert answer.status_code == 422, (field, answer.text)
        assert {d["pointer"] for d in answer.json()["details"]} == {f"/{field}"}, (field, answer.text)
    assert (await api.delete("/v1/agents/a1")).status_code == 200
    assert (await api.get("/v1/agents/a1")).status_code == 404


async def test_the_loop_calls_a_workflow_a_catalog_and_an_mcp_tool(world: World) -> None:
    world.model.script(Answer(None, tool_calls=(call("c1", "workflow__greet", name="Ada"),
                                                call("c2", "list_entities", blueprint="service"),
                                                call("c3", "web__add", a=2, b=3)), input_tokens=30, output_tokens=9),
                       Answer("All done", input_tokens=50, output_tokens=4))
    node_run = await run_agent(world, "agent-tools")
    assert node_run["result"] == "SUCCESS", node_run
    output = node_run["output"]
    assert output["response"] == "All done" and output["usage"] == {"inputTokens": 80, "outputTokens": 13}
    assert output["invocationIdentifier"].startswith("aiinv_")
    assert [m["role"] for m in output["transcript"]] == ["system", "user", "assistant", "tool", "tool", "tool",
                                                          "assistant"]
    results = {m["toolCallId"]: json.loads(m["content"]) for m in output["transcript"] if m["role"] == "tool"}
    assert results["c1"]["result"] == "SUCCESS" and results["c1"]["outputs"]["hello"] == "hello Ada"
    assert [e["identifier"] for e in results["c2"]["entities"]] == ["payments"]
    assert results["c3"] == {"sum": 5}
    assert [(c["tool"], c["ok"]) for c in output["toolCalls"]] == [
        ("workflow__greet", True), ("list_entities", True), ("web__add", True)]
    offered = {t["function"]["name"] for t in world.model.bodies()[0]["tools"]}
    assert {"workflow__greet", "list_entities", "web__add", "web__shout"} <= offered
    assert [m["role"] for m in world.model.bodies()[1]["messages"]][-3:] == ["tool", "tool", "tool"]
    steps = [line for line in logs_of(node_run) if line.startswith("step 1:")]
    assert len(steps) == 3 and 'workflow tool workflow__greet({"name": "Ada"}) ok in' in steps[0]
    assert 'catalog tool list_entities({"blueprint": "service"})' in steps[1] and "mcp tool web__add" in steps[2]
    child = (await world.api.get(f"/v1/workflows/runs/{results['c1']['runId']}")).json()["workflowRun"]
    assert child["parentRunIdentifier"] == node_run["run"]["identifier"] and child["result"] == "SUCCESS"


async def test_a_failing_tool_is_told_to_the_model(world: World) -> None:
    world.model.script(Answer(None, tool_calls=(call("c1", "web__fail", reason="nope"), call("c2", "no_such_tool"))),
                       Answer("gave up"))
    node_run = await run_agent(world, "agent-tool-error")
    assert node_run["result"] == "SUCCESS", node_run
    told = [json.loads(m["content"]) for m in world.model.bodies()[1]["messages"] if m["role"] == "tool"]
    assert "refused: nope" in told[0]["error"] and "there is no tool 'no_such_tool'" in told[1]["error"]
    assert [c["ok"] for c in node_run["output"]["toolCalls"]] == [False, False]


async def test_max_steps_cuts_the_loop_off(world: World) -> None:
    world.model.default = Answer(None, tool_calls=(call("again", "list_entities", blueprint="service"),))
    node_run = await run_agent(world, "agent-steps", maxSteps=2)
    assert node_run["result"] == "FAILED" and "maxSteps=2" in node_run["error"]
    assert len(world.model.requests) == 2
    transcript = node_run["output"]["transcript"]
    assert [m["role"] for m in transcript].count("assistant") == 2 and node_run["output"]["steps"] == 2
    assert any("stopped after maxSteps=2" in line for line in logs_of(node_run))


async def test_a_cancelled_run_stops_the_loop_at_the_next_step(world: World) -> None:
    world.model.script(Answer(None, tool_calls=(call("c1", "web__hold"),)))
    await with_agent(world, "agent-cancel")
    started = await world.api.post("/v1/workflows/agent-cancel/runs", json={"inputs": {"topic": "x"}})
    run_id = started.json()["workflowRun"]["identifier"]
    await asyncio.wait_for(world.gate.entered.wait(), WAIT)
    assert (await world.api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 200
    world.gate.release.set()
    run = await wait_run(world.api, run_id)
    [node_run] = node_runs(run, "agent")
    assert run["result"] == "CANCELLED" and node_run["result"] == "FAILED"
    assert "the run was cancelled" in node_run["error"]
    assert len(world.model.requests) == 1
    assert node_run["output"]["toolCalls"][0]["tool"] == "web__hold"


async def test_tool_results_pass_the_prompt_injection_scan(world: World) -> None:
    world.model.script(Answer(None, tool_calls=(call("c1", "web__poisoned"),)))
    node_run = await run_agent(world, "agent-injection")
    assert node_run["result"] == "FAILED" and "guardrail promptInjection blocked the tool result" in node_run["error"]
    assert len(world.model.requests) == 1


async def test_secrets_are_masked_in_the_logged_arguments(world: World) -> None:
    world.model.script(Answer(None, tool_calls=(call("c1", "web__shout", text=KEY),)), Answer("done"))
    node_run = await run_agent(world, "agent-secret")
    assert node_run["result"] == "SUCCESS", node_run
    shown = json.dumps(node_run)
    assert KEY not in shown and KEY.upper() not in shown
    assert any("mcp tool web__shout" in line and "***" in line for line in logs_of(node_run))


async def test_an_ai_node_with_tools_runs_the_same_loop(world: World) -> None:
    """Port's AI node: `tools` are regular expressions over the catalog tools' names."""
    world.model.script(Answer(None, tool_calls=(call("c1", "list_blueprints"),)), Answer("one blueprint"))
    node = {"identifier": "ask", "config": {"type": "AI", "userPrompt": "What is there?", "provider": "local",
                                            "tools": ["^list_.*"]}}
    await create(world.api, chain("ai-tools", node))
    [node_run] = node_runs(await run_to_end(world.api, "ai-tools"), "ask")
    assert node_run["result"] == "SUCCESS", node_run
    assert node_run["output"]["response"] == "one blueprint"
    assert [c["tool"] for c in node_run["output"]["toolCalls"]] == ["list_blueprints"]
    offered = sorted(t["function"]["name"] for t in world.model.bodies()[0]["tools"])
    assert offered == ["list_blueprints", "list_entities"]
    told = [json.loads(m["content"]) for m in world.model.bodies()[1]["messages"] if m["role"] == "tool"]
    assert told == [{"blueprints": ["service"]}]


async def test_a_cancelled_run_cancels_the_workflow_tool_it_awaits(world: World) -> None:
    gate = {"identifier": "wait-for-me", "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "gate", "config": {"type": "APPROVAL", "message": "ok?", "assignees": ["role:owner"]}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "gate"}]}
    await create(world.api, gate)
    world.model.script(Answer(None, tool_calls=(call("c1", "workflow__wait-for-me"),)))
    await with_agent(world, "agent-cancel-child", tools=["workflow:wait-for-me"], mcpServers=[])
    started = await world.api.post("/v1/workflows/agent-cancel-child/runs", json={"inputs": {"topic": "x"}})
    run_id = started.json()["workflowRun"]["identifier"]
    child_id = await until_child(world.api, "wait-for-me")
    await until_waiting(world.api, child_id, "gate")
    assert (await world.api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 200
    run = await wait_run(world.api, run_id)
    assert run["result"] == "CANCELLED" and len(world.model.requests) == 1
    [node_run] = node_runs(run, "agent")
    assert "the run was cancelled" in node_run["error"]
    assert (await wait_run(world.api, child_id))["result"] == "CANCELLED"


async def until_child(api: httpx.AsyncClient, workflow: str) -> str:
    """The id of the first run of `workflow`, once there is one."""
    for _ in range(500):
        listed = (await api.get("/v1/workflows/runs", params={"workflowIdentifiers[]": workflow})).json()
        if listed["workflowRuns"]:
            return str(listed["workflowRuns"][0]["identifier"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"no run of {workflow} started")
