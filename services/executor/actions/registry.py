"""Node type → Action. Every action gets what it needs from one `ActionDeps`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from libs.bus.ports import Bus
from libs.core.secrets import SecretReader
from libs.store.ports import Store
from services.executor.actions.base import Action
from services.executor.actions.logic import ConditionAction, NoopAction, TransformAction
from services.executor.actions.webhook import WebhookAction
from services.executor.settings import ExecutorSettings


@dataclass(frozen=True)
class ActionDeps:
    client: httpx.AsyncClient
    bus: Bus
    store: Store
    secrets: SecretReader
    settings: ExecutorSettings


def build_registry(deps: ActionDeps) -> dict[str, Action]:
    return {
        "WEBHOOK": WebhookAction(deps.client, max_response_bytes=deps.settings.max_response_bytes),
        "CONDITION": ConditionAction(),
        "TRANSFORM": TransformAction(),
        "NOOP": NoopAction(),
    }
