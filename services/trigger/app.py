"""The trigger service's HTTP API. `build_app` wires routers, error mapping and the body limit around
the given store and bus; it never reads the environment (settings are built in `__main__`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from libs.access.callback_tokens import CallbackTokens
from libs.access.keystore import ApiKeys, Workspaces
from libs.audit.log import AuditLog
from libs.audit.publishing import bus_publisher
from libs.bus.ports import Bus
from libs.bus.publisher import Publisher
from libs.secrets.vault import open_vault
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from services.trigger.api import (
    access,
    agents,
    ai_providers,
    approvals,
    audit,
    catalog,
    control,
    health,
    hooks,
    human_inputs,
    integrations,
    metrics,
    node_permissions,
    node_runs,
    prometheus,
    runs,
    secrets,
    workflows,
)
from services.trigger.api.context import ApiContext
from services.trigger.authn import AuthenticationMiddleware
from services.trigger.authz import authorize, check_routes
from services.trigger.body_limit import BodyLimitMiddleware
from services.trigger.browser_guard import BrowserGuardMiddleware, allowed_host_names
from services.trigger.durable_answers import DurableAnswersMiddleware
from services.trigger.errors import install_error_handlers
from services.trigger.http_hygiene import HttpHygieneMiddleware
from services.trigger.publishing import SOURCE
from services.trigger.responses import ApiJSONResponse
from services.trigger.run_waiters import RunWaiters
from services.trigger.settings import TriggerSettings

DESCRIPTION = "Port-compatible workflow API of Stepline. Errors are `{ok: false, error, message, details}`."


ROUTERS: tuple[APIRouter, ...] = (
    health.router, secrets.router, hooks.router, catalog.router, access.keys_router, access.workspaces_router,
    audit.router,
    # `/v1/workflows/runs...` must be matched before `/v1/workflows/{workflow_id}...`.
    runs.router, control.runs_router, node_runs.router, approvals.router, workflows.router,
    control.workflows_router, metrics.router, integrations.router, prometheus.router, human_inputs.router,
    agents.agents_router, agents.mcp_router, node_permissions.router, ai_providers.router,
)


def build_app(settings: TriggerSettings, store: Store, bus: Bus, *,
              clock: Callable[[], float] = time.time, waiters: RunWaiters | None = None) -> FastAPI:
    """`waiters` is what the trigger workers feed with run completions (build_trigger_workers); without
    it long polls re-read the run every second."""
    app = FastAPI(title="Stepline", version="1", description=DESCRIPTION,
                  default_response_class=ApiJSONResponse, dependencies=[Depends(authorize)],
                  redirect_slashes=False, docs_url="/docs" if settings.api_docs else None, redoc_url=None)
    app.state.secrets = open_vault(store, settings.secrets_key)  # None without a key: secrets answer 409
    keys = ApiKeys(store, clock=clock)
    publisher = Publisher(bus, SOURCE)
    app.state.context = ApiContext(settings=settings, store=store, publisher=publisher, clock=clock,
                                   definitions=DefinitionCache(store), keys=keys,
                                   waiters=waiters or RunWaiters(limit=settings.max_waiters),
                                   workspaces=Workspaces(store, clock=clock), secrets=app.state.secrets,
                                   callbacks=CallbackTokens.from_setting(settings.secrets_key),
                                   audit_log=AuditLog(store, clock=clock, publish=bus_publisher(publisher)))
    for router in ROUTERS:
        app.include_router(router)
    check_routes(route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute))
    install_error_handlers(app)
    app.add_middleware(AuthenticationMiddleware, keys=keys)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(BrowserGuardMiddleware,  # outermost: Host and Content-Type before anything reads the body
                       allowed_hosts=allowed_host_names(settings.allowed_hosts, settings.host))
    app.add_middleware(DurableAnswersMiddleware, store=store)  # no answer leaves before the writes it reports
    app.add_middleware(HttpHygieneMiddleware)  # around everything: the guards' refusals get its headers too
    return app
