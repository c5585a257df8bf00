"""Run control: cancel and rerun a run; pause and resume a workflow."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from starlette.responses import Response

from libs.contracts import v1
from libs.core.errors import ConflictError
from libs.core.run import Run, TriggerInfo, new_run_id
from libs.core.workspaces import public
from libs.store import pausing
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import RerunBody
from services.trigger.api.runs import start_answer
from services.trigger.responses import ApiJSONResponse
from services.trigger.starting import refuse_if_paused
from services.trigger.strict_json import StrictJsonRoute
from services.trigger.waiting import wait_for_run

runs_router = APIRouter(prefix="/v1/workflows/runs", tags=["run control"], route_class=StrictJsonRoute)
workflows_router = APIRouter(prefix="/v1/workflows", tags=["run control"], route_class=StrictJsonRoute)

async def _shown(ctx: ApiContext, run: Run) -> dict[str, Any]:
    return presenters.run(run, await ctx.store.list_node_runs(run.id))


@runs_router.post("/{run_id}/cancel", response_model=None)
async def cancel_run(ctx: Context, caller: Caller, run_id: Annotated[str, Path()]) -> Response:
    """Start no new node, cancel waiting (and not yet started) nodes; the run ends COMPLETED/CANCELLED
    once attempts in flight finish. 409 if the run has already completed. Answers once the scheduler
    has recorded the request (200), or 202 if it has not within the accept timeout."""
    run = await scope.run_of(ctx, caller, run_id)
    if run.status == "COMPLETED":
        raise ConflictError(f"run {run_id} has already completed with result {run.result}; nothing to cancel")
    await ctx.publisher.publish(v1.CancelRun(run_id=run_id, by=caller.user))
    await ctx.audit(caller, "run.cancelled", run_id, {"workflow": public(run.workflow)})
    run = await wait_for_run(ctx.store, run_id, _cancel_recorded, ctx.settings.accept_timeout_seconds)
    status = 200 if _cancel_recorded(run) else 202
    return ApiJSONResponse({"ok": True, "workflowRun": await _shown(ctx, run)}, status_code=status)


def _cancel_recorded(run: Run) -> bool:
    return run.cancel_requested or run.status == "COMPLETED"


@runs_router.post("/{run_id}/rerun", status_code=201, response_model=None)
async def rerun(ctx: Context, caller: Caller, run_id: Annotated[str, Path()],
                body: Annotated[RerunBody | None, Body()] = None) -> Response:
    """A new run of the same workflow version with the same inputs, linked to the old one. From
    `failed` (only for a completed run that did not succeed) it reuses the outputs of the nodes that
    succeeded and executes the rest."""
    body = body or RerunBody()
    old = await scope.run_of(ctx, caller, run_id)
    if body.from_ == "failed" and (old.status != "COMPLETED" or old.result == "SUCCESS"):
        state = "has not completed" if old.status != "COMPLETED" else "succeeded"
        raise ConflictError(f"run {run_id} {state}; a rerun from `failed` needs a completed run that did not succeed")
    await refuse_if_paused(ctx.store, old.workflow)
    trigger = TriggerInfo(type="RERUN", by=caller.user, at=ctx.clock(), node=old.trigger.node)
    message = v1.StartRun(run_id=new_run_id(), workflow=old.workflow, version=old.version, trigger=trigger,
                          inputs=old.inputs, trigger_output=old.trigger_output, rerun_of=old.id,
                          rerun_from=body.from_)
    await ctx.audit(caller, "run.rerun", message.run_id, {"rerunOf": old.id, "from": body.from_})
    return await start_answer(ctx, await ctx.starter().send(message))


@workflows_router.post("/{workflow_id}/pause")
async def pause(ctx: Context, caller: Caller, workflow_id: Annotated[str, Path()]) -> dict[str, Any]:
    """While paused, API and webhook starts get 409, catalog events and queue messages start no run
    and schedule ticks are skipped. Runs in progress go on. Pausing twice changes nothing."""
    record = await scope.workflow_of(ctx, caller, workflow_id)
    entry = await pausing.pause(ctx.store, record.identifier, by=caller.user, now=ctx.clock())
    await ctx.audit(caller, "workflow.paused", workflow_id, {})
    return {"ok": True, "workflow": {"identifier": workflow_id, "paused": True,
                                     "pausedBy": entry.data.get("by"), "pausedAt": presenters.iso(entry.updated_at)}}


@workflows_router.post("/{workflow_id}/resume")
async def resume(ctx: Context, caller: Caller, workflow_id: Annotated[str, Path()]) -> dict[str, Any]:
    """Starts are accepted again. Resuming a workflow that is not paused changes nothing."""
    record = await scope.workflow_of(ctx, caller, workflow_id)
    await pausing.resume(ctx.store, record.identifier)
    await ctx.audit(caller, "workflow.resumed", workflow_id, {})
    return {"ok": True, "workflow": {"identifier": workflow_id, "paused": False}}
