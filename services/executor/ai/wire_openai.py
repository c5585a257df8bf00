"""OpenAI-compatible Chat Completions (`POST {baseUrl}/chat/completions`): OpenAI, Azure OpenAI,
vLLM, Ollama, llama.cpp's server. Request bodies from the neutral shapes of `models.py`, and replies
back into them; no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.executor.ai.models import Message, Reply, ToolCall, ToolSpec, Usage
from services.executor.ai.wire_common import MalformedReply, arguments_object, integer


def url(base_url: str) -> str:
    return f"{base_url}/chat/completions"


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def body(model: str, messages: Sequence[Message], tools: Sequence[ToolSpec], *, json_mode: bool,
         max_tokens: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages]}
    if tools:
        out["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                          "parameters": t.parameters}} for t in tools]
        out["tool_choice"] = "auto"  # OpenAI's default, said aloud: some servers drop `tools` without it
    if json_mode:
        out["response_format"] = {"type": "json_object"}
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    return out


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                             for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def reply(data: Any, model: str) -> Reply:
    """MalformedReply when `data` is not a Chat Completions answer."""
    try:
        message = data["choices"][0]["message"]
        calls = tuple(_tool_call(c, i) for i, c in enumerate(message.get("tool_calls") or ()))
        content = message.get("content")
        usage = data.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise MalformedReply("the answer has no choices[0].message") from None
    if content is not None and not isinstance(content, str):
        raise MalformedReply("choices[0].message.content is not text")
    return Reply(content=content, tool_calls=calls,
                 usage=Usage(integer(usage, "prompt_tokens"), integer(usage, "completion_tokens")),
                 model=str(data.get("model") or model), id=str(data.get("id") or ""))


def _tool_call(call: Any, index: int) -> ToolCall:
    function = call["function"]
    return ToolCall(id=str(call.get("id") or f"call_{index}"), name=str(function["name"]),
                    arguments=arguments_object(function.get("arguments")))
