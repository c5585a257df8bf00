"""Who is calling: the identity an API key stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from libs.core.workspaces import DEFAULT_WORKSPACE

Role = Literal["owner", "admin", "editor", "runner", "viewer"]
ROLES: Final[tuple[Role, ...]] = ("owner", "admin", "editor", "runner", "viewer")


@dataclass(frozen=True)
class Principal:
    """The caller behind a verified API key: its key id, the `user` it acts as, its role and the
    workspace every object it touches belongs to."""

    key_id: str
    user: str
    role: Role
    workspace: str = DEFAULT_WORKSPACE
