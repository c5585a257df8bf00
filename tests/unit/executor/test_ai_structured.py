"""Schema-constrained answers (parse, validate, the repair turn), token budgets and the two wire
formats' request bodies and replies."""

from __future__ import annotations

import pytest

from libs.core.errors import ActionError
from services.executor.ai import structured, wire_anthropic, wire_openai
from services.executor.ai.budget import BudgetExceeded, TokenBudget
from services.executor.ai.models import Message, ToolCall, ToolSpec, Usage
from services.executor.ai.wire_common import MalformedReply

SCHEMA = {"type": "object", "properties": {"severity": {"enum": ["low", "high"]}}, "required": ["severity"]}


def test_a_valid_answer_in_a_fence_is_the_object() -> None:
    checked = structured.check(SCHEMA, '```json\n{"severity": "low"}\n```')
    assert checked == structured.Checked({"severity": "low"}, None)


@pytest.mark.parametrize("answer, problem", [
    ("Sure! here it is", "the answer is not JSON (Expecting value at character 0)"),
    ('{"severity": "medium"}', "/severity"),
    ("{}", "severity"),
])
def test_an_invalid_answer_names_its_problem(answer: str, problem: str) -> None:
    checked = structured.check(SCHEMA, answer)
    assert checked.problem is not None and problem in checked.problem


def test_an_invalid_schema_is_a_config_error() -> None:
    with pytest.raises(ActionError, match="config.outputSchema is not a valid JSON Schema"):
        structured.check({"type": "no-such-type"}, "{}")


def test_the_repair_turns_quote_the_answer_and_the_problem() -> None:
    answer, ask = structured.repair_turns('{"severity": 1}', "/severity: must be one of low, high")
    assert answer == Message("assistant", '{"severity": 1}')
    assert ask.role == "user" and "/severity: must be one of low, high" in ask.content


def test_the_system_prompt_carries_the_schema() -> None:
    assert structured.system_prompt("", None) == ""
    prompt = structured.system_prompt("Be brief.", SCHEMA)
    assert prompt.startswith("Be brief.\n\nAnswer with one JSON object") and '"required":["severity"]' in prompt


def test_budgets_lower_max_tokens_and_refuse_when_used_up() -> None:
    budget = TokenBudget(node=(100, 0), run=(1000, 950))
    assert budget.remaining() == 50
    assert budget.max_tokens(None) == 50 and budget.max_tokens(20) == 20
    budget.charge(Usage(30, 25))
    with pytest.raises(BudgetExceeded, match="the run token budget of 1000 is used up \\(1005 tokens spent\\)"):
        budget.check()
    unlimited = TokenBudget(node=None, run=(0, 5))
    assert unlimited.remaining() is None and unlimited.max_tokens(7) == 7
    unlimited.check()


TRANSCRIPT = (Message("system", "sys"), Message("user", "hi"),
              Message("assistant", "", tool_calls=(ToolCall("c1", "get_entity", {"id": "a"}),
                                                   ToolCall("c2", "list_blueprints", {}))),
              Message("tool", "A", tool_call_id="c1"), Message("tool", "B", tool_call_id="c2"))
TOOLS = (ToolSpec("get_entity", "Read one entity", {"type": "object", "properties": {"id": {"type": "string"}}}),)


def test_openai_bodies_carry_tools_json_mode_and_tool_turns() -> None:
    body = wire_openai.body("m", TRANSCRIPT, TOOLS, json_mode=True, max_tokens=9)
    assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] == 9
    assert body["tools"] == [{"type": "function", "function": {"name": "get_entity", "description": "Read one entity",
                                                               "parameters": TOOLS[0].parameters}}]
    assert body["messages"][2]["tool_calls"][0] == {"id": "c1", "type": "function",
                                                    "function": {"name": "get_entity", "arguments": '{"id": "a"}'}}
    assert body["messages"][4] == {"role": "tool", "content": "B", "tool_call_id": "c2"}


def test_anthropic_bodies_lift_the_system_prompt_and_join_tool_results() -> None:
    body = wire_anthropic.body("m", TRANSCRIPT, TOOLS, json_mode=False, max_tokens=None)
    assert body["system"] == "sys" and body["max_tokens"] == wire_anthropic.DEFAULT_MAX_TOKENS
    assert body["tools"] == [{"name": "get_entity", "description": "Read one entity", "input_schema": TOOLS[0].parameters}]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "c1", "name": "get_entity", "input": {"id": "a"}},
                                              {"type": "tool_use", "id": "c2", "name": "list_blueprints", "input": {}}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "A"},
                                              {"type": "tool_result", "tool_use_id": "c2", "content": "B"}]


def test_replies_of_both_formats_become_the_same_reply() -> None:
    openai = wire_openai.reply({"id": "x", "model": "m1", "choices": [{"message": {"content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_entity", "arguments": '{"id": "a"}'}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, "m")
    anthropic = wire_anthropic.reply({"id": "x", "model": "m1", "content": [
        {"type": "tool_use", "id": "c1", "name": "get_entity", "input": {"id": "a"}}],
        "usage": {"input_tokens": 3, "output_tokens": 4}}, "m")
    assert openai == anthropic
    assert openai.tool_calls == (ToolCall("c1", "get_entity", {"id": "a"}),) and openai.usage == Usage(3, 4)


@pytest.mark.parametrize("data", [{}, {"choices": []}, {"choices": [{"message": {"content": 3}}]}, []])
def test_malformed_openai_replies_are_refused(data: object) -> None:
    with pytest.raises(MalformedReply):
        wire_openai.reply(data, "m")


def test_arguments_that_are_not_an_object_are_kept_raw() -> None:
    reply = wire_openai.reply({"choices": [{"message": {"content": "", "tool_calls": [
        {"id": "c", "function": {"name": "t", "arguments": "not json"}}]}}]}, "m")
    assert reply.tool_calls[0].arguments == {"_raw": "not json"}
