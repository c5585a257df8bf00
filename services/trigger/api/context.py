"""What every route needs (settings, store, publisher, clock, caches), held on `app.state` by `build_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, Request

from libs.access.callback_tokens import CallbackTokens
from libs.access.keystore import ApiKeys, Workspaces
from libs.access.principal import Principal
from libs.bus.publisher import Publisher
from libs.core.errors import UnauthorizedError
from libs.secrets.vault import SecretVault
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from services.trigger.authz import principal_of
from services.trigger.run_waiters import RunWaiters
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter


class AuditSink(Protocol):
    async def record(self, caller: Principal | None, action: str, target: str, details: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ApiContext:
    settings: TriggerSettings
    store: Store
    publisher: Publisher
    """The trigger's: commands to the scheduler, catalog events."""
    clock: Callable[[], float]
    definitions: DefinitionCache
    keys: ApiKeys
    workspaces: Workspaces
    waiters: RunWaiters
    """Long polls, woken by run completions (run_waiters.py)."""
    secrets: SecretVault | None = None
    """None when the service has no secrets key."""
    callbacks: CallbackTokens | None = None
    """Checks the callback tokens asynchronous WEBHOOKs hand out; None without a secrets key."""
    audit_log: AuditSink | None = None
    """Where changes and decisions are recorded (libs/audit); None only in tests of other concerns."""

    async def audit(self, caller: Principal | None, action: str, target: str,
                    details: dict[str, Any] | None = None) -> None:
        if self.audit_log is not None:
            await self.audit_log.record(caller, action, target, details or {})

    def starter(self) -> RunStarter:
        return RunStarter(self.store, self.publisher, self.definitions, self.clock, self.settings.accept_timeout_seconds,
                          self.waiters)


async def _context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


async def current_principal(request: Request) -> Principal:
    """The caller the authentication middleware verified (services/trigger/authn.py)."""
    principal = principal_of(request)
    if principal is None:
        raise UnauthorizedError("this request needs an API key")
    return principal


async def _user(request: Request) -> str:
    return (await current_principal(request)).user


async def _maybe_principal(request: Request) -> Principal | None:
    return principal_of(request)


Context = Annotated[ApiContext, Depends(_context)]
Caller = Annotated[Principal, Depends(current_principal)]
MaybeCaller = Annotated[Principal | None, Depends(_maybe_principal)]
"""None only on the routes a callback token opens (the route checks the token)."""
User = Annotated[str, Depends(_user)]
"""The `user` of the caller's API key: who started, changed or decided something."""
