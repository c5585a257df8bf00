"""Child runs of SUB_WORKFLOW and FOREACH (`workflowIdentifier`) nodes, as pure state.

A waiting parent node run owns one `ChildBatch` (an EntryStore entry of kind `child-runs`, keyed by
the parent node run key): the child workflow and version, each child's inputs, how many children
have been started (in item order), and each finished child's outcome. Child run ids are derived
from the parent node run key and the item index, so starting a child twice starts one run. Every
change is a compare-and-set of the entry, so children finishing on different partitions, and the
parent's own reconciliation, never lose each other's updates.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.core.run import Run, derived_id
from libs.core.versioning import resolve_version

__all__ = ["resolve_version"]

KIND = "child-runs"
CHILD_TRIGGER_TYPE = "SUB_WORKFLOW"


def child_run_id(parent_node_run_key: str, index: int) -> str:
    return derived_id("wfr_", f"{parent_node_run_key}/child/{index}")


def child_outcome(run: Run) -> dict[str, Any]:
    """What a finished child contributes to its parent's output."""
    outcome: dict[str, Any] = {"runId": run.id, "result": run.result or "FAILED", "outputs": run.outputs}
    if run.result != "SUCCESS":
        outcome["error"] = run.error or f"ended {run.result}"
    return outcome


class ChildBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    parent_run_id: str
    parent_node_run_key: str
    mode: Literal["single", "each"]
    """`single`: a SUB_WORKFLOW (output is the child's outcome); `each`: a FOREACH (`{results}`)."""
    workflow: str
    version: int
    trigger_node: str
    depth: int
    """The children's depth (the parent run's depth + 1)."""
    by: str | None = None
    inputs: list[dict[str, Any]]
    concurrency: int = 1
    started: int = 0
    """Children 0 .. started-1 have been started (their StartRun published at least once)."""
    results: list[dict[str, Any] | None] = Field(default_factory=list)

    @classmethod
    def new(cls, **fields: Any) -> ChildBatch:
        batch = cls(**fields)
        return batch.model_copy(update={"results": [None] * len(batch.inputs)})

    @property
    def total(self) -> int:
        return len(self.inputs)

    def child_id(self, index: int) -> str:
        return child_run_id(self.parent_node_run_key, index)

    def index_of(self, run_id: str) -> int | None:
        for index in range(self.started):
            if self.child_id(index) == run_id:
                return index
        return None

    def running(self) -> list[int]:
        """Started children whose outcome is not recorded yet."""
        return [i for i in range(self.started) if self.results[i] is None]

    def failed_index(self) -> int | None:
        for index, outcome in enumerate(self.results):
            if outcome is not None and outcome.get("result") != "SUCCESS":
                return index
        return None

    def record(self, index: int, outcome: dict[str, Any]) -> ChildBatch:
        """The batch with child `index` finished (unchanged if it was recorded already)."""
        if self.results[index] is not None:
            return self
        results = list(self.results)
        results[index] = outcome
        return self.model_copy(update={"results": results})

    def fill(self) -> tuple[ChildBatch, list[int]]:
        """Start children while fewer than `concurrency` run; none after a child failed."""
        if self.failed_index() is not None:
            return self, []
        room = self.concurrency - len(self.running())
        upto = min(self.total, self.started + max(0, room))
        if upto <= self.started:
            return self, []
        return self.model_copy(update={"started": upto}), list(range(self.started, upto))

    @property
    def finished(self) -> bool:
        """Every started child has finished, and either every item was started or one failed."""
        if self.running():
            return False
        return self.started == self.total or self.failed_index() is not None

    def completion(self) -> tuple[Literal["SUCCESS", "FAILED"], dict[str, Any]]:
        """The parent node's result and output once `finished`. A failure's output carries
        `error.message` (the scheduler's completion takes the node's error from it)."""
        failed = self.failed_index()
        if self.mode == "single":
            outcome = dict(self.results[0] or {})
            error = outcome.pop("error", None)
            if failed is None:
                return "SUCCESS", outcome
            message = f"child run {outcome.get('runId')} of workflow {self.workflow!r} ended {outcome.get('result')}: {error}"
            return "FAILED", {**outcome, "error": {"message": message}}
        results = [None if r is None else {k: v for k, v in r.items() if k != "error"} for r in self.results]
        if failed is None:
            return "SUCCESS", {"results": results}
        bad = self.results[failed] or {}
        message = (f"item {failed} failed: child run {bad.get('runId')} of workflow {self.workflow!r} "
                   f"ended {bad.get('result')}: {bad.get('error')}")
        return "FAILED", {"results": results, "error": {"message": message}}
