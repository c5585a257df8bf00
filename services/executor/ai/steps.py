"""What an AI step hands to a tool loop, and the hook through which it does.

The AI node (services/executor/actions/ai.py) calls the model itself when it has no `tools` and no
`mcpServers`. When it has some, it hands a `ChatRequest` to the executor's `ToolRunner` (the tool
loop of services/executor/ai/tool_loop.py, shared with AI_AGENT): model → tool calls → results →
model, until the model answers without tool calls. The runner charges every call to `budget`, passes
every tool result through `guardrails.scan_tool_result`, writes a node log line per step through
`NodeLog`, and returns the final reply with the transcript and the calls it made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.executor.actions.base import ActionInput
from services.executor.ai.budget import TokenBudget
from services.executor.ai.guardrails import Guardrails
from services.executor.ai.models import Message, Provider, Reply, Usage


@dataclass(frozen=True)
class ChatRequest:
    provider: Provider
    messages: tuple[Message, ...]
    model: str | None
    json_mode: bool
    budget: TokenBudget
    guardrails: Guardrails
    tools: tuple[str, ...] = ()
    """Regular expressions (Port's AI node) or names (an agent's) of the tools the model may call."""
    mcp_servers: tuple[str, ...] = ()
    max_steps: int = 10


@dataclass(frozen=True)
class ToolLoopResult:
    reply: Reply
    """The model's last answer (no tool calls left)."""
    usage: Usage
    """All calls of the loop together."""
    transcript: tuple[Message, ...] = ()
    tool_calls: tuple[dict[str, Any], ...] = ()
    """`{tool, arguments, durationSeconds, ...}` per call made, secrets masked."""


class ToolRunner(Protocol):
    async def run(self, data: ActionInput, request: ChatRequest) -> ToolLoopResult: ...
