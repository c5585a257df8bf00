"""Node type → Action."""

from __future__ import annotations

import httpx

from services.executor.actions.base import Action
from services.executor.actions.logic import ConditionAction, NoopAction, TransformAction
from services.executor.actions.webhook import WebhookAction


def build_registry(client: httpx.AsyncClient, *, max_response_bytes: int) -> dict[str, Action]:
    return {
        "WEBHOOK": WebhookAction(client, max_response_bytes=max_response_bytes),
        "CONDITION": ConditionAction(),
        "TRANSFORM": TransformAction(),
        "NOOP": NoopAction(),
    }
