"""Node types the engine itself completes after a wait (`node_kinds.ENGINE_COMPLETED_TYPES`): DELAY (a
timer), APPROVAL (a decision or its SLA), INPUT (answers), SUB_WORKFLOW and FOREACH over a workflow
(their child runs). Their save-time rules beyond the config schemas, and how the executor renders a
config whose action renders some fields itself (`NodeKind.deferred`: FOREACH's inline node, per item)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.core import pointer as jp
from libs.core.errors import Issue
from libs.core.instants import parse_instant
from libs.core.node_kinds import ALWAYS_WAITING_TYPES, KINDS, TRIGGER_TYPES
from libs.core.templates import render
from libs.core.url_templates import with_encoded_paths


def render_config(config: dict[str, Any], context: Any) -> dict[str, Any]:
    """The node config with its templates rendered, except the fields its action renders itself
    (in this process, unbounded: services use `libs.expressions.evaluate.render_config`)."""
    now, later = split_config(config)
    rendered: dict[str, Any] = render(now, context)
    return {**rendered, **later}


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fields to render now, the fields the action renders itself). Templates in the path of
    a URL are URL-encoded (url_templates.py)."""
    config = with_encoded_paths(config)
    kind = KINDS.get(str(config.get("type")))
    deferred = () if kind is None else kind.deferred
    if not deferred:
        return config, {}
    return {k: v for k, v in config.items() if k not in deferred}, {k: config[k] for k in deferred if k in config}


def inline_wait_reason(config: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) when an inline FOREACH node could not complete within one attempt."""
    node_type = config.get("type")
    if node_type in TRIGGER_TYPES:
        return "type", f"an inline node cannot be a trigger ({node_type})"
    if node_type in ALWAYS_WAITING_TYPES:
        return "type", f"an inline {node_type} node would wait; map a sub-workflow with `workflowIdentifier` instead"
    if node_type == "FOREACH" and "workflowIdentifier" in config:
        return "workflowIdentifier", "an inline FOREACH must map an inline `node`, not a workflow"
    if node_type == "WEBHOOK" and config.get("synchronized") is False:
        return "synchronized", "an inline WEBHOOK must be synchronized (it cannot wait for a completion)"
    return None


def delay_issues(config: dict[str, Any], pointer: str) -> list[Issue]:
    until = config.get("until")
    if not isinstance(until, str) or "{{" in until:
        return []
    try:
        parse_instant(until)
    except ValueError:
        return [Issue(jp.join(pointer, "until"), f"config.until {until!r} is not an ISO 8601 timestamp "
                      "(e.g. 2030-01-01T09:00:00Z)")]
    return []


def foreach_issues(config: dict[str, Any], pointer: str,
                   inline_issues: Callable[[dict[str, Any], str], list[Issue]]) -> list[Issue]:
    """The inline node is validated against its own type's schema and rules, under `/config/node`."""
    inline = config.get("node")
    if not isinstance(inline, dict) or not isinstance(inline.get("type"), str):
        return []  # the schema reports it
    where = jp.join(pointer, "node")
    reason = inline_wait_reason(inline)
    if reason is not None:
        return [Issue(jp.join(where, reason[0]), f"config.node.{reason[0]}: {reason[1]}")]
    return [Issue(i.pointer, _under_node(i.message)) for i in inline_issues(inline, where)]


def _under_node(message: str) -> str:
    """The inline node's rules name its fields `config.x`; they are `config.node.x` here."""
    if message.startswith("config.") or message.startswith("config "):
        return "config.node" + message[len("config"):]
    return message
