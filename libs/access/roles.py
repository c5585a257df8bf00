"""What each role may do: actions named once, granted per role. Pure.

A route names the one action it needs (services/trigger/authz.py); a role either holds it or the
route answers 403 naming the action."""

from __future__ import annotations

from typing import Final, Literal

from libs.access.principal import Role

Action = Literal[
    "workflow.read", "workflow.write", "run.read", "run.start", "run.control", "node.complete",
    "approval.decide", "catalog.read", "catalog.write", "secret.read", "secret.write", "apikey.manage",
    "audit.read", "workspace.read", "workspace.manage",
]

_VIEWER: Final[frozenset[Action]] = frozenset({
    "workflow.read", "run.read", "catalog.read", "approval.decide", "workspace.read"})
_RUNNER: Final[frozenset[Action]] = _VIEWER | frozenset[Action]({"run.start"})
_EDITOR: Final[frozenset[Action]] = _RUNNER | frozenset[Action]({
    "workflow.write", "run.control", "node.complete", "catalog.write"})
_ADMIN: Final[frozenset[Action]] = _EDITOR | frozenset[Action]({
    "secret.read", "secret.write", "apikey.manage", "audit.read"})
_OWNER: Final[frozenset[Action]] = _ADMIN | frozenset[Action]({"workspace.manage"})

GRANTS: Final[dict[Role, frozenset[Action]]] = {
    "viewer": _VIEWER, "runner": _RUNNER, "editor": _EDITOR, "admin": _ADMIN, "owner": _OWNER}
RANK: Final[dict[Role, int]] = {"viewer": 0, "runner": 1, "editor": 2, "admin": 3, "owner": 4}


def allows(role: Role, action: Action) -> bool:
    return action in GRANTS[role]


def at_least(role: Role, minimum: Role) -> bool:
    return RANK[role] >= RANK[minimum]


def may_grant(granter: Role, granted: Role) -> bool:
    """An owner creates keys of any role; an admin keys up to admin (never owner)."""
    return granter == "owner" or (granter == "admin" and granted != "owner")
