"""What a saved decision sets off, collected in one value (pure).

`Effects.of` turns the planner's `Decision` (plus the records a start adds: the firing trigger's
completed node run) into the node runs to insert, the node runs to drive, the timers to store and
arm, and whether the run completed. `Scheduler.carry_out` is the one place that carries them out,
in one fixed order for every path (docs/architecture.md, "Effects"):

1. node runs inserted (insert-if-absent: the records a start adds, then each dispatched attempt);
2. timers stored (retry backoff, waiting-node timeouts);
3. the run's outbox relayed (its events, `run.started` first on a start);
4. each dispatched attempt driven (ExecuteNode, or its stored result when it is already further);
5. timers armed in this process;
6. a completed run's parent node, child runs and concurrency slot told.

Storing before publishing means nothing a message sets off finds its record missing; relaying
before driving means nothing the decision sets off can load the run before its events are out.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.core import planner
from libs.core.definition import Workflow
from libs.core.run import NodeRun, Run, node_run_key
from libs.store.ports import Timer
from services.scheduler import records


@dataclass(frozen=True)
class Effects:
    completed_records: tuple[NodeRun, ...] = ()
    """Node runs that are finished when written (a start's trigger node run)."""
    dispatched: tuple[NodeRun, ...] = ()
    """Attempts the decision starts: inserted, then driven."""
    timers: tuple[Timer, ...] = ()
    run_completed: bool = False
    """Also: the outbox is emptied once relayed (no later write of the run would drop its entries)."""

    @classmethod
    def of(cls, workflow: Workflow, run: Run, decision: planner.Decision, now: float, *,
           completed_records: tuple[NodeRun, ...] = ()) -> Effects:
        """The effects of `decision`, saved as `run`."""
        dispatched = tuple(records.new_node_run(workflow, run, d.node_id, d.attempt, now) for d in decision.dispatch)
        timers = (*(retry_timer(run.id, t) for t in decision.timers),
                  *(timeout_timer(run.id, t) for t in decision.timeouts))
        return cls(completed_records, dispatched, timers, decision.run_completed)


def retry_timer(run_id: str, t: planner.RetryTimer) -> Timer:
    return Timer(id=f"retry:{node_run_key(run_id, t.node_id, t.attempt)}", run_id=run_id, kind="retry",
                 due_at=t.due_at, payload={"node_id": t.node_id, "attempt": t.attempt})


def timeout_timer(run_id: str, t: planner.TimeoutTimer) -> Timer:
    key = node_run_key(run_id, t.node_id, t.attempt)
    return Timer(id=f"timeout:{key}", run_id=run_id, kind="timeout", due_at=t.due_at,
                 payload={"node_run_key": key, "seconds": t.seconds})
