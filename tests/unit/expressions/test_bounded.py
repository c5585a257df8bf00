"""The bounded evaluator: pathological expressions breach a deadline or a memory cap with an error
naming the field, the event loop keeps running meanwhile, and the pool recovers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from libs.core.errors import TemplateError
from libs.core.jq_bounds import is_bounded, within_budget
from libs.core.templates import context_json, run_text
from libs.expressions import evaluate as expressions
from libs.expressions.evaluate import ExpressionLimitError
from libs.expressions.limits import MIB, Limits
from libs.telemetry import metrics

AT = "/nodes/3/config/expression"


@pytest.fixture(autouse=True)
def short_limits() -> Iterator[Limits]:
    before = expressions.limits()
    limits = Limits(timeout=0.5, memory_bytes=64 * MIB, workers=2, regex_input=1000)
    expressions.configure(limits)
    yield limits
    expressions.configure(before)


@pytest.mark.parametrize("expression", ["def f: f; f", "[range(1e9)] | length",
                                        "[limit(1e8; repeat(1))] | length", "last(range(1e12))"])
async def test_a_runaway_expression_fails_naming_its_field(expression: str) -> None:
    with pytest.raises(ExpressionLimitError) as caught:
        await expressions.evaluate(expression, {"a": 1}, at=AT)
    assert caught.value.retryable is False
    assert str(caught.value) in (f"expression at {AT} exceeded 0.5 s",
                                 f"expression at {AT} exceeded the memory limit of 64 MiB")


@pytest.mark.parametrize("expression", ['"x" * 1e9 | length', "[range(1e8)] | length"])
async def test_an_expression_that_allocates_too_much_fails_on_memory(expression: str) -> None:
    expressions.configure(Limits(timeout=30, memory_bytes=64 * MIB))
    with pytest.raises(ExpressionLimitError, match=f"^expression at {AT} exceeded the memory limit of 64 MiB$"):
        await expressions.evaluate(expression, None, at=AT)


async def test_each_breach_is_counted_by_kind_for_prometheus() -> None:
    timeouts = metrics.EXPRESSION_BREACHES.labels("timeout")
    before = timeouts._value.get()
    for _ in range(2):
        with pytest.raises(ExpressionLimitError):
            await expressions.evaluate("def f: f; f", None, at=AT)
    assert timeouts._value.get() == before + 2


async def test_the_pool_answers_after_a_breach() -> None:
    for _ in range(2):
        with pytest.raises(ExpressionLimitError):
            await expressions.evaluate("def f: f; f", None, at=AT)
        assert await expressions.evaluate("[.a[] * 2]", {"a": [1, 2]}, at=AT) == [2, 4]


async def test_the_event_loop_runs_while_an_expression_runs_away() -> None:
    bad = asyncio.create_task(expressions.evaluate("def f: f; f", None, at=AT))
    good = asyncio.create_task(expressions.evaluate("[.a[] | . + 1]", {"a": [1]}, at="/nodes/1/config"))
    done, _ = await asyncio.wait({bad, good}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {good} and good.result() == [2]
    with pytest.raises(ExpressionLimitError):
        await bad


async def test_a_render_names_the_template_that_breached() -> None:
    config = {"url": "http://h/{{ .id }}", "body": {"x": "{{ [.ids[] | .] }}", "y": "{{ def f: f; f }}"}}
    with pytest.raises(ExpressionLimitError, match="^expression at /nodes/2/config/body/y exceeded 0.5 s$"):
        await expressions.render(config, {"id": 1, "ids": [1]}, at="/nodes/2/config")


async def test_variables_name_their_pointer() -> None:
    with pytest.raises(ExpressionLimitError, match="^expression at /nodes/4/variables/v exceeded"):
        await expressions.apply_variables({"v": "{{ [range(1e9)] }}"}, {}, at="/nodes/4/variables")


async def test_a_cancelled_evaluation_leaves_a_working_pool() -> None:
    task = asyncio.create_task(expressions.evaluate("def f: f; f", None, at=AT))
    await asyncio.sleep(0)  # let it reach the worker
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await expressions.evaluate("[.[] | tostring]", [1], at=AT) == ["1"]


async def test_regex_builtins_refuse_long_input() -> None:
    assert await expressions.evaluate('.s | test("b")', {"s": "abc"}, at=AT) is True
    for builtin in ['test("a")', 'match("a").offset', 'sub("a"; "b")', 'gsub("a"; "b")', '[scan("a")]',
                    'capture("(?<x>a)")', '[splits("a")]', 'split("a"; null)', '_match_impl("a"; null; true)']:
        with pytest.raises(TemplateError, match="regex input is longer than 1000 characters"):
            await expressions.evaluate(f".s | {builtin}", {"s": "a" * 1001}, at=AT)


async def test_ordinary_errors_stay_template_errors_with_secrets_redacted() -> None:
    context = {"secrets": {"t": "hunter2-secret"}, "a": "hunter2-secret"}
    with pytest.raises(TemplateError) as caught:
        await expressions.evaluate("[.a[] | .]", context, at=AT)
    assert not isinstance(caught.value, ExpressionLimitError)
    assert "hunter2-secret" not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("expression", [
    "{step: 1, n: .inputs.n}", ".outputs.trigger.x", ".a?.b // \"none\"", "[.a, .b] | length",
    "if .a then \"x\" elif .b then 1 else null end", ".a | map(.x + 1) | sort", "{(.k): .v}",
    ".a[.i]", ".a[0:2]", "length == 2 and has(\"a\")", "@base64", ". // []", "to_entries | from_entries",
    ".outputs.a.a * 2", ".n - 1", "1000 / .ms", ".n % 7", "2 * .s", ".s * 8 * 8", ".a-1",
])
def test_cheap_expressions_run_in_process(expression: str) -> None:
    assert is_bounded(expression)


@pytest.mark.parametrize("expression", [
    "def f: f; f", "[range(1e9)]", "[limit(1e8; repeat(1))]", ".a[]", ".[]?", "..", ".a, .b", "{a: (.x, .y)}",
    ".a[.b, .c]", '"x" * 1e9', ".a - .b", ".a / .b", '.a | test("x")', '"\\(.a)"', "$ENV", "reduce .[] as $x (0; .)",
    ".a |= 1", "first(.a[])", "map(.[])", "x" * 600, ".s * 65", ".s * 8 * 9", ".s * .n", "2 * 1e9 * .s", "-.a",
    ".a - [1]", ".a *= 2",
])
def test_everything_else_runs_in_a_worker(expression: str) -> None:
    assert not is_bounded(expression)


def test_a_large_context_or_batch_runs_in_a_worker() -> None:
    assert within_budget([".a"], 64 * 1024)
    assert not within_budget([".a"], 64 * 1024 + 1)
    assert not within_budget([".a" * 100] * 30, 10)


CONTEXT: dict[str, Any] = {"a": [{"x": 1}, {"x": 2}], "b": None, "k": "key", "v": [1], "i": 1, "inputs": {"n": 3}}


@pytest.mark.parametrize("expression", ["{step: 1, n: .inputs.n}", ".a | map(.x + 1)", "{(.k): .v}", ".a[.i]",
                                        ".b.c", ".k | ascii_upcase", ".a | length > 1", '.k | error("no " + .)',
                                        ".k * 3", ".i - 1", "10 / .i", ".a * 2", ".v - 1"])
async def test_in_process_and_worker_results_agree(expression: str) -> None:
    text = context_json(CONTEXT)
    [local] = run_text([expression], text)
    pooled = await expressions._pooled([expression], text, {expression: AT})  # noqa: SLF001 - the worker path
    assert pooled == [local]


def test_checking_syntax_does_not_fold_a_huge_constant() -> None:
    """jq folds `"a" * 1e10` while compiling; the syntax check must not (under a 512 MiB cap)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20)); "
            "from libs.core.templates import check_syntax, syntax_error; "
            "check_syntax('\"a\" * 1e10 | length'); print(syntax_error('\"a\" * '))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "syntax error" in done.stdout


async def test_a_huge_result_is_an_error_not_a_huge_reply() -> None:
    expressions.configure(Limits(timeout=30, memory_bytes=256 * MIB))
    with pytest.raises(TemplateError, match="larger than 16 MiB of JSON") as caught:
        await expressions.evaluate('[range(1e5) | "x" * 200]', None, at=AT)
    assert not isinstance(caught.value, ExpressionLimitError)
