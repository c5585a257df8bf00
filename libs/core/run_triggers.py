"""EVENT_TRIGGER on runs: `event: {source: "run", workflow, events}` starts a run when a run of
`workflow` (in the same workspace) completes with one of `events`. Pure: which trigger a completion
fires, and what the started run sees. The ingress is services/trigger/run_triggers.py.

| event | the watched run completed with result |
|---|---|
| `run.completed` | `SUCCESS` |
| `run.failed` | `FAILED` |
| `run.cancelled` | `CANCELLED` |

(On the run-events topic `run.completed` is every completion; here it names the successful ones, so
`["run.completed", "run.failed"]` means "when it finishes, unless cancelled".)
"""

from __future__ import annotations

from typing import Any, Final

from libs.core.identifiers import IDENTIFIER_PATTERN, MAX_IDENTIFIER_LENGTH
from libs.core.run import Run

RUN_SOURCE: Final = "run"
EVENT_RESULTS: Final[dict[str, str]] = {"run.completed": "SUCCESS", "run.failed": "FAILED",
                                        "run.cancelled": "CANCELLED"}

RUN_EVENT_SCHEMA: Final[dict[str, Any]] = {
    "required": ["workflow", "events"],
    "properties": {
        "workflow": {"type": "string", "minLength": 1, "maxLength": MAX_IDENTIFIER_LENGTH,
                     "pattern": IDENTIFIER_PATTERN,
                     "description": "source run: the workflow (in this workspace) whose runs are watched."},
        "events": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(EVENT_RESULTS)},
                   "description": "source run: which completions fire: `run.completed` (SUCCESS), "
                   "`run.failed`, `run.cancelled`."},
    },
}
"""What `event` needs when its `source` is `run` (the EVENT_TRIGGER schema's `then`)."""


def watches_runs(config: dict[str, Any]) -> bool:
    """Whether an EVENT_TRIGGER's config watches runs (not catalog events)."""
    event = config.get("event")
    return isinstance(event, dict) and event.get("source") == RUN_SOURCE


def event_name(result: str) -> str | None:
    """The trigger event a run's result is, if any."""
    return next((name for name, wanted in EVENT_RESULTS.items() if wanted == result), None)


def fires_on(config: dict[str, Any], workflow: str, result: str) -> bool:
    """Whether a run-watching config (its `event.workflow` already resolved to `workflow`'s form)
    fires when a run of `workflow` completes with `result`."""
    event = config.get("event")
    if not isinstance(event, dict) or event.get("workflow") != workflow:
        return False
    events = event.get("events")
    return isinstance(events, list) and event_name(result) in events


def run_payload(run: Run, workflow: str) -> dict[str, Any]:
    """The started run's trigger output: the completed run (`workflow` is its identifier in its
    workspace) as `{type, workflow, runId, version, result, error, durationMs, inputs, outputs}`,
    `outputs` being every node's output (that run's `.outputs`)."""
    ended = run.completed_at if run.completed_at is not None else run.updated_at
    return {"type": event_name(run.result or "FAILED"), "workflow": workflow, "runId": run.id,
            "version": run.version, "result": run.result, "error": run.error,
            "durationMs": max(0, round((ended - run.created_at) * 1000)), "inputs": run.inputs,
            "outputs": run.outputs}
