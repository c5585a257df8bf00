"""Node type → Action. Every action gets what it needs from one `ActionDeps`. The table must cover
exactly the node kinds the executor runs (`libs/core/node_kinds.py: ACTION_TYPES`), checked when it
is built, at the executor's start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from libs.access.callback_tokens import CallbackTokens
from libs.bus.publisher import Publisher
from libs.core.node_kinds import ACTION_TYPES
from libs.core.secrets import SecretReader
from libs.store.ports import Store
from services.executor.actions.ai import AiAction
from services.executor.actions.ai_agent import AgentAction
from services.executor.actions.approval import ApprovalAction
from services.executor.actions.base import Action
from services.executor.actions.child_runs import ChildRuns
from services.executor.actions.delay import DelayAction
from services.executor.actions.foreach import ForeachAction
from services.executor.actions.human_input import InputAction
from services.executor.actions.integration import IntegrationAction
from services.executor.actions.kafka import KafkaAction
from services.executor.actions.logic import ConditionAction, NoopAction, TransformAction
from services.executor.actions.mcp import McpAction
from services.executor.actions.notify import NotifyAction
from services.executor.actions.smtp_mail import SmtpMailer
from services.executor.actions.sub_workflow import SubWorkflowAction
from services.executor.actions.upsert_entity import UpsertEntityAction
from services.executor.actions.webhook import WebhookAction
from services.executor.ai.agent_runner import AgentToolRunner
from services.executor.ai.catalog_tools import CatalogTools
from services.executor.ai.client import ChatClient
from services.executor.ai.mcp_tools import McpServers
from services.executor.ai.toolbox import Toolbox
from services.executor.ai.workflow_tools import WorkflowTools
from services.executor.settings import ExecutorSettings


@dataclass(frozen=True)
class ActionDeps:
    client: httpx.AsyncClient
    publisher: Publisher
    store: Store
    secrets: SecretReader
    settings: ExecutorSettings
    clock: Callable[[], float] = time.time


def build_registry(deps: ActionDeps) -> dict[str, Action]:
    limits = deps.settings.limits()
    children = ChildRuns(deps.store, deps.clock, limits)
    chat = ChatClient(deps.client, deps.settings, deps.secrets)
    mcp = McpServers(deps.store, deps.secrets, deps.settings.egress_policy())
    runner = AgentToolRunner(chat, deps.store, tools(deps, children, mcp), deps.clock)
    ai = AiAction(chat, deps.settings, deps.store, tool_runner=runner, clock=deps.clock)
    actions: dict[str, Action] = {
        "WEBHOOK": WebhookAction(deps.client, max_response_bytes=deps.settings.max_response_bytes,
                                 callback_tokens=CallbackTokens.from_setting(deps.settings.secrets_key)),
        "CONDITION": ConditionAction(),
        "TRANSFORM": TransformAction(),
        "NOOP": NoopAction(),
        "KAFKA": KafkaAction(deps.publisher, limits, deps.settings.kafka_runs_topic),
        "NOTIFY": NotifyAction(deps.client, SmtpMailer(deps.settings)),
        "INTEGRATION_ACTION": IntegrationAction(deps.client, deps.secrets, deps.settings, store=deps.store),
        "UPSERT_ENTITY": UpsertEntityAction(deps.store, deps.publisher),
        "DELAY": DelayAction(deps.clock),
        "APPROVAL": ApprovalAction(deps.clock),
        "INPUT": InputAction(),
        "SUB_WORKFLOW": SubWorkflowAction(children),
        "AI": ai,
        "AI_AGENT": AgentAction(ai, runner, deps.store),
        "MCP": McpAction(mcp),
    }
    actions["FOREACH"] = ForeachAction(actions, children, limits)
    return checked(actions)


def checked(actions: dict[str, Action]) -> dict[str, Action]:
    """The table, unless a node kind the engine accepts has no action or an action has no kind."""
    missing, unknown = sorted(ACTION_TYPES - set(actions)), sorted(set(actions) - ACTION_TYPES)
    if missing or unknown:
        raise RuntimeError(f"the executor's actions do not match the node kinds: no action for {missing}, "
                           f"no node kind for {unknown}")
    return actions


def tools(deps: ActionDeps, children: ChildRuns, mcp: McpServers) -> Toolbox:
    """What AI steps and agents may call: catalog reads, workflows (as child runs), MCP servers' tools."""
    return Toolbox(CatalogTools(deps.store, deps.clock), WorkflowTools(children, deps.store, deps.publisher, deps.clock),
                   mcp, children)
