"""Secrets seen from one workspace. A node attempt runs inside `in_workspace(<its run's workspace>)`
and reads secrets through `WorkspaceSecrets`, which turns the names a definition uses into that
workspace's store keys: a workflow never reads another workspace's secret, and never learns its name."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from libs.core.workspaces import DEFAULT_WORKSPACE, belongs_to, public, scoped

_workspace: contextvars.ContextVar[str] = contextvars.ContextVar("stepline_workspace", default=DEFAULT_WORKSPACE)


@contextlib.contextmanager
def in_workspace(workspace: str) -> Iterator[None]:
    token = _workspace.set(workspace)
    try:
        yield
    finally:
        _workspace.reset(token)


def current_workspace() -> str:
    return _workspace.get()


class NamedSecrets(Protocol):
    async def reveal(self, name: str) -> str | None: ...

    async def names(self) -> list[str]: ...


class WorkspaceSecrets:
    def __init__(self, reader: NamedSecrets) -> None:
        self._reader = reader

    async def reveal(self, name: str) -> str | None:
        return await self._reader.reveal(scoped(current_workspace(), name))

    async def names(self) -> list[str]:
        workspace = current_workspace()
        return [public(n) for n in await self._reader.names() if belongs_to(n, workspace)]


def scoped_names(names: Callable[[], Awaitable[list[str]]]) -> Callable[[], Awaitable[list[str]]]:
    """A `names` source limited to the current workspace."""
    async def listed() -> list[str]:
        workspace = current_workspace()
        return [public(n) for n in await names() if belongs_to(n, workspace)]
    return listed
