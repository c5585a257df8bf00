"""The node-run statuses each finisher may complete from are named once next to the state machine,
and each is a move the state machine allows."""

from __future__ import annotations

import pytest

from libs.core import run
from libs.core.run import can_move_node_run

FINISHERS = {name: getattr(run, name) for name in dir(run)
             if name.startswith("FINISHED_BY_") or name == "FINISHED_FROM_OUTSIDE"}


def test_there_are_five_finishers() -> None:
    assert sorted(FINISHERS) == ["FINISHED_BY_CANCEL", "FINISHED_BY_EXECUTOR", "FINISHED_BY_TIMEOUT",
                                 "FINISHED_BY_TIMER", "FINISHED_FROM_OUTSIDE"]


@pytest.mark.parametrize("name", sorted(FINISHERS))
def test_every_finisher_completes_only_from_statuses_that_may_complete(name: str) -> None:
    statuses = FINISHERS[name]
    assert statuses and all(can_move_node_run(status, "COMPLETED") for status in statuses)
    assert "COMPLETED" not in statuses


def test_only_the_executor_and_outside_completions_finish_a_running_attempt_a_cancel_does_not() -> None:
    assert "RUNNING" not in run.FINISHED_BY_CANCEL and "RUNNING" not in run.FINISHED_BY_TIMER
    assert run.FINISHED_BY_EXECUTOR == {"RUNNING"}
