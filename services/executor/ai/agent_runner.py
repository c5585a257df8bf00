"""The executor's `ToolRunner` (services/executor/ai/steps.py): an AI step's or an agent's tool loop
(tool_loop.py) over the tools its request names (toolbox.py), with the provider client's calls charged
to the step's budget, each model call and tool step a node log line, every tool result through the
guardrails' prompt-injection scan, and the run's cancellation looked at before every step."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from libs.core.errors import NotFoundError
from libs.store.ports import Store
from services.executor.actions.base import ActionInput
from services.executor.ai.client import ChatClient
from services.executor.ai.models import Message, Reply, ToolSpec
from services.executor.ai.node_log import NodeLog
from services.executor.ai.steps import ChatRequest, ToolLoopResult
from services.executor.ai.tool_loop import Chat, LoopHooks, run_tool_loop
from services.executor.ai.toolbox import Toolbox


class AgentToolRunner:
    def __init__(self, chat: ChatClient, store: Store, toolbox: Toolbox, clock: Callable[[], float]) -> None:
        self.chat = chat
        self.store = store
        self.toolbox = toolbox
        self.clock = clock

    async def run(self, data: ActionInput, request: ChatRequest) -> ToolLoopResult:
        log = NodeLog(self.store, data.node_run_key, self.clock)

        async def cancelled() -> bool:
            try:
                run = await self.store.get_run(data.run_id)
            except NotFoundError:
                return False
            return run.cancel_requested or run.status == "COMPLETED"

        async def scan(tool: str, text: str) -> str:
            result = request.guardrails.scan_tool_result(text)
            for decision in result.decisions:
                await log.write(f"{decision.log_line()} (tool {tool})", "WARN")
            return result.text

        async with self.toolbox.open(data, request.tools, request.mcp_servers) as tools:
            await log.write(f"tools offered to the model: {', '.join(sorted(tools)) or 'none'}")
            return await run_tool_loop(self._chat(request, log), list(request.messages), tools,
                                       max_steps=request.max_steps, hooks=LoopHooks(cancelled, log.write, scan))

    def _chat(self, request: ChatRequest, log: NodeLog) -> Chat:
        async def chat(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
            started = time.perf_counter()
            reply = await self.chat.chat(request.provider, messages, tools=tools, json_mode=request.json_mode,
                                         model=request.model, budget=request.budget)
            await log.write(f"model call to {request.provider.name} ({reply.model}): {reply.usage.input_tokens} "
                            f"input, {reply.usage.output_tokens} output tokens, {len(reply.tool_calls)} tool "
                            f"call(s) in {time.perf_counter() - started:.2f}s")
            return reply
        return chat
