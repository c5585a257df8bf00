"""Catalog events: Port's `{id, action, diff: {before, after}, context: {blueprintIdentifier,
entityIdentifier}, timestamp}` as a `v1.CatalogEvent` on the catalog-events topic, keyed by entity.

They come from UPSERT_ENTITY (with an id derived from the node run, so a re-executed attempt
announces the same change under the same id, and `stored` set: the catalog holds it already), from
`POST /v1/catalog/events`, and from other systems writing Port's JSON to the topic directly, plain or
as a CloudEvent in structured or binary mode (libs/contracts/cloudevents.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from libs.contracts import cloudevents, v1
from libs.contracts.envelope import Envelope
from libs.core.catalog import Action, entity_key, event_issues
from libs.core.errors import Issue, SteplineError
from libs.core.run import derived_id
from libs.core.workspaces import DEFAULT_WORKSPACE


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
    """The event of a change the catalog holds already (`stored`)."""
    return v1.CatalogEvent(run_id=entity_key(blueprint, identifier), id=event_id, action=action,
                           diff=v1.CatalogDiff(before=before, after=after),
                           context=v1.CatalogContext(blueprintIdentifier=blueprint, entityIdentifier=identifier),
                           timestamp=timestamp, workspace=workspace, stored=True)


def event_of(envelope: Envelope, *, timestamp: str) -> v1.CatalogEvent | None:
    """The catalog event an envelope on the catalog-events topic carries: a `v1.CatalogEvent`, or a
    message from outside Stepline (libs/contracts/cloudevents.py) whose payload is Port's event JSON
    (unknown fields ignored). A CloudEvent's `id` is the event's id; plain JSON without an `id` gets one
    derived from the record's position, the same on every delivery. None for Stepline's other message
    types; InvalidCatalogEventError for an outside payload that is not a catalog event."""
    if envelope.type == v1.CatalogEvent.TYPE:
        return v1.CatalogEvent.model_validate(envelope.data)
    if envelope.type in v1.MESSAGE_TYPES and envelope.type != v1.ExternalMessage.TYPE:
        return None
    message = cloudevents.incoming(envelope)
    value = message.payload
    if isinstance(value, dict) and (message.is_cloud_event or not value.get("id")):
        value = {**value, "id": _outside_id(message)}
    workspace = (message.attributes or {}).get("workspace")
    if isinstance(value, dict) and isinstance(workspace, str) and "workspace" not in value:
        value = {**value, "workspace": workspace}  # the CloudEvents extension attribute
    event = parse_event(value, timestamp=timestamp, strict=False)
    return event.model_copy(update={"attributes": message.attributes}) if message.is_cloud_event else event


def _outside_id(message: cloudevents.Incoming) -> str:
    if message.is_cloud_event:
        return message.id
    return derived_id("evt_", f"external:{message.id}")
