"""AI: one model call (Port's AI node) through the provider client (services/executor/ai/client.py).

The rendered `systemPrompt` and `userPrompt` pass the guardrails (the workspace's and the node's)
before they are sent, and the answer after; each decision is a node log line, and a block fails the
node naming its scanner. With `outputSchema` the model is asked for JSON (json mode and the schema in
the system prompt), the answer is validated, a failing one is sent back once with the problems, and a
second failure fails the node (not retryable) naming the schema error; `response` is then the object.
With `tools` or `mcpServers` the executor's tool loop (`ToolRunner`, services/executor/ai/steps.py)
makes the calls. Output `{response, invocationIdentifier, model, usage: {inputTokens, outputTokens},
toolCalls}`. The attempt is leased and retried like any action: a model call is made at least once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from libs.access.secret_scope import current_workspace
from libs.core.errors import ActionError
from libs.runtime.ai_settings import AiSettings
from libs.store.ports import Store
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.ai import structured
from services.executor.ai.budget import TokenBudget
from services.executor.ai.client import ChatClient
from services.executor.ai.guardrails import Decision, Guardrails, Scan
from services.executor.ai.models import Message, Reply
from services.executor.ai.node_log import NodeLog
from services.executor.ai.steps import ChatRequest, ToolLoopResult, ToolRunner
from services.executor.secret_use import revealed_values


class AiAction:
    def __init__(self, chat: ChatClient, settings: AiSettings, store: Store, *,
                 tool_runner: ToolRunner | None = None, clock: Callable[[], float] = time.time) -> None:
        self.chat = chat
        self.settings = settings
        self.store = store
        self.tool_runner = tool_runner
        self.clock = clock

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        log = NodeLog(self.store, data.node_run_key, self.clock)
        schema = _schema(cfg)
        request = ChatRequest(
            provider=self.chat.provider(_text(cfg, "provider") or None), messages=(), model=_text(cfg, "model") or None,
            json_mode=schema is not None, budget=self._budget(cfg, data.context),
            guardrails=Guardrails.of(*self.settings.guardrails_of(current_workspace()), node=cfg.get("guardrails")),
            tools=_names(cfg, "tools"), mcp_servers=_names(cfg, "mcpServers"))
        await self.chat.api_key(request.provider)  # known to the secrets guardrail before the first scan
        request = await self._prompted(request, cfg, schema, log)
        result = await self._converse(data, request, log)
        response, result = await self._response(request, result, schema, log)
        return ActionResult(output=_output(data, response, result))

    def _budget(self, cfg: Mapping[str, Any], context: Mapping[str, Any]) -> TokenBudget:
        node = cfg.get("maxTokens")
        run = self.settings.ai_run_token_budget
        return TokenBudget(node=(node, 0) if isinstance(node, int) else None,
                           run=(run, spent_in_run(context)) if run else None)

    async def _prompted(self, request: ChatRequest, cfg: Mapping[str, Any], schema: dict[str, Any] | None,
                        log: NodeLog) -> ChatRequest:
        """The request with its messages, after the input guardrails."""
        system = structured.system_prompt(_text(cfg, "systemPrompt"), schema)
        user = _text(cfg, "userPrompt")
        if not user.strip():
            raise ActionError("config.userPrompt is empty after rendering")
        messages = [Message("system", system)] if system else []
        messages.append(Message("user", user))
        scanned = [await _scanned(request.guardrails.scan_input(m.content, revealed_values()), log) for m in messages]
        return _replace(request, messages=tuple(Message(m.role, s) for m, s in zip(messages, scanned, strict=True)))

    async def _converse(self, data: ActionInput, request: ChatRequest, log: NodeLog) -> ToolLoopResult:
        """One model call, or the tool loop when the step has tools."""
        if request.tools or request.mcp_servers:
            if self.tool_runner is not None:
                return await self.tool_runner.run(data, request)
            await log.write("tools and mcpServers are not available to AI steps in this executor; "
                            "calling the model without tools", "WARN")
        reply = await self._call(request, log)
        return ToolLoopResult(reply=reply, usage=reply.usage, transcript=(*request.messages, reply.as_message()))

    async def _call(self, request: ChatRequest, log: NodeLog) -> Reply:
        started = time.perf_counter()
        reply = await self.chat.chat(request.provider, request.messages, json_mode=request.json_mode,
                                     model=request.model, budget=request.budget)
        await log.write(f"model call to {request.provider.name} ({reply.model}): {reply.usage.input_tokens} input, "
                        f"{reply.usage.output_tokens} output tokens in {time.perf_counter() - started:.2f}s")
        return reply

    async def _response(self, request: ChatRequest, result: ToolLoopResult,
                        schema: dict[str, Any] | None, log: NodeLog) -> tuple[Any, ToolLoopResult]:
        """The answer after the output guardrails: text, or with `outputSchema` the validated object."""
        text = await _scanned(request.guardrails.scan_output(result.reply.content or ""), log)
        if schema is None:
            return text, result
        checked = structured.check(schema, text)
        if checked.problem is None:
            return checked.value, result
        await log.write(f"outputSchema: the answer is invalid ({checked.problem}); asking the model once to repair it",
                        "WARN")
        return await self._repaired(request, result, schema, text, checked.problem, log)

    async def _repaired(self, request: ChatRequest, result: ToolLoopResult, schema: dict[str, Any], text: str,
                        problem: str, log: NodeLog) -> tuple[Any, ToolLoopResult]:
        turns = structured.repair_turns(text, problem)
        retry = _replace(request, messages=(*request.messages, *turns))
        reply = await self._call(retry, log)
        fixed = await _scanned(request.guardrails.scan_output(reply.content or ""), log)
        after = ToolLoopResult(reply=reply, usage=result.usage + reply.usage,
                               transcript=(*result.transcript, turns[1], reply.as_message()),
                               tool_calls=result.tool_calls)
        checked = structured.check(schema, fixed)
        if checked.problem is not None:
            await log.write(f"outputSchema: the repaired answer is invalid too ({checked.problem})", "ERROR")
            raise structured.SchemaFailure(checked.problem, output={"error": checked.problem, "usage": after.usage.as_output()})
        await log.write("outputSchema: the repaired answer is valid")
        return checked.value, after


def spent_in_run(context: Mapping[str, Any]) -> int:
    """Tokens the run's finished AI steps spent, from their outputs' `usage` (a step whose
    `variables` drop `usage` is not counted)."""
    outputs = context.get("outputs")
    total = 0
    for output in outputs.values() if isinstance(outputs, dict) else ():
        usage = output.get("usage") if isinstance(output, dict) and "invocationIdentifier" in output else None
        if isinstance(usage, dict):
            total += sum(v for k, v in usage.items() if k in ("inputTokens", "outputTokens") and isinstance(v, int))
    return total


async def _scanned(scan: Scan, log: NodeLog) -> str:
    for decision in scan.decisions:
        await log.write(decision.log_line(), _level(decision))
    return scan.text


def _level(decision: Decision) -> Any:
    return "WARN" if decision.action == "warn" else "INFO"


def _output(data: ActionInput, response: Any, result: ToolLoopResult) -> dict[str, Any]:
    return {"response": response, "invocationIdentifier": invocation_id(data), "model": result.reply.model,
            "usage": result.usage.as_output(), "toolCalls": list(result.tool_calls)}


def invocation_id(data: ActionInput) -> str:
    """`aiinv_<node run>_<attempt>`: one per attempt (an attempt performed again after a crash keeps it)."""
    return f"aiinv_{data.node_run_id.removeprefix('wfnr_')}_{data.attempt}"


def _replace(request: ChatRequest, **changes: Any) -> ChatRequest:
    return dataclasses.replace(request, **changes)


def _schema(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    schema = cfg.get("outputSchema")
    if schema is not None and not isinstance(schema, dict):
        raise ActionError("config.outputSchema must be a JSON Schema object")
    return schema


def _text(cfg: Mapping[str, Any], key: str) -> str:
    value = cfg.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ActionError(f"config.{key} must be text after rendering")
    return value


def _names(cfg: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = cfg.get(key) or ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ActionError(f"config.{key} must be a list of strings")
    return tuple(value)
