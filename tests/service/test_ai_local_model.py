"""AI steps against a real language model: SmolLM2-135M-Instruct served by llama-cpp-python on loopback
(the session fixture `local_model`, tests/infra_fixtures.py; built and cached by `devinfra`).

A 135M model is weak, so these tests assert what the engine guarantees, never the model's wisdom: the
call was made and its token usage recorded, the answer and the transcript are stored in the node run's
output, an `outputSchema` answer is either a valid object or the node's clear failure after exactly one
repair, an agent's loop stays within `maxSteps` and logs every tool call, and the AI nodes of Port's
examples 23, 29, 30, 31 and 32 (put back into their edited copies) produce outputs of the documented
shape. One model server serves the whole session; the tests are marked `model`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from libs.core.run import FINISHED_NODE_STATES
from libs.secrets.vault import open_vault
from tests.auth_helpers import engine_client
from tests.infra_fixtures import LocalModel
from tests.service.port_examples import CASES, EXAMPLES, SECRETS, Echo, load, load_edited
from tests.service.test_agents import GREET
from tests.service.test_ai_node import SUMMARY_SCHEMA, ai, logs_of, with_inputs
from tests.service.test_embedded_runs import chain, create, node_runs
from tests.service.test_notify_node import running_engine
from tests.service.test_port_examples import echo, run_through, start  # noqa: F401 (echo: a fixture)

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]

MODEL_CALL = "model call to local ("
AI_TYPES = ("AI", "AI_AGENT")
SCHEMA_FAILURE = "does not satisfy config.outputSchema"
AGENT_STEPS = 2
RUN_WAIT = 120
"""Polls of up to 5 s each for a run: CPU-bound model calls take seconds to minutes."""


def local_provider(model: LocalModel) -> list[dict[str, Any]]:
    return [{"name": "local", "kind": "openai", "baseUrl": model.base_url, "model": model.model}]


@contextlib.asynccontextmanager
async def local_engine(tmp_path: Path, model: LocalModel, **settings: Any) -> AsyncIterator[Any]:
    """An embedded engine whose only AI provider is the local model. A CPU-bound model answers in
    seconds to a minute (the server caps an answer at 256 tokens), so AI steps get long time-outs."""
    async with running_engine(tmp_path, ai_providers=local_provider(model), ai_timeout_seconds=300.0,
                              default_timeout_seconds=600, **settings) as eng:
        yield eng


@pytest.fixture
async def api(tmp_path: Path, local_model: LocalModel) -> AsyncIterator[httpx.AsyncClient]:
    async with local_engine(tmp_path, local_model) as eng, engine_client(eng) as client:
        yield client


async def finished(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(RUN_WAIT):
        run: dict[str, Any] = (await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 5})).json()["workflowRun"]
        if run["status"] == "COMPLETED":
            return run
    raise AssertionError(f"run {run_id} did not complete: {run}")


async def run_slow(api: httpx.AsyncClient, workflow: str, inputs: dict[str, Any]) -> dict[str, Any]:
    started = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": inputs})
    assert started.status_code == 201, started.text
    return await finished(api, started.json()["workflowRun"]["identifier"])


async def run_one(api: httpx.AsyncClient, name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    await create(api, with_inputs(chain(name, *nodes)))
    return await run_slow(api, name, {"service": "payments"})


def usage_of(output: dict[str, Any]) -> tuple[int, int]:
    usage = output["usage"]
    assert set(usage) == {"inputTokens", "outputTokens"}, usage
    return int(usage["inputTokens"]), int(usage["outputTokens"])


def assert_ai_output(output: dict[str, Any], *, calls: int = 1) -> None:
    """The shape of an AI node's output after a real call: tokens counted, an invocation id."""
    inputs, outputs = usage_of(output)
    assert inputs >= calls and outputs >= 1, output["usage"]
    assert output["invocationIdentifier"].startswith("aiinv_"), output
    assert isinstance(output["toolCalls"], list), output
    assert isinstance(output["model"], str) and output["model"], output


