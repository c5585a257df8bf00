"""Workspaces as a scope on identifiers. Every workflow, secret, entity and run belongs to one
workspace; the store keys of the `default` workspace are the plain identifiers (so data written
before workspaces existed is the default workspace's), and another workspace's keys are
`<workspace>~<identifier>`. `~` is allowed in no workflow, secret or entity identifier, so scoped
keys of two workspaces never collide. Pure, importing nothing of the project: core, contracts and
access all read it."""

from __future__ import annotations

import re
from typing import Final

DEFAULT_WORKSPACE: Final = "default"
SEPARATOR: Final = "~"
WORKSPACE_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_WORKSPACE = re.compile(WORKSPACE_PATTERN)


def is_valid_workspace(identifier: str) -> bool:
    return bool(_WORKSPACE.match(identifier))


def scoped(workspace: str, identifier: str) -> str:
    """The store key of `identifier` in `workspace`."""
    return identifier if workspace == DEFAULT_WORKSPACE else f"{workspace}{SEPARATOR}{identifier}"


def split(key: str) -> tuple[str, str]:
    """A store key → (workspace, identifier)."""
    workspace, separator, identifier = key.partition(SEPARATOR)
    return (workspace, identifier) if separator else (DEFAULT_WORKSPACE, key)


def workspace_of(key: str) -> str:
    return split(key)[0]


def public(key: str) -> str:
    """The identifier a user of the key's workspace knows it by."""
    return split(key)[1]


def belongs_to(key: str, workspace: str) -> bool:
    return workspace_of(key) == workspace
