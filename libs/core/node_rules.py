"""Rules about each node on its own: its config against its type's schema, its templates and jq
expressions, its CONDITION options and its trigger's user inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.core import pointer as jp
from libs.core.ai_nodes import ai_issues
from libs.core.egress import url_problem
from libs.core.errors import Issue
from libs.core.go_templates import go_template_hint
from libs.core.inputs import user_inputs_issues
from libs.core.node_kinds import KINDS, config_issues
from libs.core.raw_view import NodeView
from libs.core.schedule import schedule_issues
from libs.core.secret_refs import secret_issues
from libs.core.templates import find_templates, syntax_error, unwrap
from libs.core.waiting_nodes import delay_issues, foreach_issues


def node_issues(node: NodeView) -> list[Issue]:
    """Every problem of one node (its structure is checked elsewhere)."""
    if node.config is None:
        return []
    config_pointer = jp.join(node.pointer, "config")
    found = config_issues(node.config, config_pointer)
    found += template_issues(_templated_part(node), config_pointer)
    if isinstance(node.variables, dict):
        found += template_issues(node.variables, jp.join(node.pointer, "variables"))
    found += secret_issues(node.type or "", node.config, node.variables, node.pointer)
    found += failure_policy_issues(node.config, config_pointer)
    check = _TYPE_CHECKS.get(node.type or "")
    if check is not None:
        reported = {i.pointer for i in found}
        found += [i for i in check(node.config, config_pointer) if i.pointer not in reported]
    return found


def template_issues(value: Any, pointer: str) -> list[Issue]:
    """A `{{ }}` template that is not valid jq, at the pointer of the string holding it."""
    found = []
    for where, expression in find_templates(value, pointer):
        reason = syntax_error(expression)
        if reason is not None:
            message = f"invalid jq in template {{{{ {expression} }}}}: {reason}{go_template_hint(expression)}"
            found.append(Issue(where, message))
    return found


_POLICIES = {"onFailure": ("terminate", "continue"), "onTimeout": ("fail", "continue")}


def failure_policy_issues(config: dict[str, Any], pointer: str) -> list[Issue]:
    """Port's `config.onFailure` (`terminate`|`continue`) and `config.onTimeout` (`fail`|`continue`)."""
    found = []
    for field, allowed in _POLICIES.items():
        if field in config and config[field] not in allowed:
            message = f"config.{field} must be {' or '.join(repr(a) for a in allowed)}"
            found.append(Issue(jp.join(pointer, field), message))
    return found


def expression_issue(expression: Any, pointer: str) -> list[Issue]:
    """A bare jq expression (condition option, TRANSFORM) that does not compile."""
    if not isinstance(expression, str):
        return []  # the schema reports it
    reason = syntax_error(unwrap(expression))
    return [] if reason is None else [Issue(pointer, f"invalid jq expression: {reason}")]


def _templated_part(node: NodeView) -> dict[str, Any]:
    """The config minus its bare jq expressions, which are not templates."""
    kind = KINDS.get(node.type or "")
    config = {k: v for k, v in (node.config or {}).items() if kind is None or k not in kind.bare_jq}
    if node.type == "CONDITION" and isinstance(config.get("options"), list):
        config["options"] = [
            {k: v for k, v in o.items() if k != "expression"} if isinstance(o, dict) else o
            for o in config["options"]
        ]
    return config


def _condition(config: dict[str, Any], pointer: str) -> list[Issue]:
    options = config.get("options")
    found: list[Issue] = []
    seen: set[str] = set()
    for index, option in enumerate(options if isinstance(options, list) else []):
        if not isinstance(option, dict):
            continue
        where = jp.join(pointer, "options", index)
        found += expression_issue(option.get("expression"), jp.join(where, "expression"))
        identifier = option.get("identifier")
        if isinstance(identifier, str):
            if identifier in seen:
                message = f"duplicate option identifier {identifier!r}"
                found.append(Issue(jp.join(where, "identifier"), message))
            seen.add(identifier)
    return found


def _transform(config: dict[str, Any], pointer: str) -> list[Issue]:
    return expression_issue(config.get("expression"), jp.join(pointer, "expression"))


def _event_trigger(config: dict[str, Any], pointer: str) -> list[Issue]:
    condition = config.get("condition")
    expressions = condition.get("expressions") if isinstance(condition, dict) else None
    return [issue for index, expression in enumerate(expressions if isinstance(expressions, list) else [])
            for issue in expression_issue(expression, jp.join(pointer, "condition", "expressions", index))]


def _self_serve_trigger(config: dict[str, Any], pointer: str) -> list[Issue]:
    return user_inputs_issues(config.get("userInputs"), jp.join(pointer, "userInputs"))


def _inline_node(config: dict[str, Any], pointer: str) -> list[Issue]:
    """A FOREACH's inline node: its config against its type's schema, then that type's own rules."""
    found = config_issues(config, pointer)
    check = _TYPE_CHECKS.get(str(config.get("type")))
    if check is not None:
        reported = {i.pointer for i in found}
        found += [i for i in check(config, pointer) if i.pointer not in reported]
    return found


def _url(config: dict[str, Any], pointer: str) -> list[Issue]:
    """WEBHOOK and NOTIFY send to `url`: http(s) only (libs/core/egress.py)."""
    if "url" not in config:
        return []
    problem = url_problem(config["url"])
    return [Issue(jp.join(pointer, "url"), f"url {problem}")] if problem else []


def _foreach(config: dict[str, Any], pointer: str) -> list[Issue]:
    return foreach_issues(config, pointer, _inline_node)


_TYPE_CHECKS: dict[str, Callable[[dict[str, Any], str], list[Issue]]] = {
    "CONDITION": _condition,
    "TRANSFORM": _transform,
    "SELF_SERVE_TRIGGER": _self_serve_trigger,
    "DELAY": delay_issues,
    "FOREACH": _foreach,
    "EVENT_TRIGGER": _event_trigger,
    "SCHEDULE_TRIGGER": schedule_issues,
    "WEBHOOK": _url,
    "NOTIFY": _url,
    "AI": ai_issues,
}
