"""UPSERT_ENTITY: create a catalog entity or update only the fields given, then announce the change
on the catalog-events topic. Output `{response: {data: <the entity>}}` (`.response.data.identifier`).

Idempotent per node run: the change is recorded under the node run key before it is announced, and
the event id and a generated identifier are derived from that key, so a re-executed attempt
announces the same change under the same id (which EVENT_TRIGGER de-duplicates on) and creates no
second entity. A later attempt re-announces what earlier attempts recorded, in case their
announcement failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from libs.access.secret_scope import current_workspace
from libs.bus.publisher import Publisher
from libs.catalog.entities import EntityPatch, iso_time
from libs.catalog.events import change_event, node_run_event_id
from libs.catalog.store import Catalog
from libs.contracts import v1
from libs.core.catalog import is_blueprint_identifier, is_entity_identifier
from libs.core.errors import ActionError, SteplineError
from libs.core.run import derived_id, node_run_key
from libs.store.ports import EntryStore
from services.executor.actions.base import ActionInput, ActionResult


class UpsertEntityAction:
    def __init__(self, store: EntryStore, publisher: Publisher, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock

    @property
    def catalog(self) -> Catalog:
        """The catalog of the workspace of the run this attempt belongs to."""
        return Catalog(self.store, self.clock, workspace=current_workspace())

    async def execute(self, data: ActionInput) -> ActionResult:
        blueprint, patch = entity_patch(data.config, derived_id("e_", data.node_run_key))
        try:
            await self._announce_earlier_attempts(data)
            recorded = await self.catalog.recorded_change(data.node_run_key)
            if recorded is None:
                recorded = await self._apply(data.node_run_key, blueprint, patch)
            await self._announce(recorded)
        except ActionError:
            raise
        except SteplineError as exc:
            raise ActionError(f"catalog unavailable: {exc.message}", retryable=exc.retryable) from None
        return ActionResult(output={"response": {"data": recorded["entity"]}})

    async def _apply(self, token: str, blueprint: str, patch: EntityPatch) -> dict[str, Any]:
        change = await self.catalog.upsert(blueprint, patch)
        event = None
        if change.action is not None:
            event = change_event(node_run_event_id(token), change.action, change.before, change.after,
                                 blueprint=blueprint, identifier=patch.identifier,
                                 timestamp=iso_time(self.clock()), workspace=current_workspace())
        return await self.catalog.record_change(token, {
            "entity": change.after, "event": event.model_dump(mode="json") if event is not None else None})

    async def _announce(self, recorded: dict[str, Any]) -> None:
        if recorded.get("event") is not None:
            await self.publisher.publish(v1.CatalogEvent.model_validate(recorded["event"]))

    async def _announce_earlier_attempts(self, data: ActionInput) -> None:
        for attempt in range(1, data.attempt):
            earlier = await self.catalog.recorded_change(node_run_key(data.run_id, data.node.identifier, attempt))
            if earlier is not None:
                await self._announce(earlier)


def entity_patch(config: dict[str, Any], generated_identifier: str) -> tuple[str, EntityPatch]:
    """The blueprint and the patch a rendered config asks for; a non-retryable ActionError naming the
    field if the rendered values are not an entity's."""
    blueprint = config.get("blueprintIdentifier")
    if not is_blueprint_identifier(blueprint):
        raise _bad("blueprintIdentifier", "a blueprint identifier (letters, digits, @ _ = -)", blueprint)
    assert isinstance(blueprint, str)
    mapping = config.get("mapping")
    if not isinstance(mapping, dict):
        raise _bad("mapping", "an object", mapping)
    identifier = mapping.get("identifier")
    if identifier is None:
        identifier = generated_identifier
    elif not is_entity_identifier(identifier):
        raise _bad("mapping.identifier", "an entity identifier (letters, digits, @ _ . + : / = -)", identifier)
    properties = mapping.get("properties", {})  # Port: optional (a mapping may set only `team`)
    if not isinstance(properties, dict):
        raise _bad("mapping.properties", "an object", properties)
    relations = mapping.get("relations")
    if relations is not None and not isinstance(relations, dict):
        raise _bad("mapping.relations", "an object", relations)
    fields: dict[str, Any] = {}
    for name in ("title", "icon"):
        if name in mapping:
            value = mapping[name]
            if value is not None and not isinstance(value, str):
                raise _bad(f"mapping.{name}", "a string or null", value)
            fields[name] = value
    if "team" in mapping:
        fields["team"] = _team(mapping["team"])
    return blueprint, EntityPatch(identifier=str(identifier), fields=fields, properties=properties,
                                  relations=relations or {})


def _team(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _bad("mapping.team", "a team name or a list of them", value)


def _bad(field: str, wanted: str, got: Any) -> ActionError:
    shown = _kind(got)
    if "identifier" in wanted and isinstance(got, str) and got:
        shown = f"a string of {len(got)} characters that is not one"
    return ActionError(f"config.{field} must be {wanted} after rendering, got {shown}")


def _kind(value: Any) -> str:
    """The JSON type of a rendered value, never the value (it may hold a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return "an array" if isinstance(value, list) else "an object"
