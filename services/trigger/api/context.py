"""What every route needs (settings, store, bus, clock, caches), held on `app.state` by `build_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Request

from libs.bus.ports import Bus
from libs.secrets.vault import SecretVault
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter

USER_HEADER = "X-Stepline-User"


@dataclass(frozen=True)
class ApiContext:
    settings: TriggerSettings
    store: Store
    bus: Bus
    clock: Callable[[], float]
    definitions: DefinitionCache
    secrets: SecretVault | None = None
    """None when the service has no secrets key."""

    def starter(self) -> RunStarter:
        return RunStarter(self.store, self.bus, self.definitions, self.clock, self.settings.accept_timeout_seconds)


def _context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


def _user(x_stepline_user: Annotated[str | None, Header(max_length=200)] = None) -> str | None:
    """Who is calling (`X-Stepline-User`); authentication proper is not part of this service yet."""
    return x_stepline_user or None


Context = Annotated[ApiContext, Depends(_context)]
User = Annotated[str | None, Depends(_user)]
