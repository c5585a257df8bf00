"""Wire the executor: one handler on node-dispatch, actions over a shared httpx client."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from libs.access.secret_scope import WorkspaceSecrets
from libs.bus.ports import Bus
from libs.bus.publisher import Publisher
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.secrets.vault import KeylessSecrets, open_vault
from libs.store.ports import Store
from services.executor.actions.registry import ActionDeps, build_registry
from services.executor.handlers import Executor
from services.executor.secret_use import TrackedSecrets
from services.executor.settings import ExecutorSettings

GROUP = "stepline-executor"
SOURCE = "stepline/executor"
"""The source of every message the executor publishes, the KAFKA node's included."""


def build_executor(settings: ExecutorSettings, store: Store, bus: Bus, client: httpx.AsyncClient, *,
                   clock: Callable[[], float]) -> Service:
    vault = open_vault(store, settings.secrets_key)
    reader = WorkspaceSecrets(vault if vault is not None else KeylessSecrets())
    secrets = TrackedSecrets(reader)
    publisher = Publisher(bus, SOURCE)
    deps = ActionDeps(client=client, publisher=publisher, store=store, secrets=secrets, settings=settings,
                      clock=clock)
    executor = Executor(store, publisher, build_registry(deps),
                        owner=f"executor-{settings.instance_id}", clock=clock,
                        lease_seconds=settings.lease_seconds, default_timeout=settings.default_timeout_seconds,
                        concurrency=settings.concurrency, secrets=secrets, limits=settings.limits(),
                        api_url=settings.api_url)
    return Service(name="executor", subscriptions=[Subscription(topics.NODE_DISPATCH, GROUP, executor.handle)],
                   on_stop=[executor.drain])
