"""Completing (or reporting progress on) a waiting node run — both Port paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path

from libs.access.callback_tokens import HEADER as CALLBACK_HEADER
from libs.access.principal import Principal
from libs.core.definition import Node
from libs.core.errors import NotFoundError, UnauthorizedError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.run import LogEntry, NodeRun
from libs.core.secret_refs import readable_refs
from libs.expressions import evaluate as expressions
from services.trigger import presenters
from services.trigger.api import scope
from services.trigger.api.context import ApiContext, Context, MaybeCaller
from services.trigger.api.models import LogsBody, NodeRunPatch
from services.trigger.approval import refuse_patch
from services.trigger.completion import Decision, Patch, complete_message, decide
from services.trigger.patch_limits import refuse_over_limits
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["node runs"], route_class=StrictJsonRoute)

NodeRunId = Annotated[str, Path(description="A node run identifier (wfnr_…)")]
RunId = Annotated[str, Path(description="A run identifier (wfr_…)")]
CallbackToken = Annotated[str | None, Header(alias=CALLBACK_HEADER, max_length=200)]
CALLBACK_ACTOR = "callback-token"


def to_patch(body: NodeRunPatch, by: str | None, now: float) -> Patch:
    logs = tuple(LogEntry(logLevel=e.logLevel, log=e.log, tags=e.tags, createdAt=now) for e in body.logs)
    return Patch(status=body.effective_status, result=body.result, output=body.output,
                 output_given=body.output_given, logs=logs, by=by)


async def node_of(ctx: ApiContext, node_run: NodeRun) -> Node | None:
    """The node run's node, in the version its run pinned."""
    run = await ctx.store.get_run(node_run.run_id)
    workflow = await ctx.definitions.get(node_run.workflow, run.version)
    try:
        return workflow.node(node_run.node_id)
    except KeyError:
        return None


async def stored_form(ctx: ApiContext, node_run: NodeRun, patch: Patch) -> Callable[[Any], Any]:
    """How the patch's output would have been stored, needed only to recognise a repeated completion."""
    if node_run.status != "COMPLETED" or patch.status != "COMPLETED" or not patch.output_given:
        return lambda output: output
    run = await ctx.store.get_run(node_run.run_id)
    workflow = await ctx.definitions.get(node_run.workflow, run.version)
    stored = patch.output
    if patch.result == "SUCCESS" and workflow.has_node(node_run.node_id):  # as the scheduler stores it
        stored = (await expressions.shaped_output(workflow, node_run.node_id, patch.output)).output
    return lambda _output: stored


async def masked(ctx: ApiContext, node_run: NodeRun, patch: Patch) -> Patch:
    """The patch with the secrets its node names masked in its output and logs, in every form
    libs/core/redaction.py knows. Only those: the reporter was sent them, so masking them confirms
    nothing it did not know, whereas masking any other stored secret would confirm a guess (PATCH
    reports are not a masking oracle, issue 9). A reporter's text holding another secret is its own."""
    if ctx.secrets is None or (not patch.output_given and not patch.logs):
        return patch
    node = await node_of(ctx, node_run)
    names = sorted(readable_refs(node.type, node.config).names) if node is not None else []
    values = secret_values([v for name in names if (v := await ctx.secrets.reveal(name))])
    if not values:
        return patch
    logs = tuple(e.model_copy(update={"log": redact_text(e.log, values),
                                      "tags": redact_value(e.tags, values)}) for e in patch.logs)
    return replace(patch, output=redact_value(patch.output, values), logs=logs)


async def apply_patch(ctx: ApiContext, node_run: NodeRun, body: NodeRunPatch, user: str | None) -> dict[str, Any]:
    patch = await masked(ctx, node_run, to_patch(body, user, ctx.clock()))
    refuse_over_limits(node_run, patch, ctx.settings.limits())
    if patch.status == "COMPLETED":
        refuse_patch(node_run)
    asynchronous = False
    if node_run.status == "RUNNING" and patch.status == "COMPLETED":
        node = await node_of(ctx, node_run)
        asynchronous = node is not None and node.waits_for_completion
    decision = decide(node_run, patch, await stored_form(ctx, node_run, patch), asynchronous=asynchronous)
    if decision is Decision.ALREADY_APPLIED:
        return {"ok": True, "nodeRun": presenters.node_run(node_run)}
    if decision is Decision.PUBLISH:
        await ctx.publisher.publish(complete_message(node_run, patch))
    return {"ok": True}


async def authorized_node_run(ctx: ApiContext, caller: Principal | None, node_run_id: str,
                              token: str | None) -> tuple[NodeRun, str]:
    """The node run and who reports on it: the caller's user, or (without an API key) the holder of
    the node run's callback token; a wrong or spent token is 401."""
    node_run = await scope.node_run_of(ctx, caller, node_run_id)
    if caller is not None:
        return node_run, caller.user
    if token is None or ctx.callbacks is None or not ctx.callbacks.matches(node_run.key, token):
        raise UnauthorizedError(f"the {CALLBACK_HEADER} header is not the callback token of node run {node_run_id}")
    return node_run, CALLBACK_ACTOR


async def patched(ctx: ApiContext, caller: Principal | None, node_run: NodeRun, body: NodeRunPatch,
                  user: str) -> dict[str, Any]:
    answer = await apply_patch(ctx, node_run, body, user)
    if body.effective_status == "COMPLETED" and "nodeRun" not in answer:
        await ctx.audit(caller, "node.completed_externally", node_run.id,
                        {"run": node_run.run_id, "node": node_run.node_id, "result": body.result, "by": user})
    return answer


@router.patch("/nodes/runs/{node_run_id}")
async def patch_node_run(ctx: Context, caller: MaybeCaller, node_run_id: NodeRunId, body: NodeRunPatch,
                         token: CallbackToken = None) -> dict[str, Any]:
    """Complete a WAITING node run (`result` required with COMPLETED), or append progress logs with
    IN_PROGRESS. 404 unknown; 409 not waiting or completed differently; a repeat answers 200. Needs an
    editor's key or the node run's callback token."""
    node_run, user = await authorized_node_run(ctx, caller, node_run_id, token)
    return await patched(ctx, caller, node_run, body, user)


@router.post("/nodes/runs/{node_run_id}/logs")
async def post_node_run_logs(ctx: Context, caller: MaybeCaller, node_run_id: NodeRunId, body: LogsBody,
                             token: CallbackToken = None) -> dict[str, Any]:
    """Append progress logs, `{logs: [{level, message}]}` (Port's later endpoint): the same as a PATCH
    with IN_PROGRESS and those logs."""
    node_run, user = await authorized_node_run(ctx, caller, node_run_id, token)
    return await patched(ctx, caller, node_run, NodeRunPatch(status="IN_PROGRESS", logs=body.logs), user)


@router.patch("/runs/{run_id}/nodes/{node_run_id}")
async def patch_run_node_run(ctx: Context, caller: MaybeCaller, run_id: RunId, node_run_id: NodeRunId,
                             body: NodeRunPatch, token: CallbackToken = None) -> dict[str, Any]:
    """The same, addressed through its run; a node run of another run is 404."""
    node_run, user = await authorized_node_run(ctx, caller, node_run_id, token)
    if node_run.run_id != run_id:
        raise NotFoundError(f"run {run_id} has no node run {node_run_id}")
    return await patched(ctx, caller, node_run, body, user)
