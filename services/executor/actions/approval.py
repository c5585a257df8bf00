"""APPROVAL: record what is awaited and wait for a person's decision.

The node waits with output `{assignees, message, deadline, onTimeout}` (so the run shows what it
waits for, and the API can check who may decide); `POST .../nodes/{node}/approval` completes it, and
the scheduler's `approval-sla` timer times it out at `deadline` when `slaSeconds` is set.
"""

from __future__ import annotations

from collections.abc import Callable

from libs.core.errors import ActionError
from libs.core.instants import to_iso
from libs.core.templates import as_text
from services.executor.actions.base import ActionInput, ActionResult
from services.executor.actions.values import describe


class ApprovalAction:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    async def execute(self, data: ActionInput) -> ActionResult:
        cfg = data.config
        assignees = cfg.get("assignees")
        if isinstance(assignees, str):
            assignees = [assignees]
        if (not isinstance(assignees, list) or not assignees
                or not all(isinstance(a, str) and a.strip() for a in assignees)):
            raise ActionError(f"config.assignees must render to a non-empty list of user names, got {describe(assignees)}")
        sla = cfg.get("slaSeconds")
        deadline = to_iso(self.clock() + float(sla)) if isinstance(sla, (int, float)) and sla > 0 else None
        request = {"assignees": assignees, "message": as_text(cfg.get("message")), "deadline": deadline,
                   "onTimeout": cfg.get("onTimeout") or "fail"}
        return ActionResult(output=request, waiting=True)
