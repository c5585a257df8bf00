"""Who may start a SELF_SERVE_TRIGGER and read its runs (Port's `permissions` and
`allowAnyoneToViewRuns`), decided from the trigger node's config and the caller. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.access.principal import Principal
from libs.access.roles import at_least
from libs.core.permission_policy import matches


def _members(permissions: Mapping[str, Any], field: str) -> set[str]:
    listed = permissions.get(field)
    return {m for m in listed if isinstance(m, str)} if isinstance(listed, list) else set()


def may_start(config: Mapping[str, Any], caller: Principal, form: Mapping[str, Any] | None = None) -> bool:
    """Owners and admins always; otherwise, when `permissions` is set, a listed user or role, or (Port's
    order: only when neither matches) a caller the `policy` admits, its `form` rules reading `form`."""
    permissions = config.get("permissions")
    if not isinstance(permissions, Mapping) or at_least(caller.role, "admin"):
        return True
    if caller.user in _members(permissions, "users") or caller.role in _members(permissions, "roles"):
        return True
    policy = permissions.get("policy")
    return isinstance(policy, Mapping) and matches(policy, policy_contexts(caller, form or {}))


def has_policy(config: Mapping[str, Any]) -> bool:
    permissions = config.get("permissions")
    return isinstance(permissions, Mapping) and isinstance(permissions.get("policy"), Mapping)


def policy_contexts(caller: Principal, form: Mapping[str, Any]) -> dict[str, Any]:
    """What a policy's rules read: the caller as `user`, no `userTeams` (Stepline has no teams), the
    run's inputs as `form`."""
    return {"user": {"$identifier": caller.user, "email": caller.user, "role": caller.role},
            "userTeams": [], "form": dict(form)}


def may_view(config: Mapping[str, Any], caller: Principal, started_by: str | None) -> bool:
    """`allowAnyoneToViewRuns: false` keeps a run to whoever started it and editors and above."""
    if config.get("allowAnyoneToViewRuns", True) is not False:
        return True
    return at_least(caller.role, "editor") or (started_by is not None and caller.user == started_by)
