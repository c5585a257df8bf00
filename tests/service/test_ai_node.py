"""The AI node in an embedded engine against scripted model servers on loopback (OpenAI-compatible
and Anthropic): prompts, output, token usage, schema-constrained answers with one repair, retries
on 429/5xx, provider errors, budgets, guardrails and the providers route."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import engine_client
from tests.service.scripted_model import Answer, Failure, ScriptedModel, scripted_model
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end
from tests.service.test_notify_node import running_engine, with_inputs

KEY = "sk-test-0123456789abcdefghij"
SUMMARY_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}, "severity": {"type": "string"}},
                  "required": ["summary", "severity"]}


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with scripted_model() as m:
        yield m


def providers(model: ScriptedModel) -> list[dict[str, Any]]:
    return [{"name": "local", "kind": "openai", "baseUrl": model.openai_url, "model": "scripted-1",
             "apiKeySecret": "MODEL_KEY"},
            {"name": "claude", "kind": "anthropic", "baseUrl": model.base_url, "model": "claude-scripted",
             "apiKeySecret": "MODEL_KEY"},
            {"name": "keyless", "kind": "openai", "baseUrl": model.openai_url, "model": "scripted-2"}]


@contextlib.asynccontextmanager
async def engine_api(tmp_path: Path, model: ScriptedModel, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running_engine(tmp_path, ai_providers=providers(model), ai_max_retry_after_seconds=1.0,
                              **settings) as eng, engine_client(eng) as client:
        answer = await client.put("/v1/secrets/MODEL_KEY", json={"value": KEY})
        assert answer.status_code == 201, answer.text
        yield client


@pytest.fixture
async def api(tmp_path: Path, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    async with engine_api(tmp_path, model) as client:
        yield client


def ai(identifier: str = "ask", retry: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"identifier": identifier, "config": {"type": "AI", **config}}
    if retry is not None:
        node["retry"] = retry
    return node


async def run_one(api: httpx.AsyncClient, name: str, *nodes: dict[str, Any], inputs: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    await create(api, with_inputs(chain(name, *nodes)))
    return await run_to_end(api, name, inputs or {"service": "payments"})


def logs_of(node_run: dict[str, Any]) -> list[str]:
    return [entry["log"] for entry in node_run["nodeRunLogs"]]


async def test_the_ai_node_sends_rendered_prompts_and_outputs_the_answer(api: httpx.AsyncClient,
                                                                        model: ScriptedModel) -> None:
    model.script(Answer("payments is degraded", input_tokens=42, output_tokens=7))
    run = await run_one(api, "ai-basic", ai(userPrompt="Summarise {{ .inputs.service }}", systemPrompt="Be brief."))
    assert run["result"] == "SUCCESS", run
    output = run["variables"]["outputs"]["ask"]
    assert output["response"] == "payments is degraded"
    assert output["usage"] == {"inputTokens": 42, "outputTokens": 7}
    assert output["toolCalls"] == []
    assert output["invocationIdentifier"].startswith("aiinv_")
    sent = model.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "scripted-1"
    assert sent["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Summarise payments"}]
    assert "response_format" not in sent["body"]
    assert KEY not in str(run)
    assert any(line.startswith("model call to local (scripted-1): 42 input, 7 output tokens")
               for line in logs_of(node_runs(run, "ask")[0]))


async def test_the_providers_route_lists_names_and_secret_names_never_values(api: httpx.AsyncClient,
                                                                            model: ScriptedModel) -> None:
    answer = await api.get("/v1/ai/providers")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["default"] == "local"
    assert [p["name"] for p in body["providers"]] == ["local", "claude", "keyless"]
    assert body["providers"][1] == {"name": "claude", "kind": "anthropic", "baseUrl": model.base_url,
                                    "model": "claude-scripted", "apiKeySecret": "MODEL_KEY"}
    assert KEY not in answer.text


async def test_an_anthropic_provider_gets_the_messages_format(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script(Answer("from claude", input_tokens=12, output_tokens=3))
    run = await run_one(api, "ai-claude", ai(userPrompt="Hi {{ .inputs.service }}", systemPrompt="Sys", provider="claude",
                                             model="claude-other"))
    assert run["result"] == "SUCCESS", run
    assert run["variables"]["outputs"]["ask"]["response"] == "from claude"
    assert run["variables"]["outputs"]["ask"]["usage"] == {"inputTokens": 12, "outputTokens": 3}
    sent = model.requests[0]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == KEY and "authorization" not in sent["headers"]
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["model"] == "claude-other"
    assert sent["body"]["system"] == "Sys"
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi payments"}]}]
    assert sent["body"]["max_tokens"] > 0


async def test_output_schema_asks_for_json_and_repairs_one_invalid_answer(api: httpx.AsyncClient,
                                                                         model: ScriptedModel) -> None:
    model.script(Answer('{"summary": "db down"}', input_tokens=20, output_tokens=5),
                 Answer('```json\n{"summary": "db down", "severity": "high"}\n```', input_tokens=30, output_tokens=8))
    run = await run_one(api, "ai-schema", ai(userPrompt="Summarise", outputSchema=SUMMARY_SCHEMA))
    assert run["result"] == "SUCCESS", run
    output = run["variables"]["outputs"]["ask"]
    assert output["response"] == {"summary": "db down", "severity": "high"}
    assert output["usage"] == {"inputTokens": 50, "outputTokens": 13}
    first, second = model.bodies()
    assert first["response_format"] == {"type": "json_object"}
    assert '"required":["summary","severity"]' in first["messages"][0]["content"]
    assert second["messages"][-2] == {"role": "assistant", "content": '{"summary": "db down"}'}
    assert "severity" in second["messages"][-1]["content"] and "required" in second["messages"][-1]["content"]
    assert any("asking the model once to repair" in line for line in logs_of(node_runs(run, "ask")[0]))


async def test_a_second_invalid_answer_fails_the_node_naming_the_schema_error(api: httpx.AsyncClient,
                                                                             model: ScriptedModel) -> None:
    model.script(Answer("not json at all"), Answer('{"summary": 3, "severity": "low"}'))
    run = await run_one(api, "ai-schema-fails", ai(userPrompt="Summarise", outputSchema=SUMMARY_SCHEMA,
                                                   retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01}))
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "ask")
    assert len(attempts) == 1, "a schema failure is not retried"
    assert "does not satisfy config.outputSchema" in attempts[0]["error"]
    assert "/summary" in attempts[0]["error"]
    assert len(model.requests) == 2


async def test_429_and_503_are_retried_within_the_attempt_honouring_retry_after(api: httpx.AsyncClient,
                                                                               model: ScriptedModel) -> None:
    model.script(Failure(429, {"Retry-After": "0"}), Failure(503), Answer("third time"))
    run = await run_one(api, "ai-retry", ai(userPrompt="Hi"))
    assert run["result"] == "SUCCESS", run
    assert run["variables"]["outputs"]["ask"]["response"] == "third time"
    assert len(node_runs(run, "ask")) == 1
    assert len(model.requests) == 3


async def test_a_retry_after_beyond_the_limit_fails_the_attempt_as_retryable(api: httpx.AsyncClient,
                                                                            model: ScriptedModel) -> None:
    model.script(Failure(429, {"Retry-After": "120"}), Answer("after the node retry"))
    run = await run_one(api, "ai-retry-after", ai(userPrompt="Hi", retry={"maxAttempts": 2, "initialIntervalSeconds": 0.01}))
    assert run["result"] == "SUCCESS", run
    first, second = node_runs(run, "ask")
    assert "answered HTTP 429" in first["error"] and "Retry-After 120s" in first["error"]
    assert second["output"]["response"] == "after the node retry"


async def test_a_client_error_fails_without_retries_and_names_the_provider(api: httpx.AsyncClient,
                                                                          model: ScriptedModel) -> None:
    model.script(Failure(400, body={"error": {"message": "model scripted-1 does not exist"}}))
    run = await run_one(api, "ai-400", ai(userPrompt="Hi", retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01}))
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "ask")
    assert len(attempts) == 1
    assert attempts[0]["error"] == "AI provider 'local' answered HTTP 400: model scripted-1 does not exist"


async def test_an_unknown_provider_fails_naming_the_configured_ones(api: httpx.AsyncClient,
                                                                  model: ScriptedModel) -> None:
    run = await run_one(api, "ai-unknown", ai(userPrompt="Hi", provider="nope"))
    assert run["result"] == "FAILED"
    error = node_runs(run, "ask")[0]["error"]
    assert "config.provider 'nope'" in error and "claude, keyless, local" in error
    assert model.requests == []


async def test_a_missing_key_secret_fails_naming_the_secret(tmp_path: Path, model: ScriptedModel) -> None:
    async with running_engine(tmp_path, ai_providers=providers(model)) as eng, engine_client(eng) as client:
        run = await run_one(client, "ai-no-key", ai(userPrompt="Hi"))
    assert run["result"] == "FAILED"
    assert "secret 'MODEL_KEY'" in node_runs(run, "ask")[0]["error"]
    assert model.requests == []


async def test_the_egress_rules_apply_to_model_endpoints(tmp_path: Path, model: ScriptedModel) -> None:
    metadata = {"name": "meta", "kind": "openai", "baseUrl": "http://169.254.169.254/v1", "model": "m"}
    async with running_engine(tmp_path, ai_providers=[metadata]) as eng, engine_client(eng) as client:
        run = await run_one(client, "ai-egress", ai(userPrompt="Hi", retry={"maxAttempts": 3, "initialIntervalSeconds": 0.01}))
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "ask")
    assert len(attempts) == 1
    assert "169.254.169.254" in attempts[0]["error"] or "link-local" in attempts[0]["error"]


async def test_the_node_token_budget_refuses_the_call_that_would_exceed_it(api: httpx.AsyncClient,
                                                                          model: ScriptedModel) -> None:
    model.script(Answer("{}", input_tokens=40, output_tokens=20))
    run = await run_one(api, "ai-budget", ai(userPrompt="Hi", outputSchema=SUMMARY_SCHEMA, maxTokens=60))
    assert run["result"] == "FAILED"
    error = node_runs(run, "ask")[0]["error"]
    assert error == "the node token budget of 60 is used up (60 tokens spent)"
    assert model.bodies()[0]["max_tokens"] == 60
    assert len(model.requests) == 1


async def test_the_run_token_budget_spans_the_ai_steps_of_a_run(tmp_path: Path, model: ScriptedModel) -> None:
    model.script(Answer("first", input_tokens=15, output_tokens=10))
    async with engine_api(tmp_path, model, ai_run_token_budget=25) as client:
        run = await run_one(client, "ai-run-budget", ai("one", userPrompt="Hi"), ai("two", userPrompt="Again"))
    assert run["result"] == "FAILED"
    assert node_runs(run, "one")[0]["result"] == "SUCCESS"
    assert node_runs(run, "two")[0]["error"] == "the run token budget of 25 is used up (25 tokens spent)"
    assert len(model.requests) == 1


async def test_pii_is_redacted_before_the_model_sees_it_and_logged(api: httpx.AsyncClient,
                                                                  model: ScriptedModel) -> None:
    model.default = Answer(echo=True)
    prompt = "Mail ada@example.com, card 4111 1111 1111 1111, ref 4111 1111 1111 1112, call +44 20 7946 0958"
    run = await run_one(api, "ai-pii", ai(userPrompt=prompt, guardrails={"pii": {"action": "redact", "scope": "input"}}))
    assert run["result"] == "SUCCESS", run
    sent = model.bodies()[0]["messages"][-1]["content"]
    assert sent == ("Mail [REDACTED:email], card [REDACTED:card], ref 4111 1111 1111 1112, "
                    "call [REDACTED:phone]")
    assert any(line.startswith("guardrail pii (input): redact") and "1 email" in line and "1 card" in line
               for line in logs_of(node_runs(run, "ask")[0]))


async def test_pii_in_the_answer_can_block_the_step(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script(Answer("the owner is ada@example.com"))
    run = await run_one(api, "ai-pii-block", ai(userPrompt="Who owns it?", guardrails={"pii": {"action": "block"}}))
    assert run["result"] == "FAILED"
    error = node_runs(run, "ask")[0]["error"]
    assert error == "guardrail pii blocked the output: found 1 email"
    assert "ada@example.com" not in str(run["nodeRuns"])


async def test_a_banned_keyword_blocks_before_the_call(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    run = await run_one(api, "ai-banned", ai(userPrompt="Tell me about Project Falcon",
                                             guardrails={"bannedKeywords": ["project falcon"]}))
    assert run["result"] == "FAILED"
    assert node_runs(run, "ask")[0]["error"] == "guardrail bannedKeywords blocked the input: banned keyword 'project falcon'"
    assert model.requests == []


async def test_workspace_guardrails_apply_to_every_step(tmp_path: Path, model: ScriptedModel) -> None:
    async with engine_api(tmp_path, model, ai_guardrails={"*": {"bannedTopics": ["salaries"]}}) as client:
        run = await run_one(client, "ai-ws-guard", ai(userPrompt="List salaries of {{ .inputs.service }}"))
    assert run["result"] == "FAILED"
    assert "guardrail bannedKeywords" in node_runs(run, "ask")[0]["error"]
    assert model.requests == []


async def test_a_secret_value_in_a_prompt_is_blocked_and_masked(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    run = await run_one(api, "ai-secret", ai(userPrompt="debug: {{ .inputs.service }}"), inputs={"service": f"key={KEY}"})
    assert run["result"] == "FAILED"
    assert node_runs(run, "ask")[0]["error"] == "guardrail secrets blocked the input: the prompt carries the value of a secret"
    assert model.requests == []


async def test_an_ai_node_with_an_unknown_field_is_refused_naming_it(api: httpx.AsyncClient) -> None:
    answer = await api.post("/v1/workflows", json=chain("ai-bad", ai(userPrompt="Hi", temperature=2)))
    assert answer.status_code == 422, answer.text
    assert "/nodes/1/config" in answer.text and "temperature" in answer.text


async def test_the_ai_summary_example_runs_with_its_default_inputs(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    definition = json.loads((Path(__file__).parents[2] / "examples" / "ai-summary.json").read_text())
    model.default = Answer(echo=True, input_tokens=60, output_tokens=20)
    await create(api, definition)
    run = await run_to_end(api, "ai-summary", {})
    assert run["result"] == "SUCCESS", run
    report = run["variables"]["outputs"]["report"]
    assert report["service"] == "payments" and report["tokens"] == 80
    assert "[REDACTED:email]" in report["summary"] and "ops@example.com" not in report["summary"]
    assert model.bodies()[0]["max_tokens"] == 800


async def test_an_invalid_output_schema_or_tool_pattern_is_refused_at_save(api: httpx.AsyncClient) -> None:
    node = ai(userPrompt="Hi", outputSchema={"type": "no-such-type"}, tools=["list_(", "get_entity"])
    answer = await api.post("/v1/workflows", json=chain("ai-bad-schema", node))
    assert answer.status_code == 422, answer.text
    pointers = {d["pointer"] for d in answer.json()["details"]}
    assert pointers == {"/nodes/1/config/outputSchema", "/nodes/1/config/tools/0"}


async def test_an_ai_node_with_tools_runs_the_tool_loop(api: httpx.AsyncClient, model: ScriptedModel) -> None:
    model.script(Answer(None, tool_calls=(("call_1", "list_blueprints", {}),), input_tokens=20, output_tokens=4),
                 Answer("no blueprints yet", input_tokens=30, output_tokens=6))
    run = await run_one(api, "ai-tools", ai(userPrompt="What blueprints exist?", tools=["^list_.*"]))
    assert run["result"] == "SUCCESS", run
    output = run["variables"]["outputs"]["ask"]
    assert output["response"] == "no blueprints yet"
    assert output["usage"] == {"inputTokens": 50, "outputTokens": 10}
    assert [call["tool"] for call in output["toolCalls"]] == ["list_blueprints"]
    offered = {t["function"]["name"] for t in model.bodies()[0]["tools"]}
    assert "list_blueprints" in offered and "get_entity" not in offered
    assert model.bodies()[0]["tool_choice"] == "auto"
    assert model.bodies()[1]["messages"][-1]["role"] == "tool"
