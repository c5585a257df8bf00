"""Anthropic Messages (`POST {baseUrl}/v1/messages`, `x-api-key`, `anthropic-version`): the system
prompt is a top-level field, tool calls are `tool_use` content blocks and their answers `tool_result`
blocks of the next user turn; no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.executor.ai.models import Message, Reply, ToolCall, ToolSpec, Usage
from services.executor.ai.wire_common import MalformedReply, arguments_object, integer

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
"""Messages requires `max_tokens`; this when neither the node nor its budget sets one."""


def url(base_url: str) -> str:
    return f"{base_url}/v1/messages"


def headers(api_key: str | None) -> dict[str, str]:
    out = {"anthropic-version": VERSION}
    if api_key:
        out["x-api-key"] = api_key
    return out


def body(model: str, messages: Sequence[Message], tools: Sequence[ToolSpec], *, json_mode: bool,
         max_tokens: int | None) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    if json_mode:
        system = (system + "\n\n" if system else "") + "Answer with one JSON object and nothing else."
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
                           "messages": _turns([m for m in messages if m.role != "system"])}
    if system:
        out["system"] = system
    if tools:
        out["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
    return out


def _turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Consecutive tool answers go into one user turn (the API alternates user and assistant)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role == "user" and message.role == "tool":
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
    return blocks or [{"type": "text", "text": ""}]


def reply(data: Any, model: str) -> Reply:
    """MalformedReply when `data` is not a Messages answer."""
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise MalformedReply("the answer has no content blocks")
    texts = [str(b.get("text") or "") for b in blocks if b.get("type") == "text"]
    try:
        calls = tuple(ToolCall(id=str(b["id"]), name=str(b["name"]), arguments=arguments_object(b.get("input")))
                      for b in blocks if b.get("type") == "tool_use")
    except KeyError:
        raise MalformedReply("a tool_use block has no id or name") from None
    usage = data.get("usage") or {}
    return Reply(content="".join(texts) if texts else None, tool_calls=calls,
                 usage=Usage(integer(usage, "input_tokens"), integer(usage, "output_tokens")),
                 model=str(data.get("model") or model), id=str(data.get("id") or ""))
