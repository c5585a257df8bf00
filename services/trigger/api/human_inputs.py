"""Answering an INPUT node: `POST /v1/workflows/runs/{run}/nodes/{node}/input` (libs/core/input_node.py).

Each answer is `{button, inputs}` from the API key's user, who must be one of the node's `responders`
(approvers are identified the same way, services/trigger/approval.py). Answers are kept in the entry
store (kind `input-responses`, keyed by the node run, appended by compare-and-set), so each responder
answers once. When an outlet's quorum is met the node is completed with that outlet as its branch and
`{outlet, responses (those that pressed its button), allResponses}` as its output; a later answer is
refused (409) and re-sends that completion, in case the first one was lost."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from libs.contracts import v1
from libs.core.errors import ConflictError, ForbiddenError
from libs.core.input_node import form_of, may_respond, quorum
from libs.core.inputs import validate_inputs
from libs.core.instants import to_iso
from libs.core.run import NodeRun
from libs.store.ports import Entry
from services.trigger.api import scope
from services.trigger.api.approvals import waiting_node_run
from services.trigger.api.context import ApiContext, Caller, Context
from services.trigger.api.models import _Body
from services.trigger.errors import invalid
from services.trigger.strict_json import StrictJsonRoute

router = APIRouter(prefix="/v1/workflows", tags=["approvals"], route_class=StrictJsonRoute)

KIND = "input-responses"
RunId = Annotated[str, Path(description="A run identifier (wfr_…)")]
NodeRef = Annotated[str, Path(description="The INPUT node's identifier (or its node run id, wfnr_…)")]


class InputAnswer(_Body):
    button: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] | None = None


def request_of(node_run: NodeRun) -> dict[str, Any]:
    """The waiting INPUT node's form, outlets and responders (409 for any other node run)."""
    output = node_run.output if isinstance(node_run.output, dict) else {}
    if node_run.node_type != "INPUT" or not isinstance(output.get("request"), dict):
        raise ConflictError(f"node {node_run.node_id!r} is a {node_run.node_type} node, not an INPUT node")
    request: dict[str, Any] = output["request"]
    return request


def checked_answer(request: dict[str, Any], body: InputAnswer, user: str) -> dict[str, Any]:
    if not may_respond(request, user):
        raise ForbiddenError(f"{user!r} is not one of this INPUT node's responders")
    if body.button not in request.get("buttons", []):
        raise invalid("/button", f"button must be one of {', '.join(request.get('buttons', []))}")
    return validate_inputs(form_of(request), body.inputs or {})


async def recorded(ctx: ApiContext, node_run: NodeRun, response: dict[str, Any]) -> list[dict[str, Any]]:
    """Every answer with `response` appended; 409 if its user answered before."""
    entry, _ = await ctx.store.insert_entry(KIND, node_run.key, {"responses": []}, now=ctx.clock())
    while True:
        responses = list(entry.data["responses"])
        if any(r["by"] == response["by"] for r in responses):
            raise ConflictError(f"{response['by']!r} has already answered INPUT node {node_run.node_id!r}")
        written = await ctx.store.replace_entry(KIND, node_run.key, {"responses": [*responses, response]},
                                                expected_rev=entry.rev, now=ctx.clock())
        if written is not None:
            return [*responses, response]
        entry = await _current(ctx, node_run)


async def _current(ctx: ApiContext, node_run: NodeRun) -> Entry:
    entry = await ctx.store.get_entry(KIND, node_run.key)
    assert entry is not None  # entries of this kind are never deleted
    return entry


def completion(node_run: NodeRun, outlet: str, responses: list[dict[str, Any]]) -> v1.CompleteNode:
    """Output `{outlet, responses: the answers that pressed the outlet's button, allResponses}` (so
    `.responses[0]` is a decider's answer, as Port's example reads it)."""
    deciding = [r for r in responses if r["button"] == outlet]
    output = {"outlet": outlet, "responses": deciding, "allResponses": responses}
    return v1.CompleteNode(run_id=node_run.run_id, node_run_key=node_run.key, result="SUCCESS",
                           output=output, branch=outlet)


async def resend_if_decided(ctx: ApiContext, node_run: NodeRun, request: dict[str, Any]) -> None:
    """Re-send the completion of an INPUT whose quorum an earlier answer met (its command may be lost)."""
    entry = await ctx.store.get_entry(KIND, node_run.key)
    responses = entry.data["responses"] if entry is not None else []
    outlet = quorum(request, responses)
    if outlet is not None:
        await ctx.publisher.publish(completion(node_run, outlet, responses))
        raise ConflictError(f"INPUT node {node_run.node_id!r} already took outlet {outlet!r}")


@router.post("/runs/{run_id}/nodes/{node}/input")
async def answer(ctx: Context, caller: Caller, run_id: RunId, node: NodeRef, body: InputAnswer) -> dict[str, Any]:
    """Answer a waiting INPUT node as the API key's user. 403 not a responder; 409 not waiting, already
    answered by this user, or already decided; 422 an unknown button or inputs its form refuses."""
    run = await scope.run_of(ctx, caller, run_id)
    node_run = await waiting_node_run(ctx, run, node)
    request = request_of(node_run)
    if node_run.status != "WAITING":
        raise ConflictError(f"INPUT node {node_run.node_id!r} is {node_run.status}, not waiting for answers")
    inputs = checked_answer(request, body, caller.user)
    await resend_if_decided(ctx, node_run, request)
    response = {"by": caller.user, "button": body.button, "inputs": inputs, "at": to_iso(ctx.clock())}
    responses = await recorded(ctx, node_run, response)
    outlet = quorum(request, responses)
    if outlet is not None:
        await ctx.publisher.publish(completion(node_run, outlet, responses))
    await ctx.audit(caller, "approval.decided", node_run.id, {"run": run.id, "node": node_run.node_id,
                                                             "input": body.button})
    return {"ok": True, "input": {"workflowRunIdentifier": run.id, "nodeRunIdentifier": node_run.id,
                                  "responses": len(responses), "outlet": outlet}}
