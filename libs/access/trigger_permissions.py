"""Who may start a SELF_SERVE_TRIGGER and read its runs (Port's `permissions` and
`allowAnyoneToViewRuns`), decided from the trigger node's config and the caller. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.access.principal import Principal
from libs.access.roles import at_least


def _members(permissions: Mapping[str, Any], field: str) -> set[str]:
    listed = permissions.get(field)
    return {m for m in listed if isinstance(m, str)} if isinstance(listed, list) else set()


def may_start(config: Mapping[str, Any], caller: Principal) -> bool:
    """Owners and admins always; otherwise, when `permissions` is set, a listed user or role."""
    permissions = config.get("permissions")
    if not isinstance(permissions, Mapping) or at_least(caller.role, "admin"):
        return True
    return caller.user in _members(permissions, "users") or caller.role in _members(permissions, "roles")


def may_view(config: Mapping[str, Any], caller: Principal, started_by: str | None) -> bool:
    """`allowAnyoneToViewRuns: false` keeps a run to whoever started it and editors and above."""
    if config.get("allowAnyoneToViewRuns", True) is not False:
        return True
    return at_least(caller.role, "editor") or (started_by is not None and caller.user == started_by)
