"""The tool loop of an agent: model → tool calls → results → model, at most `max_steps` model calls.

- Before every model call and every tool call the loop asks whether the run was cancelled, and stops
  there (a cancelled run stops the loop at its next step).
- Each tool call is one node log line: the step, the tool, its arguments and its duration (the lines
  are stored with the attempt's completion, where every secret the attempt revealed is masked).
  A tool's failure (an `ActionError`: an unknown tool, bad arguments, an MCP tool error) is given back
  to the model as the result `{"error": ...}`, so it can recover; anything else fails the attempt.
- Every tool result passes the caller's `scan` (the guardrails' prompt-injection scan) before the
  model sees it.
- The transcript (every message, in order), the summed usage and the tool calls are the result, and
  the output of a failure too (`LoopStopped.output`): a loop cut off by `max_steps` or a cancellation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from libs.core.errors import ActionError
from libs.core.run import LogLevel
from services.executor.ai.models import NO_USAGE, Message, Reply, ToolCall, ToolSpec, Usage
from services.executor.ai.steps import ToolLoopResult

Chat = Callable[[Sequence[Message], Sequence[ToolSpec]], Awaitable[Reply]]
MAX_RESULT_CHARS = 20_000


class LoopStopped(ActionError):
    code = "agent_stopped"


@dataclass(frozen=True)
class BoundTool:
    spec: ToolSpec
    kind: str
    """`catalog`, `workflow` or `mcp`: shown in log lines."""
    invoke: Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class LoopHooks:
    cancelled: Callable[[], Awaitable[bool]]
    log: Callable[[str, LogLevel], Awaitable[None]]
    """(message, level): one node log line (NodeLog.write)."""
    scan: Callable[[str, str], Awaitable[str]]
    """(tool name, result text) → the text the model may see; raises to block it."""


@dataclass
class LoopState:
    transcript: list[Message]
    usage: Usage = NO_USAGE
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0

    def output(self, response: Any = None) -> dict[str, Any]:
        return {"response": response, "transcript": [as_json(m) for m in self.transcript],
                "usage": self.usage.as_output(), "toolCalls": self.tool_calls, "steps": self.steps}


def as_json(message: Message) -> dict[str, Any]:
    shown: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        shown["toolCalls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    if message.tool_call_id is not None:
        shown["toolCallId"] = message.tool_call_id
    return shown


async def run_tool_loop(chat: Chat, messages: list[Message], tools: dict[str, BoundTool], *, max_steps: int,
                        hooks: LoopHooks) -> ToolLoopResult:
    """The model's last reply with the transcript, usage and tool calls; LoopStopped (its `output`
    `{response, transcript, usage, toolCalls, steps}`) when cut off by `max_steps` or a cancellation."""
    state = LoopState(list(messages))
    specs = [tool.spec for tool in tools.values()]
    while state.steps < max_steps:
        await _unless_cancelled(state, hooks)
        state.steps += 1
        reply = await chat(state.transcript, specs)
        state.usage = state.usage + reply.usage
        state.transcript.append(reply.as_message())
        if not reply.tool_calls:
            return ToolLoopResult(reply=reply, usage=state.usage, transcript=tuple(state.transcript),
                                  tool_calls=tuple(state.tool_calls))
        for call in reply.tool_calls:
            await _unless_cancelled(state, hooks)
            state.transcript.append(Message("tool", await _perform(state, call, tools, hooks),
                                            tool_call_id=call.id))
    await hooks.log(f"stopped after maxSteps={max_steps} model calls", "WARN")
    raise LoopStopped(f"the agent did not finish within maxSteps={max_steps} model calls "
                      f"(it still asked for tools)", output=state.output())


async def _unless_cancelled(state: LoopState, hooks: LoopHooks) -> None:
    if await hooks.cancelled():
        await hooks.log(f"run cancelled: the agent stopped before step {state.steps + 1}", "WARN")
        raise LoopStopped(f"the run was cancelled; the agent stopped after {state.steps} model calls",
                          output=state.output())


async def _perform(state: LoopState, call: ToolCall, tools: dict[str, BoundTool], hooks: LoopHooks) -> str:
    """One tool call: its result as text for the model (after the scan), logged and recorded."""
    tool = tools.get(call.name)
    started = time.perf_counter()
    error: str | None = None
    try:
        if tool is None:
            raise ActionError(f"there is no tool {call.name!r}; the tools are {', '.join(sorted(tools)) or 'none'}")
        result = await tool.invoke(call.arguments)
    except ActionError as exc:
        error, result = exc.message, {"error": exc.message}
    millis = round((time.perf_counter() - started) * 1000)
    record = {"step": state.steps, "id": call.id, "tool": call.name, "arguments": call.arguments,
              "durationMs": millis, "ok": error is None}
    state.tool_calls.append(record if error is None else {**record, "error": error})
    kind = tool.kind if tool is not None else "unknown"
    await hooks.log(f"step {state.steps}: {kind} tool {call.name}({json.dumps(call.arguments, default=str)}) "
                    f"{'ok' if error is None else 'failed: ' + error} in {millis} ms", "INFO" if error is None else "WARN")
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return await hooks.scan(call.name, text[:MAX_RESULT_CHARS])
