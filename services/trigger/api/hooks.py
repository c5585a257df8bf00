"""Webhook ingress: `POST /v1/hooks/{workflow}` starts a run through the live version's
WEBHOOK_TRIGGER node when the delivery is signed as the node's `signature` requires
(libs/core/webhook_signatures.py).

An unknown workflow, one without a (such) WEBHOOK_TRIGGER, a missing signing secret and a missing,
wrong or stale signature all answer the same 401, so a caller without the secret learns nothing
(not even whether the workflow exists); the reason goes to the engine's log. Once the delivery is
verified: the body must be a JSON object or form fields (400) and the workflow not paused (409). The
body becomes the trigger's output (the run's inputs). A repeated delivery (the scheme's delivery id
or signature) answers the run the first one started and starts nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from libs.core.definition import Node, Workflow
from libs.core.errors import ConflictError, NotFoundError
from libs.core.webhook_signatures import Verdict, signing_of, verify
from libs.core.workspaces import scoped, workspace_of
from services.trigger import presenters
from services.trigger.api.context import Context
from services.trigger.api.secrets import vault_of
from services.trigger.browser_guard import FORM, media_type
from services.trigger.errors import error_response
from services.trigger.responses import ApiJSONResponse
from services.trigger.starting import StartOutcome, TriggerStart, refuse_if_paused
from services.trigger.strict_json import strict_loads

logger = logging.getLogger("stepline.trigger.hooks")
router = APIRouter(prefix="/v1/hooks", tags=["webhooks"])

WEBHOOK_TRIGGER = "WEBHOOK_TRIGGER"
MAX_FORM_FIELDS = 1000
REFUSED_MESSAGE = ("webhook delivery refused: it is not signed as a WEBHOOK_TRIGGER of this workflow "
                   "requires (a missing, wrong or stale signature, or no such webhook); see docs/api.md, "
                   "Webhooks")

Delivery = Annotated[str | None, Header(alias="X-Stepline-Delivery", min_length=1, max_length=200,
                                        description="Scheme hmac-sha256: makes a delivery idempotent")]
NodeQuery = Annotated[str | None, Query(min_length=1, max_length=60,
                                        description="Which WEBHOOK_TRIGGER node, when there are several")]


@dataclass(frozen=True)
class Verified:
    workflow: str
    version: int
    trigger: Node
    verdict: Verdict


def webhook_trigger(workflow: Workflow, version: int, node: str | None) -> Node:
    """The WEBHOOK_TRIGGER node `node`, or the first one; NotFoundError if there is none."""
    found = [n for n in workflow.triggers() if n.type == WEBHOOK_TRIGGER]
    if node is not None:
        found = [n for n in found if n.identifier == node]
    if not found:
        named = f" {node!r}" if node is not None else ""
        raise NotFoundError(f"workflow {workflow.identifier!r} version {version} (live) has no "
                            f"{WEBHOOK_TRIGGER} node{named}")
    return found[0]


async def _secret(request: Request, name: str) -> str | None:
    try:
        return await vault_of(request).reveal(name)
    except ConflictError:  # the service has no secrets key
        return None


async def _verify(ctx: Context, request: Request, workflow_id: str, node: str | None, raw: bytes) -> Verified | str:
    """The verified delivery, or why it is refused (for the log only)."""
    try:
        record = await ctx.store.get_workflow(workflow_id)
        trigger = webhook_trigger(await ctx.definitions.get(record.identifier, record.live_version),
                                  record.live_version, node)
    except NotFoundError as exc:
        return exc.message
    signing = signing_of(trigger.config)
    secret = await _secret(request, scoped(workspace_of(record.identifier), signing.secret_name))
    if secret is None:
        return (f"the secret {signing.secret_name!r} named by node {trigger.identifier!r} does not exist "
                "(or the service has no secrets key)")
    verdict = verify(signing, secret, raw, request.headers, ctx.clock())
    if not verdict.accepted:
        return f"{verdict.reason} (scheme {signing.scheme}, node {trigger.identifier!r})"
    return Verified(record.identifier, record.live_version, trigger, verdict)


def _refused(workflow_id: str, reason: str) -> Response:
    logger.info("webhook delivery for workflow %r refused: %s", workflow_id[:200], reason)
    return error_response(401, "unauthorized", REFUSED_MESSAGE)


def _bad_body(message: str) -> Response:
    return error_response(400, "bad_request", message, [{"pointer": "", "message": message}])


def _json_object(raw: bytes) -> dict[str, Any] | Response:
    try:
        body = strict_loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _bad_body(f"body is not valid JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else 'not UTF-8'}")
    if not isinstance(body, dict):
        return _bad_body("body must be a JSON object (it becomes the run's inputs)")
    return body


def _form_object(raw: bytes) -> dict[str, Any] | Response:
    """Form fields as an object (a repeated field becomes a list); a lone `payload` field holding a
    JSON object (GitHub's form deliveries, Slack's interactive messages) becomes that object."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return _bad_body(f"body is not valid form data ({FORM}, UTF-8, at most {MAX_FORM_FIELDS} fields)")
    fields: dict[str, Any] = {}
    for name, value in pairs:
        before = fields.get(name)
        fields[name] = value if before is None else [*(before if isinstance(before, list) else [before]), value]
    payload = fields.get("payload") if len(fields) == 1 else None
    if isinstance(payload, str) and payload.lstrip().startswith("{"):
        return _json_object(payload.encode("utf-8"))
    return fields


def _body(request: Request, raw: bytes) -> dict[str, Any] | Response:
    form = media_type(request.headers.get("content-type")) == FORM
    return _form_object(raw) if form else _json_object(raw)


def _shown(outcome: StartOutcome) -> dict[str, Any]:
    if outcome.run is None:
        return presenters.accepted_run(outcome.run_id, outcome.workflow, outcome.version)
    return presenters.run(outcome.run)


@router.post("/{workflow_id}", status_code=202, response_model=None)
async def receive_webhook(ctx: Context, request: Request, workflow_id: Annotated[str, Path()],
                          node: NodeQuery = None, delivery: Delivery = None) -> Response:
    """Start a run from a signed delivery: 202 `{ok, workflowRun}` (the same run for a repeated
    delivery); 401 for anything not signed as a webhook of this workflow requires."""
    raw = await request.body()
    verified = await _verify(ctx, request, workflow_id, node, raw)
    if isinstance(verified, str):
        return _refused(workflow_id, verified)
    body = _body(request, raw)
    if isinstance(body, Response):
        return body
    await refuse_if_paused(ctx.store, verified.workflow)
    outcome = await ctx.starter().fire(TriggerStart(
        workflow=verified.workflow, version=verified.version, node=verified.trigger.identifier,
        trigger_type="WEBHOOK", output=body, idempotency_key=verified.verdict.delivery))
    return ApiJSONResponse({"ok": True, "workflowRun": _shown(outcome)}, status_code=202)
