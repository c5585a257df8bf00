"""Embedded mode: trigger, scheduler, executor and notifier as tasks in one process, over the
in-memory bus and an SQLite store. `Engine` is also what tests and the benchmark drive."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from libs.access.bootstrap import KEY_FILE, bootstrap, read_key_file
from libs.bus.memory import MemoryBus
from libs.core.errors import ConflictError, DefinitionError
from libs.core.validation import parse_workflow
from libs.core.versioning import WorkflowRecord
from libs.expressions import evaluate as expressions
from libs.runtime import event_loop, heap
from libs.runtime.egress import guarded_client
from libs.runtime.runner import server_config
from libs.runtime.service import Service
from libs.secrets.keyfile import configured_or_stored_key
from libs.store.sqlite import SqliteStore
from services.executor.app import build_executor
from services.notifier.app import build_notifier
from services.notifier.handlers import Notifier
from services.scheduler.app import build_scheduler
from services.trigger.app import build_app
from services.trigger.run_waiters import RunWaiters
from services.trigger.workers import build_trigger_workers
from stepline.settings import EmbeddedSettings

log = logging.getLogger("stepline")


class Engine:
    def __init__(self, settings: EmbeddedSettings, *, clock: Callable[[], float] = time.time) -> None:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)  # it holds the database and the keys: the owner's alone
        if not settings.secrets_key:  # generated once into <data_dir>/secrets.key, then reused
            settings = settings.model_copy(update={"secrets_key": configured_or_stored_key("", settings.data_dir)})
        settings = settings.model_copy(update={"api_url": settings.own_api_url()})  # `.run.apiUrl`
        self.settings = settings
        expressions.configure(settings.expression_limits())
        self.clock = clock
        self.store = SqliteStore(settings.sqlite_path(), commit_window=settings.sqlite_commit_window_ms / 1000)
        self.bus = MemoryBus(partitions=settings.partitions)
        self.client = guarded_client(settings.egress_policy())
        self.services: list[Service] = []
        self.notifier: Notifier | None = None
        self.waiters = RunWaiters(limit=settings.max_waiters)
        self.app: FastAPI = build_app(settings, self.store, self.bus, clock=clock, waiters=self.waiters)

    @property
    def admin_key_path(self) -> Path:
        return self.settings.data_dir / KEY_FILE

    @property
    def admin_key(self) -> str | None:
        """The bootstrap owner key, when this data directory holds it."""
        return read_key_file(self.admin_key_path)

    async def start(self) -> None:
        await self.store.open()
        await bootstrap(self.store, self.settings.data_dir, now=self.clock())
        s = self.settings
        notifier_service, self.notifier = build_notifier(s, self.store, self.bus, self.client)
        self.services = [
            build_scheduler(s, self.store, self.bus, clock=self.clock),
            build_executor(s, self.store, self.bus, self.client, clock=self.clock),
            notifier_service,
            build_trigger_workers(s, self.store, self.bus, clock=self.clock, waiters=self.waiters),
        ]
        for service in self.services:
            service.register(self.bus)
        await self.bus.start()
        for service in self.services:
            service.start_loops()

    async def stop(self) -> None:
        """Graceful: stop consuming, finish in-flight attempts, stop sweepers, close."""
        await self.bus.stop()
        for service in self.services:
            await service.finish()
            await service.stop_loops()
        await self.client.aclose()
        expressions.shutdown()
        await self.store.close()

    async def load_examples(self, directory: Path) -> list[str]:
        """Create every `*.json` workflow in `directory` that does not exist yet."""
        loaded = []
        for path in sorted(directory.glob("*.json")):
            try:
                workflow = parse_workflow(json.loads(path.read_text()))
            except (ValueError, DefinitionError) as exc:
                log.warning("skipping example %s: %s", path.name, exc)
                continue
            record = WorkflowRecord(identifier=workflow.identifier, title=workflow.title,
                                    description=workflow.description, created_at=self.clock(),
                                    updated_at=self.clock(), created_by="examples")
            try:
                await self.store.create_workflow(record, workflow.model_dump(mode="json", exclude_none=True))
                loaded.append(workflow.identifier)
            except ConflictError:
                continue
        return loaded


async def serve(settings: EmbeddedSettings, *, examples: Path | None = None) -> None:
    """Run the engine behind uvicorn until SIGINT/SIGTERM, then shut down gracefully."""
    engine = Engine(settings)
    await engine.start()
    try:
        if examples is not None:
            names = await engine.load_examples(examples)
            if names:
                log.info("loaded examples: %s", ", ".join(names))
        server = uvicorn.Server(server_config(engine.app, settings.host, settings.port))
        heap.settle()
        _exit_on_signals(server)
        print(f"Stepline is up at http://{settings.host}:{settings.port} (data in {settings.data_dir}; "
              f"owner API key in {engine.admin_key_path})", flush=True)
        await server.serve()
    finally:
        await engine.stop()


def _exit_on_signals(server: uvicorn.Server) -> None:
    """SIGTERM/SIGINT end `server.serve()` and then the engine stops gracefully. uvicorn re-raises the
    signal after serving; without a handler of ours the default action would kill the process
    before `engine.stop()` finished in-flight work."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))


def run(settings: EmbeddedSettings, *, examples: Path | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO; a query string may carry credentials.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    event_loop.run(serve(settings, examples=examples))
