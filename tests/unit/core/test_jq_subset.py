"""jq's subset in Python (libs/core/jq_subset.py) answers exactly as jq does, or leaves it to jq."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from libs.core.jq_subset import EXACT, Unsupported, compile_subset
from libs.core.templates import Failure, context_json, run_text
from libs.expressions import evaluate as expressions

KEYS = ("a", "b", "n", "é")
SCALARS: tuple[Any, ...] = (0, 1, 7, -3, EXACT - 1, "", "s", "é", "x y", True, False, None)
RARE: tuple[Any, ...] = (EXACT, 2 ** 70, 0.5, 1.0, 1e16, -0.0, "\ud800")
"""Values jq may give back otherwise: the subset must leave them to jq."""


def value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.5:
        return rng.choice(RARE if rng.random() < 0.05 else SCALARS)
    if roll < 0.85:
        return {k: value(rng, depth - 1) for k in rng.sample(KEYS, rng.randint(0, 3))}
    return [value(rng, depth - 1) for _ in range(rng.randint(0, 2))]


def term(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if roll < 0.4:
        return "." + ".".join(rng.choice(("a", "b", "n")) for _ in range(rng.randint(1, 3)))
    if roll < 0.55 or depth <= 0:
        return rng.choice((".", "0", "1", "12", "9007199254740991", '"s"', '""', '"é"', "true", "false", "null"))
    if roll < 0.8:
        keys = rng.sample(("a", "b", "n", '"k"'), rng.randint(0, 3))
        return "{" + ", ".join(f"{k}: {term(rng, depth - 1)}" for k in keys) + "}"
    return f"({expression(rng, depth - 1)})"


def expression(rng: random.Random, depth: int) -> str:
    text = term(rng, depth)
    for _ in range(rng.randint(0, 2)):
        text += f" {rng.choice('+-*')} {term(rng, depth)}"
    return text


def unencodable(value: Any) -> bool:
    try:
        context_json(value).encode()
    except UnicodeEncodeError:
        return True
    return False


def test_generated_expressions_answer_as_jq_does_or_fall_back() -> None:
    rng = random.Random(20261205)
    answered = fell_back = 0
    for _ in range(4000):
        expr, context = expression(rng, 2), value(rng, 3)
        compiled = compile_subset(expr)
        assert compiled is not None, expr
        [jq_answer] = run_text([expr], context_json(context))
        try:
            ours = compiled(context)
        except Unsupported:
            fell_back += 1
            continue
        answered += 1
        if unencodable(context):  # jq cannot take it at all (the documented difference); ours holds none of it
            assert not unencodable(ours)
            continue
        assert not isinstance(jq_answer, Failure), (expr, context, ours, jq_answer)
        assert json.dumps(ours, ensure_ascii=False) == json.dumps(jq_answer, ensure_ascii=False), (expr, context)
    assert answered > 600 and fell_back > 600, (answered, fell_back)  # both sides are exercised


@pytest.mark.parametrize("expr", [
    "length", ".a[0]", ".a?", "..", '."a"', "$x", "-1", "1.5", "1e3", "{a}", "{(.a): 1}", ".a | .b",
    "{a: 1, a: 2}", ".if", "not", '"a\\(.b)"', '"a\\n"', "{a: 1 + 2}", "{a: 1,}", ".a .b", "[.a]", "# c\n.a",
    "{if: 1}", ".a // 1", ".a == 1", "(.a", ".a)", "", "1" * 5000,
])
def test_what_is_outside_the_subset_is_left_to_jq(expr: str) -> None:
    assert compile_subset(expr) is None


def test_a_value_that_is_not_json_is_left_to_jq() -> None:
    path = compile_subset(".a")
    assert path is not None
    with pytest.raises(Unsupported):
        path({"a": object()})


def test_deep_nesting_is_left_to_jq() -> None:
    assert compile_subset("(" * 5000 + ".a" + ")" * 5000) is None
    nested = compile_subset("(" * 50 + ".a" + ")" * 50)
    assert nested is not None and nested({"a": 1}) == 1
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(Unsupported):
        nested({"a": deep})


def test_a_result_shares_nothing_with_its_input() -> None:
    context = {"outputs": {"a": {"list": [1, {"x": 2}]}}}
    compiled = compile_subset(".outputs.a + {b: 1}")
    assert compiled is not None
    result = compiled(context)
    result["list"][1]["x"] = 3
    assert context == {"outputs": {"a": {"list": [1, {"x": 2}]}}}


async def test_the_bounded_evaluation_gives_jq_s_errors_for_what_the_subset_refuses() -> None:
    assert await expressions.evaluate("{n: .inputs.n, a: (.inputs.n + 1)}", {"inputs": {"n": 2}}, at="/x") == {
        "n": 2, "a": 3}
    with pytest.raises(Exception) as failed:
        await expressions.evaluate(".inputs.n.m", {"inputs": {"n": 2}}, at="/x")
    assert "Cannot index number" in str(failed.value)


def test_large_results_are_left_to_jq_and_its_bounds() -> None:
    """Each `.` copies the context: many copies of a large one must not be built here."""
    context = {"items": list(range(20_000)), "text": "x" * 60_000}
    one, copies = compile_subset("{k0: .items}"), compile_subset("{" + ", ".join(f"k{i}: .items" for i in range(6)) + "}")
    assert one is not None and copies is not None
    assert len(one(context)["k0"]) == 20_000
    with pytest.raises(Unsupported):
        copies(context)
    doubled = compile_subset(".text + .text")
    assert doubled is not None
    with pytest.raises(Unsupported):
        doubled(context)
