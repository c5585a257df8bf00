"""Runs: start one (→ StartRun), list them with filters, read one (optionally long-polling)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from starlette.responses import Response

from libs.access.principal import Principal
from libs.core.instants import parse_instant
from libs.core.run import Run
from libs.core.workspaces import DEFAULT_WORKSPACE, scoped
from libs.store.ports import RunFilter
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import RunResultName, RunStatusName, StartRunBody, VersionNumber
from services.trigger.errors import invalid
from services.trigger.responses import ApiJSONResponse
from services.trigger.starting import StartOutcome, StartRequest
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["runs"], route_class=StrictJsonRoute)

T = TypeVar("T")
MAX_WAIT_SECONDS = 60.0
Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS,
                              description="Seconds to wait for the run to complete before answering (0..60)")]
MAX_OFFSET = 2_147_483_647

IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
Strings = Annotated[list[str] | None, Query()]
Statuses = Annotated[list[RunStatusName] | None, Query()]
Results = Annotated[list[RunResultName] | None, Query()]
Versions = Annotated[list[VersionNumber] | None, Query()]
From = Annotated[str | None, Query(alias="from", max_length=64)]
Until = Annotated[str | None, Query(max_length=64)]
# `name[]=`: the form Port's clients (qs, axios) send a list in.
WorkflowsB = Annotated[list[str] | None, Query(alias="workflowIdentifiers[]")]
RunIdsB = Annotated[list[str] | None, Query(alias="workflowRunIdentifiers[]")]
StatusesB = Annotated[list[RunStatusName] | None, Query(alias="statuses[]")]
ResultsB = Annotated[list[RunResultName] | None, Query(alias="results[]")]
VersionsB = Annotated[list[VersionNumber] | None, Query(alias="workflowVersions[]")]
CreatedByB = Annotated[list[str] | None, Query(alias="createdBy[]")]


def _merged(*groups: Iterable[T] | None) -> tuple[T, ...]:
    return tuple(item for group in groups for item in group or ())


async def run_filter(workflowIdentifiers: Strings = None, workflow: Strings = None,  # noqa: N803 (query names)
               workflowRunIdentifiers: Strings = None, statuses: Statuses = None, status: Statuses = None,
               results: Results = None, result: Results = None, workflowVersions: Versions = None,
               version: Versions = None, createdBy: Strings = None, trigger: Strings = None,
               created_from: From = None, to: Until = None,
               workflows_b: WorkflowsB = None,
               run_ids_b: RunIdsB = None,
               statuses_b: StatusesB = None,
               results_b: ResultsB = None,
               versions_b: VersionsB = None,
               created_by_b: CreatedByB = None) -> RunFilter:
    """Each list filter is repeatable, also as `name[]`, and has a short alias (`workflow`, `status`,
    `result`, `version`); `from` (inclusive) and `to` (exclusive) bound the creation time."""
    return RunFilter(workflows=_merged(workflowIdentifiers, workflow, workflows_b),
                     statuses=_merged(statuses, status, statuses_b), results=_merged(results, result, results_b),
                     versions=_merged(workflowVersions, version, versions_b),
                     run_ids=_merged(workflowRunIdentifiers, run_ids_b), created_by=_merged(createdBy, created_by_b),
                     trigger_types=_merged(trigger), created_from=instant("from", created_from),
                     created_to=instant("to", to))


def instant(name: str, text: str | None) -> float | None:
    """An ISO 8601 query parameter as epoch seconds (422 naming it when it is not one)."""
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise invalid(f"/query/{name}", f"{name} must be an ISO 8601 time, e.g. 2026-05-01T00:00:00Z") from None


def _idempotency_key(header: str | None, body: StartRunBody) -> str | None:
    if header is not None and body.idempotencyKey is not None and header != body.idempotencyKey:
        raise invalid("/idempotencyKey", "idempotencyKey differs from the Idempotency-Key header")
    return header if header is not None else body.idempotencyKey


async def start_answer(ctx: ApiContext, outcome: StartOutcome) -> Response:
    """201 with the run once stored, 200 with the earlier run for a repeat, 202 if not stored in time."""
    if outcome.run is None:
        shown = presenters.accepted_run(outcome.run_id, outcome.workflow, outcome.version)
        return ApiJSONResponse({"ok": True, "workflowRun": shown}, status_code=202)
    node_runs = await ctx.store.list_node_runs(outcome.run.id)
    body = {"ok": True, "workflowRun": {**presenters.run(outcome.run, node_runs), **await labels(ctx, outcome.run)}}
    return ApiJSONResponse(body, status_code=200 if outcome.repeated else 201)


@router.post("/{workflow_id}/runs", status_code=201, response_model=None)
async def start_run(ctx: Context, caller: Caller, workflow_id: Annotated[str, Path()],
                    body: Annotated[StartRunBody | None, Body()] = None,
                    idempotency_key: IdempotencyHeader = None, wait: Wait = 0) -> Response:
    """Start a run through the workflow's SELF_SERVE_TRIGGER. 201 once the scheduler has inserted it,
    202 if it has not within the accept timeout, 200 with the earlier run for a repeated
    idempotency key. With `wait`, the answer comes once the run is COMPLETED (or the wait is over),
    with the run as it then is: one request for a run's result."""
    body = body or StartRunBody()
    request = StartRequest(workflow=scope.key(caller, workflow_id), inputs=body.inputs, version=body.version,
                           tag=body.tag, idempotency_key=_idempotency_key(idempotency_key, body), caller=caller)
    outcome = await ctx.starter().start(request)
    if not outcome.repeated:
        await ctx.audit(caller, "run.started", outcome.run_id, {"workflow": workflow_id, "version": outcome.version})
    if outcome.run is not None and wait > 0:
        outcome = replace(outcome, run=await ctx.waiters.wait_for_completion(ctx.store, outcome.run_id, wait,
                                                                            read=outcome.run))
    return await start_answer(ctx, outcome)


