"""The software catalog's vocabulary: blueprint and entity identifiers, entity change actions, and the
EVENT_TRIGGER event types that select them (Port's names). Pure; the catalog itself is libs/catalog."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final, Literal

from jsonschema.protocols import Validator

from libs.core.errors import Issue
from libs.core.schema_dialect import issues, make_validator

BLUEPRINT_PATTERN: Final = r"^[A-Za-z0-9@_=-]+$"
"""Port's blueprint identifier rule (no `/`, so `{blueprint}/{identifier}` keys are unambiguous)."""
ENTITY_IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9@_.+:/=-]+$"
"""Port's entity identifier rule."""
MAX_BLUEPRINT_LENGTH: Final = 100
MAX_ENTITY_IDENTIFIER_LENGTH: Final = 255

Action = Literal["CREATE", "UPDATE", "DELETE"]
ACTIONS: Final[tuple[Action, ...]] = ("CREATE", "UPDATE", "DELETE")

EVENT_TYPE_ACTIONS: Final[dict[str, frozenset[str]]] = {
    "ENTITY_CREATED": frozenset({"CREATE"}),
    "ENTITY_UPDATED": frozenset({"UPDATE"}),
    "ENTITY_DELETED": frozenset({"DELETE"}),
    "ANY_ENTITY_CHANGE": frozenset(ACTIONS),
    "TIMER_EXPIRED": frozenset(),
}
"""EVENT_TRIGGER `event.type` → the catalog event actions it fires on. `TIMER_EXPIRED` fires on none:
it fires when the date-time in an entity's `propertyIdentifier` passes (services/trigger/entity_timers.py)."""
TIMER_EXPIRED: Final = "TIMER_EXPIRED"

_BLUEPRINT = re.compile(BLUEPRINT_PATTERN)
_ENTITY = re.compile(ENTITY_IDENTIFIER_PATTERN)


def is_blueprint_identifier(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_BLUEPRINT_LENGTH and _BLUEPRINT.fullmatch(value) is not None


def is_entity_identifier(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= MAX_ENTITY_IDENTIFIER_LENGTH
            and _ENTITY.fullmatch(value) is not None)


def entity_key(blueprint: str, identifier: str) -> str:
    """The store key and bus partition key of an entity."""
    return f"{blueprint}/{identifier}"


def _identifier(pattern: str, max_length: int, what: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": pattern,
            "description": what}


BLUEPRINT_IDENTIFIER: Final[dict[str, Any]] = _identifier(
    BLUEPRINT_PATTERN, MAX_BLUEPRINT_LENGTH, "A blueprint identifier: letters, digits and @ _ = - only.")
ENTITY_IDENTIFIER: Final[dict[str, Any]] = _identifier(
    ENTITY_IDENTIFIER_PATTERN, MAX_ENTITY_IDENTIFIER_LENGTH,
    "An entity identifier: letters, digits and @ _ . + : / = - only.")


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _entity_required(side: str, action: str) -> dict[str, Any]:
    return {
        "if": {"properties": {"action": {"const": action}}, "required": ["action"]},
        "then": {"required": ["diff"], "properties": {"diff": {
            "required": [side],
            "properties": {side: {"type": "object",
                                  "errorMessage": f"must be the entity (an object) for {_article(action)} {action} event"}},
        }}},
    }


CATALOG_EVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A catalog event in Port's shape.",
    "required": ["action", "context"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 255},
        "action": {"enum": list(ACTIONS)},
        "diff": {
            "type": "object",
            "properties": {"before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]}},
            "additionalProperties": False,
        },
        "context": {
            "type": "object",
            "required": ["blueprintIdentifier", "entityIdentifier"],
            "properties": {"blueprintIdentifier": BLUEPRINT_IDENTIFIER, "entityIdentifier": ENTITY_IDENTIFIER},
        },
        "timestamp": {"type": "string", "minLength": 1, "maxLength": 64},
        "workspace": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,39}$",
                      "description": "The Stepline workspace the event belongs to (default `default`)."},
    },
    "additionalProperties": False,
    "allOf": [_entity_required("after", "CREATE"), _entity_required("before", "UPDATE"),
              _entity_required("after", "UPDATE"), _entity_required("before", "DELETE")],
}
"""`diff.before` is the entity before the change (absent for CREATE), `diff.after` after it (absent
for DELETE)."""


@lru_cache(maxsize=1)
def _event_validator() -> Validator:
    return make_validator(CATALOG_EVENT_SCHEMA)


def event_issues(raw: Any, *, strict: bool = True) -> list[Issue]:
    """Problems of a catalog event in Port's shape, with pointers from its root. Not `strict`: fields
    Stepline does not know are ignored (events published by other systems may carry more)."""
    if not strict and isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k in CATALOG_EVENT_SCHEMA["properties"]}
    found = issues(_event_validator(), raw, "", "event")
    context = raw.get("context") if isinstance(raw, dict) else None
    if not found and isinstance(context, dict):
        # `pattern` is searched with `$`, which also matches before a final newline
        if not is_blueprint_identifier(context["blueprintIdentifier"]):
            found.append(Issue("/context/blueprintIdentifier", "event.context.blueprintIdentifier is not "
                               "a blueprint identifier"))
        if not is_entity_identifier(context["entityIdentifier"]):
            found.append(Issue("/context/entityIdentifier", "event.context.entityIdentifier is not "
                               "an entity identifier"))
    return found
