"""AI_AGENT: run a stored agent (PUT /v1/agents/{identifier}) on the node's `userPrompt`.

The agent's fields become an AI step (actions/ai.py: guardrails, token budgets, the provider client)
whose tool loop is the executor's `ToolRunner` with the agent's `maxSteps`. Output `{response,
transcript, usage, toolCalls, invocationIdentifier, model}`; cut off by `maxSteps` or a cancelled
run, the node fails with the transcript so far as its output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from libs.access.secret_scope import current_workspace
from libs.core.agents import KIND_AGENTS, Agent
from libs.core.errors import ActionError
from libs.core.workspaces import scoped
from libs.store.ports import Store
from services.executor.actions.ai import AiAction
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.values import describe
from services.executor.ai.steps import ChatRequest, ToolLoopResult, ToolRunner
from services.executor.ai.tool_loop import as_json


class _AgentSteps:
    """The runner of one agent execution: the agent's `maxSteps`, and the loop's result kept."""

    def __init__(self, runner: ToolRunner, max_steps: int) -> None:
        self.runner = runner
        self.max_steps = max_steps
        self.result: ToolLoopResult | None = None

    async def run(self, data: ActionInput, request: ChatRequest) -> ToolLoopResult:
        self.result = await self.runner.run(data, dataclasses.replace(request, max_steps=self.max_steps))
        return self.result


class AgentAction:
    def __init__(self, ai: AiAction, runner: ToolRunner, store: Store) -> None:
        self.ai = ai
        """Its provider client, settings and clock serve every agent; its runner is replaced per execution."""
        self.runner = runner
        self.store = store

    async def execute(self, data: ActionInput) -> ActionResult:
        agent = await self.agent(data.config.get("agentIdentifier"))
        config = {"type": "AI", "userPrompt": data.config.get("userPrompt"), "systemPrompt": agent.systemPrompt,
                  "provider": agent.provider, "model": agent.model, "tools": agent.tools,
                  "mcpServers": agent.mcpServers}
        steps = _AgentSteps(self.runner, agent.maxSteps)
        ai = AiAction(self.ai.chat, self.ai.settings, self.ai.store, tool_runner=steps, clock=self.ai.clock)
        result = await ai.execute(dataclasses.replace(data, config={k: v for k, v in config.items() if v is not None}))
        output = dict(result.output)
        output["transcript"] = ([as_json(m) for m in steps.result.transcript] if steps.result is not None
                                else _without_tools(config, output.get("response")))
        return ActionResult(output=output)

    async def agent(self, identifier: Any) -> Agent:
        if not isinstance(identifier, str) or not identifier:
            raise ActionError(f"config.agentIdentifier must render to an agent identifier, got {describe(identifier)}")
        entry = await self.store.get_entry(KIND_AGENTS, scoped(current_workspace(), identifier))
        if entry is None:
            raise ActionError(f"agent {identifier!r} does not exist (PUT /v1/agents/{identifier})")
        return Agent.model_validate(entry.data)


def _without_tools(config: dict[str, Any], response: Any) -> list[dict[str, Any]]:
    """The transcript of an agent with no tools: its one exchange."""
    system = [{"role": "system", "content": config["systemPrompt"]}] if config.get("systemPrompt") else []
    return [*system, {"role": "user", "content": config["userPrompt"]}, {"role": "assistant", "content": response}]
