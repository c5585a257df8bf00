"""Node log lines of an AI step (model calls, guardrail decisions, schema repairs, tool steps).

Inside an attempt that collects engine log lines (services/executor/attempt_log.py) they are stored
with its completion, masked like the rest of it; otherwise each is appended to the node run at once.
Lines never quote prompts, answers or what a guardrail found."""

from __future__ import annotations

from collections.abc import Callable

from libs.core import engine_logs
from libs.core.run import LogLevel
from libs.store.ports import Store
from services.executor import attempt_log


class NodeLog:
    def __init__(self, store: Store, node_run_key: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.key = node_run_key
        self.clock = clock

    async def write(self, text: str, level: LogLevel = "INFO") -> None:
        entry = engine_logs.line(text, self.clock(), level)
        if attempt_log.active():
            attempt_log.add(entry)
        else:
            await self.store.append_logs(self.key, [entry], now=entry.createdAt)
