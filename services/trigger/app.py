"""The trigger service's HTTP API. `build_app` wires routers, error mapping and the body limit around
the given store and bus; it never reads the environment (settings are built in `__main__`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI

from libs.bus.ports import Bus
from libs.store.definitions import DefinitionCache
from libs.secrets.vault import open_vault
from libs.store.ports import Store
from services.trigger.api import approvals, catalog, control, health, hooks, node_runs, runs, secrets, workflows
from services.trigger.api.context import ApiContext
from services.trigger.body_limit import BodyLimitMiddleware
from services.trigger.errors import install_error_handlers
from services.trigger.responses import ApiJSONResponse
from services.trigger.settings import TriggerSettings

DESCRIPTION = "Port-compatible workflow API of Stepline. Errors are `{ok: false, error, message, details}`."


def build_app(settings: TriggerSettings, store: Store, bus: Bus, *,
              clock: Callable[[], float] = time.time) -> FastAPI:
    app = FastAPI(title="Stepline", version="1", description=DESCRIPTION,
                  default_response_class=ApiJSONResponse)
    app.state.secrets = open_vault(store, settings.secrets_key)  # None without a key: secrets answer 409
    app.state.context = ApiContext(settings=settings, store=store, bus=bus, clock=clock,
                                   definitions=DefinitionCache(store), secrets=app.state.secrets)
    app.include_router(health.router)
    app.include_router(secrets.router)
    app.include_router(hooks.router)
    app.include_router(catalog.router)
    # `/v1/workflows/runs...` must be matched before `/v1/workflows/{workflow_id}...`.
    app.include_router(runs.router)
    app.include_router(control.runs_router)
    app.include_router(node_runs.router)
    app.include_router(approvals.router)
    app.include_router(workflows.router)
    app.include_router(control.workflows_router)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
