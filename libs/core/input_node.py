"""Port's INPUT node: a form people answer while the run waits (pure).

The config: `userInputs` (a form, validated like a SELF_SERVE_TRIGGER's, with `buttons`), `outlets`
(`evaluationMethod: "button"`, `numOfResponders`: the quorum), `responders` (`users`, `teams`). Each
responder answers once, with a button and the form's inputs; the first outlet (in order) whose button
has been pressed by `numOfResponders` responders is taken, and its connections
(`sourceOutletIdentifier`) are followed. The node's output is `{outlet, responses, allResponses}`:
`responses` are the answers that pressed the outlet's button (Port's example reads `.responses[0]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_IDENTIFIER: dict[str, Any] = {"identifier": {"type": "string", "minLength": 1}}


def _identified(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": ["identifier"], "properties": {**_IDENTIFIER, **properties}}


INPUT: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "INPUT config",
    "description": "Waits for people to answer a form: each responder answers once with a button (and the "
    "form's inputs); the first outlet whose button reaches `numOfResponders` answers is taken. Output "
    "`{outlet, responses, allResponses}` (answers `{by, button, inputs, at}`; `responses`: those of the "
    "outlet). Answer with `POST /v1/workflows/runs/{run}/nodes/{node}/input`.",
    "type": "object",
    "required": ["type", "outlets"],
    "properties": {
        "type": {"const": "INPUT"},
        "description": {"type": ["string", "null"]},
        "userInputs": {
            "type": "object",
            "properties": {"properties": {"type": "object"}, "required": {"type": "array"},
                           "buttons": {"type": "array", "items": _identified(label={"type": "string"})}},
        },
        "outlets": {
            "type": "array",
            "minItems": 1,
            "items": _identified(
                title={"type": ["string", "null"]},
                evaluationMethod={"const": "button",
                                  "errorMessage": "must be \"button\" (the only evaluation method Stepline knows)"},
                numOfResponders={"type": "integer", "minimum": 1, "default": 1},
            ),
        },
        "responders": {
            "type": "object",
            "properties": {"users": {"type": "array", "items": {"type": "string", "minLength": 1}},
                           "teams": {"type": "array", "items": {"type": "string"}}},
        },
    },
}


def outlet_ids(config: dict[str, Any] | None) -> list[str]:
    """The identifiers of an INPUT node's outlets, in order."""
    outlets = (config or {}).get("outlets")
    return [o["identifier"] for o in outlets if isinstance(o, dict) and isinstance(o.get("identifier"), str)] \
        if isinstance(outlets, list) else []


def buttons(config: dict[str, Any]) -> list[str]:
    """The buttons a responder may press: the form's `buttons`, else the outlets' identifiers."""
    form = config.get("userInputs")
    listed = form.get("buttons") if isinstance(form, dict) else None
    named = [b["identifier"] for b in listed if isinstance(b, dict) and isinstance(b.get("identifier"), str)] \
        if isinstance(listed, list) else []
    return named or outlet_ids(config)


def form_of(config: dict[str, Any]) -> dict[str, Any]:
    """The `userInputs` to validate answers against (without `buttons`)."""
    form = config.get("userInputs")
    return {k: v for k, v in form.items() if k != "buttons"} if isinstance(form, dict) else {}


def may_respond(config: dict[str, Any], user: str) -> bool:
    """A listed user; without a `users` list anyone who may decide approvals. (`teams`: Stepline has
    no teams, so a team grants nothing.)"""
    responders = config.get("responders")
    users = responders.get("users") if isinstance(responders, dict) else None
    if not isinstance(users, list) or not users:
        return not (isinstance(responders, dict) and responders.get("teams"))
    return user in users


def quorum(config: dict[str, Any], responses: Sequence[dict[str, Any]]) -> str | None:
    """The first outlet whose button has `numOfResponders` answers; None while none has."""
    for outlet in config.get("outlets") or []:
        if not isinstance(outlet, dict):
            continue
        needed = outlet.get("numOfResponders", 1)
        pressed = sum(1 for r in responses if r.get("button") == outlet.get("identifier"))
        if pressed >= (needed if isinstance(needed, int) and needed >= 1 else 1):
            return str(outlet["identifier"])
    return None