@router.get("/runs")
async def list_runs(ctx: Context, caller: Caller, flt: Annotated[RunFilter, Depends(run_filter)],
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    """The workspace's runs newest first, without their node runs (runs of a trigger with
    `allowAnyoneToViewRuns: false` only for those who may read them)."""
    runs, total = await ctx.store.list_runs(in_workspace(flt, caller), limit=limit, offset=offset)
    shown = [{**presenters.run(r), **await labels(ctx, r)} for r in runs if await scope.visible(ctx, caller, r)]
    return {"ok": True, "workflowRuns": shown, "total": total, "limit": limit, "offset": offset}


async def labels(ctx: ApiContext, run: Run) -> dict[str, Any]:
    """Port's `title` and `icon` of a run (its workflow version's; the definition is cached) and its
    `nodeConfigType`: the type of the trigger node that started it (null when it names none)."""
    workflow = await ctx.definitions.get(run.workflow, run.version)
    trigger = run.trigger.node
    node_type = workflow.node(trigger).type if trigger and workflow.has_node(trigger) else None
    return {"title": workflow.title, "icon": workflow.icon, "nodeConfigType": node_type}


def in_workspace(flt: RunFilter, caller: Principal) -> RunFilter:
    """The filter limited to the caller's workspace, with workflow identifiers as store keys."""
    return replace(flt, workflows=tuple(scoped(caller.workspace, w) for w in flt.workflows),
                   workflow_prefix=scoped(caller.workspace, "") if caller.workspace != DEFAULT_WORKSPACE else "")


@router.get("/runs/{run_id}")
async def get_run(ctx: Context, caller: Caller, run_id: Annotated[str, Path()],
                  wait: Wait = 0) -> dict[str, Any]:
    """A run with its node runs. With `wait`, returns as soon as the run is COMPLETED or when
    `wait` seconds have passed."""
    read = await scope.run_of(ctx, caller, run_id)
    run = await ctx.waiters.wait_for_completion(ctx.store, run_id, wait, read=read)
    node_runs = await ctx.store.list_node_runs(run.id)
    return {"ok": True, "workflowRun": {**presenters.run(run, node_runs), **await labels(ctx, run)}}
