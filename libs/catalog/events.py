"""Catalog events: Port's `{id, action, diff: {before, after}, context: {blueprintIdentifier,
entityIdentifier}, timestamp}` as a `v1.CatalogEvent` on the catalog-events topic, keyed by entity.

They come from UPSERT_ENTITY (with an id derived from the node run, so a re-executed attempt
announces the same change under the same id), from `POST /v1/catalog/events`, and from other
systems writing Port's JSON to the topic directly (which the Kafka bus hands over as a
`v1.ExternalMessage`).
"""

from __future__ import annotations

import uuid
from typing import Any

from libs.access.principal import DEFAULT_WORKSPACE
from libs.bus.ports import Bus
from libs.contracts import topics, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core.catalog import Action, entity_key, event_issues
from libs.core.errors import Issue, SteplineError
from libs.core.run import derived_id


class InvalidCatalogEventError(SteplineError):
    """A catalog event not in Port's shape; `issues` point into it. Not retryable."""

    code = "invalid_catalog_event"

    def __init__(self, issues: list[Issue]) -> None:
        first = issues[0] if issues else Issue("", "invalid")
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"invalid catalog event: {first.message}{more}")
        self.issues = issues


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def node_run_event_id(node_run_key: str) -> str:
    """The id of the change a node run made: the same for every execution of that attempt."""
    return derived_id("evt_", f"upsert:{node_run_key}")


def parse_event(raw: Any, *, timestamp: str, strict: bool = True) -> v1.CatalogEvent:
    """A Port catalog event → `v1.CatalogEvent`, with an `id` (generated if absent) and a `timestamp`
    (`timestamp` if absent). InvalidCatalogEventError if it is not one; not `strict`, unknown fields
    are ignored."""
    found = event_issues(raw, strict=strict)
    if found:
        raise InvalidCatalogEventError(found)
    context = raw["context"]
    diff = raw.get("diff") or {}
    return v1.CatalogEvent(
        run_id=entity_key(context["blueprintIdentifier"], context["entityIdentifier"]),
        id=raw.get("id") or new_event_id(), action=raw["action"],
        diff=v1.CatalogDiff(before=diff.get("before"), after=diff.get("after")),
        context=v1.CatalogContext(blueprintIdentifier=context["blueprintIdentifier"],
                                  entityIdentifier=context["entityIdentifier"]),
        timestamp=raw.get("timestamp") or timestamp, workspace=raw.get("workspace") or DEFAULT_WORKSPACE)


def change_event(event_id: str, action: Action, before: dict[str, Any] | None, after: dict[str, Any] | None,
                 *, blueprint: str, identifier: str, timestamp: str,
                 workspace: str = DEFAULT_WORKSPACE) -> v1.CatalogEvent:
    return v1.CatalogEvent(run_id=entity_key(blueprint, identifier), id=event_id, action=action,
                           diff=v1.CatalogDiff(before=before, after=after),
                           context=v1.CatalogContext(blueprintIdentifier=blueprint, entityIdentifier=identifier),
                           timestamp=timestamp, workspace=workspace)


async def publish_event(bus: Bus, event: v1.CatalogEvent, *, source: str) -> None:
    """Publish on the catalog-events topic, keyed by the entity (BusError if the bus refuses it)."""
    await bus.publish(topics.CATALOG_EVENTS, wrap(event, source=source))


def event_of(envelope: Envelope, *, timestamp: str) -> v1.CatalogEvent | None:
    """The catalog event an envelope on the catalog-events topic carries: a `v1.CatalogEvent`, or a
    `v1.ExternalMessage` whose value is Port's event JSON (unknown fields ignored; without an `id`
    it gets one derived from the record's position, the same on every delivery). None for other
    message types; InvalidCatalogEventError for an external value that is not a catalog event."""
    if envelope.type not in (v1.CatalogEvent.TYPE, v1.ExternalMessage.TYPE):
        return None
    message = envelope.message()
    if isinstance(message, v1.CatalogEvent):
        return message
    assert isinstance(message, v1.ExternalMessage)
    value = message.value
    if isinstance(value, dict) and not value.get("id"):
        value = {**value, "id": derived_id("evt_", f"external:{message.message_id}")}
    return parse_event(value, timestamp=timestamp, strict=False)