def model_calls(node_run: dict[str, Any]) -> list[str]:
    return [line for line in logs_of(node_run) if line.startswith(MODEL_CALL)]


async def test_the_ai_node_calls_the_local_model_and_stores_its_answer(api: httpx.AsyncClient) -> None:
    run = await run_one(api, "local-ai", ai(userPrompt="Write one short sentence about the {{ .inputs.service }} service.",
                                            systemPrompt="You answer in one sentence."))
    assert run["result"] == "SUCCESS", run
    [node_run] = node_runs(run, "ask")
    output = node_run["output"]
    assert_ai_output(output)
    assert isinstance(output["response"], str) and output["response"].strip(), output
    assert output == run["variables"]["outputs"]["ask"], "the node run's output is the run's output of the node"
    [line] = model_calls(node_run)
    inputs, outputs = usage_of(output)
    assert f"{inputs} input, {outputs} output tokens" in line


async def test_an_output_schema_gives_a_valid_object_or_fails_after_one_repair(api: httpx.AsyncClient) -> None:
    run = await run_one(api, "local-schema", ai(
        userPrompt="The {{ .inputs.service }} service has been down since the 1.4.2 deploy. Summarise the incident "
                   'as JSON like {"summary": "...", "severity": "high"}.',
        systemPrompt="You are an incident analyst.", outputSchema=SUMMARY_SCHEMA))
    [node_run] = node_runs(run, "ask")
    logs = logs_of(node_run)
    if run["result"] != "SUCCESS":
        assert_schema_failure(node_run)
        return
    response = node_run["output"]["response"]
    assert not list(Draft202012Validator(SUMMARY_SCHEMA).iter_errors(response)), response
    calls = len(model_calls(node_run))
    assert_ai_output(node_run["output"], calls=calls)
    assert calls in (1, 2), logs
    assert any("asking the model once to repair" in line for line in logs) == (calls == 2), logs


def assert_schema_failure(node_run: dict[str, Any]) -> None:
    """Failed, not retried, after exactly two model calls (the answer and its one repair), naming the
    schema error, with both calls' usage in the failed node run's output."""
    logs, output = logs_of(node_run), node_run["output"]
    assert node_run["result"] == "FAILED", node_run
    assert SCHEMA_FAILURE in node_run["error"], node_run["error"]
    assert len(model_calls(node_run)) == 2, logs
    assert any("asking the model once to repair" in line for line in logs), logs
    assert any("the repaired answer is invalid too" in line for line in logs), logs
    inputs, outputs = usage_of(output)
    assert inputs > 0 and outputs > 0, output


async def test_an_answer_that_cannot_fit_the_schema_fails_the_node_after_one_repair(api: httpx.AsyncClient) -> None:
    """JSON mode makes the server answer with a JSON object, so a schema that wants an array can never
    be met: the engine's failure path, whatever the model says."""
    run = await run_one(api, "local-schema-fails", ai(userPrompt="Reply with an empty JSON object: {}",
                                                      outputSchema={"type": "array", "minItems": 1},
                                                      retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01}))
    assert run["result"] == "FAILED", run
    [node_run] = node_runs(run, "ask")
    assert_schema_failure(node_run)


async def test_an_agent_with_a_workflow_tool_keeps_within_max_steps(api: httpx.AsyncClient) -> None:
    await create(api, GREET)
    system = "You greet people. To greet someone, call the tool workflow__greet with their name."
    agent = {"title": "Greeter", "provider": "local", "tools": ["workflow:greet"], "maxSteps": 2, "systemPrompt": system}
    answer = await api.put("/v1/agents/greeter", json=agent)
    assert answer.status_code == 201, answer.text
    node = {"identifier": "agent", "config": {"type": "AI_AGENT", "agentIdentifier": "greeter",
                                              "userPrompt": "Greet {{ .inputs.name }}."}}
    definition = chain("local-agent", node)
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"name": {"type": "string"}}}
    await create(api, definition)
    run = await run_slow(api, "local-agent", {"name": "Ada"})
    [node_run] = node_runs(run, "agent")
    assert_agent_run(node_run, system, "Greet Ada.", max_steps=2)
    results = {m["toolCallId"]: m["content"] for m in node_run["output"]["transcript"] if m["role"] == "tool"}
    for call in node_run["output"]["toolCalls"]:
        assert call["tool"] == "workflow__greet", call
        if call["ok"]:  # the workflow ran as a child run of this one, its result given to the model
            child_id = json.loads(results[call["id"]])["runId"]
            child = (await api.get(f"/v1/workflows/runs/{child_id}")).json()["workflowRun"]
            assert child["parentRunIdentifier"] == run["identifier"], child


