"""The config schemas of the catalog's node types, UPSERT_ENTITY and EVENT_TRIGGER (Port's shapes),
registered in `node_kinds.KINDS`. Port's types: fields we do not implement are allowed."""

from __future__ import annotations

from typing import Any

from libs.core.catalog import (
    BLUEPRINT_IDENTIFIER,
    BLUEPRINT_PATTERN,
    ENTITY_IDENTIFIER_PATTERN,
    EVENT_TYPE_ACTIONS,
    MAX_BLUEPRINT_LENGTH,
    MAX_ENTITY_IDENTIFIER_LENGTH,
)
from libs.core.run_triggers import RUN_EVENT_SCHEMA, RUN_SOURCE

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TEMPLATE = {"type": "string", "pattern": r"\{\{"}


def _or_template(schema: dict[str, Any], message: str, description: str) -> dict[str, Any]:
    """`schema`, or a string holding a `{{ }}` template (checked again after rendering)."""
    return {"anyOf": [schema, _TEMPLATE], "errorMessage": message, "description": description}


UPSERT_ENTITY: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "UPSERT_ENTITY config",
    "description": "Creates a catalog entity, or updates only the given fields of an existing one "
    "(`properties` and `relations` key by key); output `{response: {data: <the entity>}}`. Announces "
    "the change as a catalog event (EVENT_TRIGGER).",
    "type": "object",
    "required": ["type", "blueprintIdentifier", "mapping"],
    "properties": {
        "type": {"const": "UPSERT_ENTITY"},
        "blueprintIdentifier": _or_template(
            {"type": "string", "minLength": 1, "maxLength": MAX_BLUEPRINT_LENGTH, "pattern": BLUEPRINT_PATTERN},
            "must be a blueprint identifier (letters, digits and @ _ = -) or a {{ template }}",
            "The entity's blueprint."),
        "mapping": {
            "type": "object",
            "properties": {
                "identifier": _or_template(
                    {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY_IDENTIFIER_LENGTH,
                     "pattern": ENTITY_IDENTIFIER_PATTERN},
                    "must be an entity identifier (letters, digits and @ _ . + : / = -) or a {{ template }}",
                    "The entity to create or update; generated (`e_…`) when omitted."),
                "title": {"type": ["string", "null"]},
                "icon": {"type": ["string", "null"]},
                "team": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                    "errorMessage": "must be a team name, a list of them, or null",
                    "description": "Replaces the entity's teams.",
                },
                "properties": _or_template(
                    {"type": "object"}, "must be an object (or a {{ template }} that renders to one)",
                    "Merged into the entity's properties key by key."),
                "relations": _or_template(
                    {"type": ["object", "null"]},
                    "must be an object (or a {{ template }} that renders to one)",
                    "Merged into the entity's relations key by key (values: an identifier, a list, or null)."),
            },
        },
    },
}

EVENT_TRIGGER: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "EVENT_TRIGGER config",
    "description": "Starts a run for every catalog event of `event.type` on the blueprint whose "
    "`condition` holds; the output is the event `{action, diff: {before, after}, context, id, timestamp}`. "
    "`TIMER_EXPIRED` fires once per entity and value when the date-time in its `propertyIdentifier` passes. "
    "With `event: {source: \"run\", workflow, events}` it starts a run when a run of that workflow completes "
    "(`run.completed`: SUCCESS, `run.failed`, `run.cancelled`); the output is that run "
    "`{type, workflow, runId, version, result, error, durationMs, inputs, outputs}`.",
    "type": "object",
    "required": ["type", "event"],
    "properties": {
        "type": {"const": "EVENT_TRIGGER"},
        "event": {
            "type": "object",
            "properties": {
                "source": {"enum": ["catalog", RUN_SOURCE], "default": "catalog",
                           "description": "`catalog` (catalog events of a blueprint) or `run` (completions "
                           "of another workflow's runs)."},
                "type": {"enum": list(EVENT_TYPE_ACTIONS)},
                "blueprintIdentifier": BLUEPRINT_IDENTIFIER,
                "propertyIdentifier": {
                    "type": "string", "minLength": 1,
                    "description": "TIMER_EXPIRED: the entity property (a date-time) whose passing fires the trigger.",
                },
                **RUN_EVENT_SCHEMA["properties"],
            },
            "if": {"properties": {"source": {"const": RUN_SOURCE}}, "required": ["source"]},
            "then": {"required": RUN_EVENT_SCHEMA["required"]},
            "else": {
                "required": ["type", "blueprintIdentifier"],
                "if": {"properties": {"type": {"const": "TIMER_EXPIRED"}}, "required": ["type"]},
                "then": {"required": ["propertyIdentifier"]},
            },
        },
        "condition": {
            "type": "object",
            "required": ["type", "expressions"],
            "properties": {
                "type": {"const": "JQ"},
                "expressions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                    "description": "jq expressions (without {{ }}) evaluated against the event.",
                },
                "combinator": {"enum": ["and", "or"], "default": "and",
                               "description": "`and`: every expression must be true; `or`: one must."},
            },
            "additionalProperties": False,
        },
    },
}
