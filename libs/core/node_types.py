"""The JSON Schema (draft 2020-12, Stepline dialect) of each node type's `config`.

`NODE_TYPE_SCHEMAS` is the registry: a new node type is one entry. Port's own types allow fields we do
not implement (Port keeps adding them); Stepline's own types are closed. Condition configs are checked
after `definition.normalize` has folded the older `conditions` and later `outlets` shapes into `options`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema.protocols import Validator

from libs.core import pointer as jp
from libs.core.definition import IDENTIFIER_PATTERN, MAX_IDENTIFIER_LENGTH
from libs.core.errors import Issue
from libs.core.schema_dialect import issues, make_validator

DIALECT = "https://json-schema.org/draft/2020-12/schema"

IDENTIFIER: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDENTIFIER_LENGTH,
    "pattern": IDENTIFIER_PATTERN,
}
JQ_QUERY: dict[str, Any] = {
    "type": "object",
    "required": ["jqQuery"],
    "properties": {"jqQuery": {"type": "string"}},
}
_BUTTON_TEXT: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 15,
    "pattern": r"^\S(.*\S)?$",
    "description": "1–15 characters, no leading or trailing whitespace.",
    "errorMessage": "must be 1–15 characters with no leading or trailing whitespace",
}
_VISIBLE: dict[str, Any] = {"anyOf": [{"type": "boolean"}, JQ_QUERY]}


def _config(node_type: str, description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "title": f"{node_type} config",
        "description": description,
        "type": "object",
        "required": ["type", *extra.pop("required", [])],
        "properties": {"type": {"const": node_type}, **properties},
        **extra,
    }


_INPUT = {
    "type": "object",
    "description": "One input, as a JSON Schema with Port's extras (format entity/user/team..., "
    "blueprint, dataset, visible, dependsOn...).",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["string", "number", "integer", "boolean", "array", "object"]},
        "title": {"type": "string", "maxLength": 140},
        "description": {"type": "string", "maxLength": 1000},
        "visible": _VISIBLE,
        "dependsOn": {"type": "array", "items": {"type": "string"}},
    },
}

USER_INPUTS: dict[str, Any] = {
    "type": "object",
    "description": "The form of a self-service trigger: the inputs a run takes.",
    "required": ["properties"],
    "properties": {
        "properties": {"type": "object", "additionalProperties": _INPUT},
        "required": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, JQ_QUERY],
            "errorMessage": 'must be a list of input names or {"jqQuery": "..."}',
        },
        "order": {"type": "array", "items": {"type": "string"}},
        "titles": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 140},
                    "description": {"type": "string", "maxLength": 1000},
                    "visible": _VISIBLE,
                },
            },
        },
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 25},
                    "order": {"type": "array", "items": {"type": "string"}},
                    "visible": _VISIBLE,
                },
            },
        },
    },
}

SELF_SERVE_TRIGGER = _config(
    "SELF_SERVE_TRIGGER",
    "Started by a person or an API call with inputs; its output is the validated inputs.",
    {
        "userInputs": USER_INPUTS,
        "actionCardButtonText": _BUTTON_TEXT,
        "executeActionButtonText": _BUTTON_TEXT,
    },
)

WEBHOOK = _config(
    "WEBHOOK",
    "An HTTP request; output `{response: {status, data}}`. With `synchronized: false` the node waits "
    "for an external completion (PATCH of the node run).",
    {
        "url": {"type": "string", "minLength": 1, "description": "The URL; may hold templates."},
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "POST"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"description": "Any JSON; strings may hold templates."},
        "synchronized": {"type": "boolean", "default": True},
        "agent": {"type": "boolean", "default": False},
    },
    required=["url"],
)

_OPTION = {
    "type": "object",
    "required": ["identifier", "expression"],
    "properties": {
        "identifier": IDENTIFIER,
        "title": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "expression": {"type": "string", "minLength": 1, "description": "jq, without {{ }}."},
        "statusLabel": {"type": ["string", "null"]},
        "workflowStatusLabel": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}

CONDITION = _config(
    "CONDITION",
    "Options are tried in order; the first whose jq expression is true picks the connections naming "
    "it (`sourceOptionIdentifier`); if none is, the `fallback: true` connection is taken.",
    {"options": {"type": "array", "minItems": 1, "items": _OPTION}},
    required=["options"],
    additionalProperties=False,
)

TRANSFORM = _config(
    "TRANSFORM",
    "Stepline extension: computes a value. `expression` is jq (without {{ }}) over the template "
    "context; `output` is any JSON whose strings are rendered as templates. Exactly one of the two.",
    {"expression": {"type": "string", "minLength": 1}, "output": {}},
    additionalProperties=False,
    allOf=[
        {
            "oneOf": [{"required": ["expression"]}, {"required": ["output"]}],
            "errorMessage": "needs exactly one of `expression` and `output`",
        }
    ],
)

NOOP = _config("NOOP", "Does nothing. Useful to join branches.", {}, additionalProperties=False)

NODE_TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "SELF_SERVE_TRIGGER": SELF_SERVE_TRIGGER,
    "WEBHOOK": WEBHOOK,
    "CONDITION": CONDITION,
    "TRANSFORM": TRANSFORM,
    "NOOP": NOOP,
}


def known_node_types() -> list[str]:
    return sorted(NODE_TYPE_SCHEMAS)


@lru_cache(maxsize=None)
def config_validator(node_type: str) -> Validator:
    """The compiled validator of a registered type (KeyError for an unknown one)."""
    return make_validator(NODE_TYPE_SCHEMAS[node_type])


def config_issues(config: Any, pointer: str = "") -> list[Issue]:
    """Problems of one node's `config` (after normalisation), with pointers under `pointer`."""
    if not isinstance(config, dict):
        return [Issue(pointer, "config must be an object")]
    node_type = config.get("type")
    if not isinstance(node_type, str) or node_type not in NODE_TYPE_SCHEMAS:
        known = ", ".join(known_node_types())
        what = "config.type is required" if node_type is None else f"unknown node type {node_type!r}"
        return [Issue(jp.join(pointer, "type"), f"{what}; known: {known}")]
    return issues(config_validator(node_type), config, pointer, "config")