def assert_agent_run(node_run: dict[str, Any], system: str, user: str, *, max_steps: int) -> None:
    """What the engine guarantees of an agent whatever the model does: the transcript starts with the
    prompts and holds every turn, at most `max_steps` model calls, a log line per tool call, and a
    failure only for running out of steps."""
    output, logs = node_run["output"], logs_of(node_run)
    transcript = output["transcript"]
    assert transcript[:2] == [{"role": "system", "content": system}, {"role": "user", "content": user}], transcript
    assert {m["role"] for m in transcript} <= {"system", "user", "assistant", "tool"}, transcript
    assistant_turns = [m for m in transcript if m["role"] == "assistant"]
    calls = model_calls(node_run)
    assert 1 <= len(calls) <= max_steps and len(assistant_turns) == len(calls), (logs, transcript)
    assert len([m for m in transcript if m["role"] == "tool"]) == len(output["toolCalls"]), transcript
    for call in output["toolCalls"]:
        assert any(line.startswith(f"step {call['step']}: ") and call["tool"] in line for line in logs), (call, logs)
    inputs, outputs = usage_of(output)
    assert inputs > 0 and outputs >= 0, output
    if node_run["result"] == "SUCCESS":
        assert not assistant_turns[-1].get("toolCalls"), transcript
        assert output["response"] == assistant_turns[-1]["content"], output
    else:
        assert f"maxSteps={max_steps}" in node_run["error"], node_run["error"]
        assert len(calls) == max_steps, logs


# ---- Port's AI examples: their edited copies with the AI node put back ----------------------------

PORT_AI = ["23-S-skills-event-ai-incident", "29-D-docs-guide-self-heal-scorecard",
           "30-D-docs-guide-ticket-resolution-coding-agents", "31-D-docs-ai-node-analyze-and-notify",
           "32-D-docs-ai-node-incident-summary"]


@dataclass
class PortWorld:
    engine: Any
    api: httpx.AsyncClient
    echo: Echo


@pytest.fixture
async def port_world(tmp_path: Path, local_model: LocalModel, echo: Echo) -> AsyncIterator[PortWorld]:  # noqa: F811
    """As tests/service/test_port_examples.py's engine (EDITS.md's secrets, GitHub on the echo server),
    with the local model as its AI provider."""
    key = base64.b64encode(os.urandom(32)).decode()
    async with local_engine(tmp_path, local_model, secrets_key=key, github_api_url=f"{echo.base_url}/gh") as eng:
        vault = open_vault(eng.store, key)
        assert vault is not None
        for name, value in {**SECRETS, "slack-webhook-url": f"{echo.base_url}/slack"}.items():
            await vault.put(name, value, now=time.time())
        async with engine_client(eng) as client:
            yield PortWorld(eng, client, echo)


def with_ai_nodes(name: str, echo_url: str) -> tuple[dict[str, Any], list[str]]:
    """The edited copy with each offline stand-in's config replaced by the original's AI or AI_AGENT
    config (the edited copy's `variables` stay); the identifiers of those nodes."""
    original = {n["identifier"]: n for n in load(name)["nodes"]}
    definition = load_edited(name, echo_url)
    put_back = []
    for node in definition["nodes"]:
        source = original.get(node["identifier"])
        if source is not None and source["config"]["type"] in AI_TYPES:
            node["config"] = source["config"]
            put_back.append(node["identifier"])
    return definition, put_back


