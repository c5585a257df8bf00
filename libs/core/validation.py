"""Turning submitted definition JSON into a `Workflow`, or into the complete list of its problems.

Every issue carries an RFC 6901 pointer into the document AS SUBMITTED: checks run on the normalised
document (`definition.normalize`) and their pointers are mapped back, so a problem in an older
`conditions` or later `outlets` condition points at that field, not at the `options` it became.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from libs.core import pointer as jp
from libs.core.definition import Workflow, normalize
from libs.core.egress import url_problem
from libs.core.errors import DefinitionError, Issue
from libs.core.graph_rules import GRAPH_RULES, identifier_problem
from libs.core.node_rules import node_issues
from libs.core.raw_view import edge_views, node_views
from libs.core.schema_dialect import label

_TYPE_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not an allowed field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "float_type": "must be a number",
    "int_type": "must be an integer",
}


def parse_workflow(raw: Any) -> Workflow:
    """The validated, frozen workflow; `DefinitionError` listing every problem otherwise."""
    found, workflow = _check(raw)
    if found or workflow is None:
        first = found[0] if found else Issue("", "invalid definition")
        summary = f"invalid workflow definition ({len(found)} problem{'s' if len(found) != 1 else ''})"
        raise DefinitionError(f"{summary}: {first.pointer or '/'}: {first.message}", found)
    return workflow


def validate_definition(raw: Any) -> list[Issue]:
    """Every problem of a submitted definition (empty when it is valid)."""
    return _check(raw)[0]


def _check(raw: Any) -> tuple[list[Issue], Workflow | None]:
    if not isinstance(raw, dict):
        return [Issue("", "a workflow definition must be a JSON object")], None
    doc = normalize(raw)
    workflow, found = _structure(doc)
    found += _workflow_identifier(doc)
    if isinstance(doc.get("nodes"), list):  # else nothing more to check than what the structure says
        nodes, edges = node_views(doc), edge_views(doc)
        for rule in GRAPH_RULES:
            found += rule(nodes, edges)
        for node in nodes:
            found += node_issues(node)
    found += _notification_url(doc)
    found = [Issue(original_pointer(i.pointer, raw), i.message) for i in found]
    found += legacy_condition_issues(raw, doc)
    return list(dict.fromkeys(found)), workflow


def _structure(doc: dict[str, Any]) -> tuple[Workflow | None, list[Issue]]:
    """The pydantic model's own checks (types, required fields, retry/timeout/onFailure ranges)."""
    try:
        return Workflow.model_validate(doc), []
    except ValidationError as exc:
        return None, [_pydantic_issue(e) for e in exc.errors(include_url=False)]


def _pydantic_issue(error: ErrorDetails) -> Issue:
    path = [p for p in error["loc"] if isinstance(p, (str, int))]
    message = _TYPE_MESSAGES.get(error["type"]) or error["msg"].replace("Input should be", "must be")
    return Issue(jp.from_path(path), f"{label('', path) or 'definition'} {message}")


def _notification_url(doc: dict[str, Any]) -> list[Issue]:
    url = doc.get("notificationUrl")
    problem = url_problem(url) if isinstance(url, str) else None
    return [Issue("/notificationUrl", f"notificationUrl {problem}")] if problem else []


def _workflow_identifier(doc: dict[str, Any]) -> list[Issue]:
    identifier = doc.get("identifier")
    problem = identifier_problem(identifier) if isinstance(identifier, str) else None
    return [Issue("/identifier", f"workflow identifier {identifier!r} {problem}")] if problem else []


def original_pointer(pointer: str, raw: dict[str, Any]) -> str:
    """Map a pointer into the normalised document onto the submitted one: `options` back to
    `outlets`/`conditions`, `sourceOptionIdentifier` back to `sourceOutletIdentifier`, and a field
    that normalisation derived (a legacy fallback, a generated identifier) to its connection."""
    parts = jp.tokens(pointer)
    if len(parts) >= 4 and parts[0] == "nodes" and parts[2:4] == ["config", "options"]:
        config = _at(raw, parts[:3])
        if isinstance(config, dict) and "options" not in config:
            parts[3] = next((k for k in ("outlets", "conditions") if k in config), "options")
    elif len(parts) >= 3 and parts[0] == "connections":
        conn = _at(raw, parts[:2])
        if isinstance(conn, dict) and parts[2] not in conn:
            if parts[2] == "sourceOptionIdentifier" and "sourceOutletIdentifier" in conn:
                parts[2] = "sourceOutletIdentifier"
            elif parts[2] in ("sourceOptionIdentifier", "fallback", "identifier"):
                parts = parts[:2]
    return jp.from_path(parts)


def _at(document: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def legacy_condition_issues(raw: dict[str, Any], doc: dict[str, Any]) -> list[Issue]:
    """The older condition shape names connections by identifier: each must exist and leave it."""
    sources = {e.identifier: e.source for e in edge_views(doc) if e.identifier is not None}
    nodes = raw.get("nodes")
    found: list[Issue] = []
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        config = node.get("config") if isinstance(node, dict) else None
        if not isinstance(config, dict) or config.get("type") != "CONDITION":
            continue
        if "options" in config or "outlets" in config or not isinstance(config.get("conditions"), list):
            continue
        base, node_id = jp.join("/nodes", index, "config"), node.get("identifier")
        for k, cond in enumerate(config["conditions"]):
            ref = cond.get("connectionIdentifier") if isinstance(cond, dict) else None
            where = jp.join(base, "conditions", k, "connectionIdentifier")
            found += _connection_reference(ref, where, node_id, sources)
        if "defaultConnectionIdentifier" in config:
            where = jp.join(base, "defaultConnectionIdentifier")
            found += _connection_reference(config["defaultConnectionIdentifier"], where, node_id, sources)
    return found


def _connection_reference(ref: Any, where: str, node_id: Any, sources: dict[str, str | None]) -> list[Issue]:
    if not isinstance(ref, str):
        return [Issue(where, "must be the identifier of a connection leaving this node")]
    if ref not in sources:
        return [Issue(where, f"there is no connection {ref!r}")]
    if sources[ref] != node_id:
        return [Issue(where, f"connection {ref!r} does not leave node {node_id!r}")]
    return []
