"""The run context Port's templates read, built from Stepline's run record (pure).

Port's templates read `.trigger.by.user.email`, `.trigger.at` (ISO 8601), `.workflowRun`
(`identifier`, `trigger`, `workflow`), `.workflow` (`identifier`, `version`) and, for a run an entity
event started, `.entity` (the entity after the change, or before it when it was deleted). Stepline's own
`.run` (`id`, `workflow`, `version`) stays as it was.
"""

from __future__ import annotations

from typing import Any

from libs.core.instants import to_iso


def trigger_view(trigger: dict[str, Any]) -> dict[str, Any]:
    """`trigger` with `by` as Port's object `{user: {email}}` (also when no caller is known) and `at`
    as ISO 8601."""
    by = trigger.get("by")
    at = trigger.get("at")
    return {**trigger, "by": {"user": {"email": by}} if not isinstance(by, dict) else by,
            "at": to_iso(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else at}


def event_entity(trigger: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any] | None:
    """The entity of an EVENT-started run: its event's `diff.after`, or `diff.before` on a delete."""
    if trigger.get("type") != "EVENT":
        return None
    event = outputs.get(str(trigger.get("node")))
    diff = event.get("diff") if isinstance(event, dict) else None
    if not isinstance(diff, dict):
        return None
    entity = diff.get("after") if isinstance(diff.get("after"), dict) else diff.get("before")
    return entity if isinstance(entity, dict) else None


def port_views(trigger: dict[str, Any], outputs: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """`.trigger`, `.workflow`, `.workflowRun` and (event runs) `.entity` as Port's templates see them."""
    shown = trigger_view(trigger)
    workflow = {"identifier": run.get("workflow"), "version": run.get("version")}
    views: dict[str, Any] = {"trigger": shown, "workflow": workflow,
                             "workflowRun": {"identifier": run.get("id"), "trigger": shown, "workflow": workflow}}
    entity = event_entity(trigger, outputs)
    if entity is not None:
        views["entity"] = entity
    return views
