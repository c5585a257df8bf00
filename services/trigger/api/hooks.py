"""Webhook ingress: `POST /v1/hooks/{workflow}` starts a run through the live version's
WEBHOOK_TRIGGER node when the body is signed with its secret.

Checks, in order: the workflow and its trigger node exist (404), the signature matches (401), the
body is a JSON object (400), the workflow is not paused (409). The body becomes the trigger's output
(the run's inputs). `X-Stepline-Delivery` makes a delivery idempotent: a repeat answers the run the
first one started and starts nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from libs.core.definition import Node, Workflow
from libs.core.errors import ConflictError, NotFoundError
from services.trigger import presenters
from services.trigger.api.context import ApiContext, Context
from services.trigger.api.secrets import vault_of
from services.trigger.errors import error_response
from services.trigger.responses import ApiJSONResponse
from services.trigger.signatures import signature_matches
from services.trigger.starting import StartOutcome, TriggerStart, refuse_if_paused
from services.trigger.strict_json import strict_loads

router = APIRouter(prefix="/v1/hooks", tags=["webhooks"])

WEBHOOK_TRIGGER = "WEBHOOK_TRIGGER"
SIGNATURE_HEADER = "X-Stepline-Signature"
DELIVERY_HEADER = "X-Stepline-Delivery"

Signature = Annotated[str | None, Header(alias=SIGNATURE_HEADER)]
Delivery = Annotated[str | None, Header(alias=DELIVERY_HEADER, min_length=1, max_length=200)]
NodeQuery = Annotated[str | None, Query(min_length=1, max_length=60,
                                        description="Which WEBHOOK_TRIGGER node, when there are several")]


def webhook_trigger(workflow: Workflow, version: int, node: str | None) -> Node:
    """The WEBHOOK_TRIGGER node `node`, or the first one; NotFoundError if there is none."""
    found = [n for n in workflow.triggers() if n.type == WEBHOOK_TRIGGER]
    if node is not None:
        found = [n for n in found if n.identifier == node]
        if not found:
            raise NotFoundError(f"workflow {workflow.identifier!r} version {version} has no {WEBHOOK_TRIGGER} "
                                f"node {node!r}")
    if not found:
        raise NotFoundError(f"workflow {workflow.identifier!r} version {version} (live) has no "
                            f"{WEBHOOK_TRIGGER} node, so it takes no webhooks")
    return found[0]


async def _signing_key(request: Request, workflow: str, node: Node) -> str:
    name = str(node.config.get("secretName", ""))
    value = await vault_of(request).reveal(name)
    if value is None:
        raise ConflictError(f"webhooks of workflow {workflow!r} cannot be verified: secret {name!r} "
                            f"(config.secretName of node {node.identifier!r}) does not exist")
    return value


def _unauthorized(signature: str | None) -> Response:
    reason = (f"the {SIGNATURE_HEADER} header is missing" if signature is None else
              f"the {SIGNATURE_HEADER} header does not match the body")
    message = f"{reason}; sign the raw body as sha256=<hex HMAC-SHA256> keyed by the webhook's secret"
    return error_response(401, "unauthorized", message, [{"pointer": f"/header/{SIGNATURE_HEADER}", "message": reason}])


def _object_body(raw: bytes) -> dict[str, Any] | Response:
    try:
        body = strict_loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = f"body is not valid JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else 'not UTF-8'}"
        return error_response(400, "bad_request", message, [{"pointer": "", "message": message}])
    if not isinstance(body, dict):
        message = "body must be a JSON object (it becomes the run's inputs)"
        return error_response(400, "bad_request", message, [{"pointer": "", "message": message}])
    return body


def _shown(outcome: StartOutcome) -> dict[str, Any]:
    if outcome.run is None:
        return presenters.accepted_run(outcome.run_id, outcome.workflow, outcome.version)
    return presenters.run(outcome.run)


@router.post("/{workflow_id}", status_code=202, response_model=None)
async def receive_webhook(ctx: Context, request: Request, workflow_id: Annotated[str, Path()],
                          node: NodeQuery = None, signature: Signature = None,
                          delivery: Delivery = None) -> Response:
    """Start a run from a signed delivery: 202 `{ok, workflowRun}` (the same run for a repeated
    `X-Stepline-Delivery`)."""
    raw = await request.body()
    record = await ctx.store.get_workflow(workflow_id)
    workflow = await ctx.definitions.get(record.identifier, record.live_version)
    trigger = webhook_trigger(workflow, record.live_version, node)
    if not signature_matches(await _signing_key(request, record.identifier, trigger), raw, signature):
        return _unauthorized(signature)
    body = _object_body(raw)
    if isinstance(body, Response):
        return body
    await refuse_if_paused(ctx.store, record.identifier)
    outcome = await ctx.starter().fire(TriggerStart(
        workflow=record.identifier, version=record.live_version, node=trigger.identifier,
        trigger_type="WEBHOOK", output=body,
        idempotency_key=f"delivery:{delivery}" if delivery is not None else None))
    return ApiJSONResponse({"ok": True, "workflowRun": _shown(outcome)}, status_code=202)
