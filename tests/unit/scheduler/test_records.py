"""The scheduler's pure constructors: what an ExecuteNode carries."""

from __future__ import annotations

from libs.core.run import Run, TriggerInfo
from services.scheduler import records


def run_with(outputs: dict[str, object]) -> Run:
    return Run(id="wfr_0000000000000001", workflow="wf", version=1, inputs={"n": 1}, outputs=outputs,
               trigger=TriggerInfo(type="API", node="trigger"), created_at=1.0, updated_at=1.0, check_at=1.0)


def test_the_run_context_travels_with_the_command_while_it_is_small() -> None:
    context = records.inline_context(run_with({"a": {"x": "é" * 100}}))
    assert context is not None
    assert (context.outputs, context.inputs, context.trigger["type"]) == ({"a": {"x": "é" * 100}}, {"n": 1}, "API")


def test_a_run_context_over_the_inline_limit_is_left_for_the_executor_to_load() -> None:
    just_under = "x" * (records.INLINE_OUTPUTS_MAX_BYTES - 100)
    assert records.inline_context(run_with({"a": just_under})) is not None
    assert records.inline_context(run_with({"a": just_under, "b": "y" * 200})) is None
    # measured as UTF-8: multi-byte characters count as the bytes they take
    assert records.inline_context(run_with({"a": "é" * (records.INLINE_OUTPUTS_MAX_BYTES // 2)})) is None
