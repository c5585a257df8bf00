"""Wire the executor: one handler on node-dispatch, actions over a shared httpx client."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from libs.bus.ports import Bus
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.store.ports import Store
from services.executor.actions.registry import build_registry
from services.executor.handlers import Executor
from services.executor.settings import ExecutorSettings

GROUP = "stepline-executor"


def build_executor(settings: ExecutorSettings, store: Store, bus: Bus, client: httpx.AsyncClient, *,
                   clock: Callable[[], float]) -> Service:
    executor = Executor(store, bus, build_registry(client, max_response_bytes=settings.max_response_bytes),
                        owner=f"executor-{settings.instance_id}", clock=clock,
                        lease_seconds=settings.lease_seconds, default_timeout=settings.default_timeout_seconds,
                        concurrency=settings.concurrency)
    return Service(name="executor", subscriptions=[Subscription(topics.NODE_DISPATCH, GROUP, executor.handle)],
                   on_stop=[executor.drain])
