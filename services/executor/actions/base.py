"""The Action port: perform one node attempt. Actions are the executor's only I/O with the outside.

An action returns an `ActionResult` or raises `ActionError` (with `retryable` and any partial
`output`); everything else it raises is treated as a retryable failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from libs.core.definition import Node


@dataclass(frozen=True)
class ActionInput:
    """One input object per attempt (rendered config, template context and identity)."""

    node: Node
    config: dict[str, Any]
    """The node's config with every `{{ }}` template rendered."""
    context: dict[str, Any]
    """The template context (`.outputs`, `.inputs`, `.secrets`, `.trigger`, `.run`)."""
    run_id: str
    node_run_id: str
    node_run_key: str
    attempt: int
    timeout: float
    at: str = ""
    """The node's JSON pointer in its definition (`/nodes/3`): expression errors name fields under it."""


@dataclass(frozen=True)
class ActionResult:
    output: Any = None
    waiting: bool = False
    """The action started something that will complete the node later (PATCH, approval)."""
    branch: str | None = None


class Action(Protocol):
    async def execute(self, data: ActionInput) -> ActionResult: ...
