"""Entities in Port's shape, and what an upsert does to one (pure).

An entity is `{identifier, blueprint, title, icon, team, properties, relations, createdAt, updatedAt}`.
An upsert creates it, or replaces only the fields it gives: `title`, `icon` and `team` are replaced,
`properties` and `relations` are merged key by key. A catalog event from outside (`mirrored`) replaces
every field its `diff.after` gives, `properties` and `relations` whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_STAMPS = ("createdAt", "updatedAt")


@dataclass(frozen=True)
class EntityPatch:
    """What an upsert sets. `fields` holds the replaced top-level fields that were given."""

    identifier: str
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    relations: dict[str, Any] = field(default_factory=dict)


def iso_time(epoch: float) -> str:
    """`1700000000.5` → `"2023-11-14T22:13:20.500Z"` (the API's time format)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_entity(blueprint: str, identifier: str, now: str) -> dict[str, Any]:
    return {"identifier": identifier, "blueprint": blueprint, "title": None, "icon": None, "team": [],
            "properties": {}, "relations": {}, "createdAt": now, "updatedAt": now}


def merged(before: dict[str, Any] | None, blueprint: str, patch: EntityPatch, now: str) -> dict[str, Any]:
    """The entity after `patch` (a new one when `before` is None)."""
    entity = dict(before) if before is not None else new_entity(blueprint, patch.identifier, now)
    entity.update(patch.fields)
    entity["properties"] = {**(entity.get("properties") or {}), **patch.properties}
    entity["relations"] = {**(entity.get("relations") or {}), **patch.relations}
    entity["updatedAt"] = now
    return entity


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for their timestamps (an upsert that changes nothing is not a change)."""
    return {k: v for k, v in a.items() if k not in _STAMPS} == {k: v for k, v in b.items() if k not in _STAMPS}


def mirrored(stored: dict[str, Any] | None, blueprint: str, identifier: str, after: dict[str, Any],
             now: str) -> dict[str, Any]:
    """The entity an upstream event's `diff.after` describes, in the catalog's shape: its fields replace
    the stored ones (Port's `after` is the whole entity), the context names it, `createdAt` stays."""
    entity = new_entity(blueprint, identifier, now) if stored is None else dict(stored)
    for name in ("title", "icon"):
        if name in after:
            entity[name] = after[name]
    team = after.get("team", entity["team"])
    entity["team"] = [team] if isinstance(team, str) else team if isinstance(team, list) else []
    for name in ("properties", "relations"):
        value = after.get(name, entity[name])
        entity[name] = value if isinstance(value, dict) else {}
    entity.update(identifier=identifier, blueprint=blueprint, updatedAt=now)
    return entity
