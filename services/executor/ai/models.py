"""The provider-neutral shapes of a chat with a model: what is sent (messages, tools) and what comes
back (a reply with tool calls and token usage). The wire formats live in `wire_openai.py` and
`wire_anthropic.py`; nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from libs.core.ai_providers import Provider, ProviderKind

__all__ = ["Message", "NO_USAGE", "Provider", "ProviderKind", "Reply", "Role", "ToolCall", "ToolSpec", "Usage"]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; `parameters` is the JSON Schema of its arguments object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One chat turn. An assistant turn may carry `tool_calls`; a `tool` turn answers the call
    `tool_call_id` with `content`."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    def as_output(self) -> dict[str, int]:
        return {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens}


NO_USAGE = Usage(0, 0)


@dataclass(frozen=True)
class Reply:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    model: str
    id: str = ""
    """The provider's id of this completion (empty when it sends none)."""

    def as_message(self) -> Message:
        """The assistant turn to append to the transcript before answering its tool calls."""
        return Message("assistant", self.content or "", tool_calls=self.tool_calls)
