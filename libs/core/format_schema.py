"""The whole definition format as one JSON Schema (draft 2020-12), published for editors.

Node configs come from `node_kinds.NODE_TYPE_SCHEMAS` (one `if`/`then` per type, so an editor shows
the fields of the type being written); CONDITION also accepts the older `conditions` and later
`outlets` shapes that the engine normalises. The engine itself validates with `validation`, which
checks more (graph rules, jq syntax) than a schema can express.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from libs.core.definition import RetryPolicy
from libs.core.node_kinds import NODE_TYPE_SCHEMAS, known_node_types
from libs.core.node_types import DIALECT, IDENTIFIER

SCHEMA_ID = "https://stepline.dev/schemas/workflow.schema.json"

_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_RETRY_DESCRIPTIONS = {
    "maxAttempts": "Attempts in all, the first included (1 = no retry).",
    "initialIntervalSeconds": "Delay before the second attempt.",
    "backoffCoefficient": "Each further delay is the previous one times this.",
    "maxIntervalSeconds": "Upper bound of any delay.",
}


def workflow_json_schema() -> dict[str, Any]:
    """The schema (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_schema())


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "Stepline workflow definition",
        "description": "A Port-compatible workflow: nodes joined by connections. Strings in a node's "
        "`config` and `variables` may hold `{{ <jq> }}` templates.",
        "type": "object",
        "required": ["identifier", "nodes"],
        "properties": _workflow_properties(),
        "$defs": _definitions(),
    }


def _workflow_properties() -> dict[str, Any]:
    return {
        "identifier": {"$ref": "#/$defs/identifier", "description": "The workflow's identifier."},
        "title": _NULLABLE_TEXT,
        "icon": _NULLABLE_TEXT,
        "description": _NULLABLE_TEXT,
        "owner": _NULLABLE_TEXT,
        "category": _NULLABLE_TEXT,
        "tags": {"type": "array", "items": {"type": "string"}},
        "allowAnyoneToViewRuns": {"type": "boolean", "default": True},
        "notificationUrl": {
            "type": ["string", "null"],
            "description": "Stepline extension: each run's `run.started` and `run.completed` events "
                           "(CloudEvents, docs/events.md) are POSTed here; node events are not.",
        },
        "concurrencyLimit": {
            "type": ["integer", "null"], "minimum": 1, "maximum": 100_000,
            "description": "Stepline extension: at most this many runs in progress at once; later runs "
            "queue (status QUEUED) until a slot frees, first in first out.",
        },
        "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        "connections": {"type": "array", "items": {"$ref": "#/$defs/connection"}, "default": []},
    }


def _definitions() -> dict[str, Any]:
    configs = {f"config-{name}": _embedded(schema) for name, schema in NODE_TYPE_SCHEMAS.items()}
    configs["config-CONDITION"] = {
        "title": "CONDITION config",
        "anyOf": [_embedded(NODE_TYPE_SCHEMAS["CONDITION"]), _CONDITION_OUTLETS, _CONDITION_CONDITIONS],
    }
    return {
        "identifier": {
            **IDENTIFIER,
            "description": "At most 60 characters: letters, digits and @ _ : -",
        },
        "node": _node(),
        "nodeConfig": _node_config(),
        "connection": _connection(),
        "retry": _retry(),
        **configs,
    }


def _embedded(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$schema"}


def _node() -> dict[str, Any]:
    return {"title": "Node", "type": "object", "required": ["identifier", "config"], "additionalProperties": False,
            "properties": _node_properties()}


def _node_properties() -> dict[str, Any]:
    return {
        "identifier": {"$ref": "#/$defs/identifier", "description": "Unique among the nodes."},
        "title": _NULLABLE_TEXT,
        "icon": _NULLABLE_TEXT,
        "description": _NULLABLE_TEXT,
        "config": {"$ref": "#/$defs/nodeConfig"},
        "variables": {
            "type": "object",
            "description": "Evaluated after the node runs, against its raw output (e.g. "
            "`{{ .response.data.id }}`); the result replaces the node's output.",
        },
        "retry": {"$ref": "#/$defs/retry"},
        "timeoutSeconds": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": 31_536_000,
            "description": "Stepline extension: fail an attempt that runs longer.",
        },
        "onFailure": {
            "enum": ["terminate", "continue", None],
            "default": "terminate",
            "description": "`continue` runs the successors of a failed node (also accepted inside `config`, "
            "where Port puts it; the node's own field wins).",
        },
        "links": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Port's display field."},
        "verbose": {"type": ["boolean", "null"], "description": "Port's display field."},
        "category": _NULLABLE_TEXT,
    }


def _node_config() -> dict[str, Any]:
    return {
        "title": "Node config",
        "description": "Keyed by `type`.",
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": known_node_types()}},
        "allOf": [
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/config-{name}"},
            }
            for name in known_node_types()
        ],
    }


def _connection() -> dict[str, Any]:
    identifier = {"$ref": "#/$defs/identifier"}
    return {
        "title": "Connection",
        "type": "object",
        "required": ["sourceIdentifier", "targetIdentifier"],
        "additionalProperties": False,
        "properties": {
            "identifier": {**identifier, "description": "Generated when omitted."},
            "description": _NULLABLE_TEXT,
            "sourceIdentifier": identifier,
            "targetIdentifier": identifier,
            "sourceOptionIdentifier": {
                **identifier,
                "description": "On a connection leaving a CONDITION: the option that takes it.",
            },
            "sourceOutletIdentifier": {
                **identifier,
                "description": "The later Port name of sourceOptionIdentifier.",
            },
            "fallback": {
                "type": "boolean",
                "default": False,
                "description": "On a connection leaving a CONDITION: taken when no option is true.",
            },
            "onFailure": {
                "type": "boolean",
                "default": False,
                "description": "Stepline extension: an error branch, taken only when the source fails.",
            },
        },
    }


def _retry() -> dict[str, Any]:
    schema = RetryPolicy.model_json_schema()
    for name, prop in schema["properties"].items():
        prop.pop("title", None)
        prop["description"] = _RETRY_DESCRIPTIONS.get(name, "")
    return {**schema, "title": "Retry policy"}


_OPTION_ITEMS = NODE_TYPE_SCHEMAS["CONDITION"]["properties"]["options"]["items"]

_CONDITION_OUTLETS: dict[str, Any] = {
    "title": "CONDITION config (later Port shape)",
    "type": "object",
    "required": ["type", "outlets"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "CONDITION"},
        "outlets": {"type": "array", "minItems": 1, "items": _OPTION_ITEMS},
    },
}

_CONDITION_CONDITIONS: dict[str, Any] = {
    "title": "CONDITION config (older Port shape)",
    "type": "object",
    "required": ["type", "conditions"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "CONDITION"},
        "conditions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["expression", "connectionIdentifier"],
                "properties": {
                    "identifier": {"$ref": "#/$defs/identifier"},
                    "title": _NULLABLE_TEXT,
                    "expression": {"type": "string", "minLength": 1},
                    "connectionIdentifier": {"type": "string"},
                },
            },
        },
        "defaultConnectionIdentifier": {"type": "string"},
    },
}