async def agents_for(api: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    """Each agent the definition names, stored with one catalog read tool and a small `maxSteps`."""
    for node in definition["nodes"]:
        if node["config"]["type"] == "AI_AGENT":
            identifier = node["config"]["agentIdentifier"]
            answer = await api.put(f"/v1/agents/{identifier}", json={
                "title": identifier, "provider": "local", "maxSteps": AGENT_STEPS, "tools": ["list_entities"],
                "systemPrompt": "You are a platform engineering assistant. Answer briefly."})
            assert answer.status_code == 201, answer.text


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"Port's examples are not at {EXAMPLES}")
@pytest.mark.parametrize("name", PORT_AI)
async def test_port_ai_example_runs_against_the_local_model(port_world: PortWorld, name: str) -> None:
    definition, ai_nodes = with_ai_nodes(name, port_world.echo.base_url)
    assert ai_nodes, "the example has an AI or AI_AGENT node"
    await agents_for(port_world.api, definition)
    created = await port_world.api.post("/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    run_id = await start(port_world.api, port_world.engine, definition["identifier"], CASES[name])
    await ai_nodes_done(port_world.api, run_id, ai_nodes)
    run = await run_through(port_world.api, run_id)
    nodes = {n["identifier"]: n for n in definition["nodes"]}
    for node in ai_nodes:
        [node_run] = node_runs(run, node)
        assert_port_ai_node(node_run, nodes[node])
    if name.startswith("31-") and run["result"] == "SUCCESS":  # the answer reaches the Slack message
        answer = run["variables"]["outputs"]["ai-analyze"]["response"]
        assert port_world.echo.bodies("/slack") == [{"text": f"AI Analysis for payments:\n{answer}"}]


async def ai_nodes_done(api: httpx.AsyncClient, run_id: str, nodes: list[str]) -> None:
    """Wait (long: CPU-bound model calls) until the run's AI nodes finished or the run completed."""
    for _ in range(RUN_WAIT):
        run = (await api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 5})).json()["workflowRun"]
        states = {n: run["nodes"].get(n, {}).get("state") for n in nodes}
        if run["status"] == "COMPLETED" or all(s in FINISHED_NODE_STATES for s in states.values()):
            return
    raise AssertionError(f"the AI nodes of run {run_id} did not finish: {run}")


def assert_port_ai_node(node_run: dict[str, Any], node: dict[str, Any]) -> None:
    """An example's AI node: real calls logged with their token counts; the documented output shape when
    it succeeded (its `variables` when it maps them, as 29 and 30 do); otherwise only a failure the
    engine owns up to with a weak model (an answer outside `outputSchema` after its repair, a tool loop
    out of steps or out of the local model's context, devinfra/model.py MODEL_CONTEXT)."""
    config, output = node["config"], node_run["output"]
    calls = [re.search(r": (\d+) input, (\d+) output tokens", line) for line in model_calls(node_run)]
    assert calls and all(c is not None and int(c.group(1)) > 0 for c in calls), logs_of(node_run)
    if node_run["result"] != "SUCCESS":
        owned = ("maxSteps=", "maximum context length", *((SCHEMA_FAILURE,) if "outputSchema" in config else ()))
        assert any(failure in node_run["error"] for failure in owned), node_run["error"]
        return
    variables = node.get("variables") or {}
    if variables:
        assert set(output) == set(variables), output
    responses = [output[k] for k, v in variables.items() if v == "{{ .response }}"] or [output["response"]]
    for response in responses:
        if "outputSchema" in config:
            assert not list(Draft202012Validator(config["outputSchema"]).iter_errors(response)), output
        else:
            assert isinstance(response, str), output
    if not variables:
        assert_ai_output(output, calls=len(calls))
    if not variables and config["type"] == "AI_AGENT":
        assert output["transcript"][-1] == {"role": "assistant", "content": output["response"]}, output
