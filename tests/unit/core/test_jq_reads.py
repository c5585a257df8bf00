"""A template sees only the part of its context it can read (libs/core/jq_reads.py), and that part gives
every expression the very result the whole context gives: checked over every expression of Port's
published examples and of the project's examples, and over expressions written to defeat the analysis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.core import jq_reads, templates
from libs.core.run_context import port_views
from tests.service.port_examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[3]
TRIGGER = {"type": "EVENT", "by": "ann@example.com", "at": 1796324371.5, "node": "on_change", "event": None}
OUTPUTS = {"on_change": {"diff": {"before": None, "after": {"identifier": "svc", "properties": {"tier": 1}}}},
           "fetch": {"status": 200, "body": {"items": [1, 2, 3], "name": "x"}}, "a": {"a": 2}, "b": [1, "two"]}
RUN = {"id": "wfr_1", "workflow": "deploy", "version": 3, "apiUrl": "http://127.0.0.1:8080"}
CONTEXT = {"outputs": OUTPUTS, "inputs": {"n": 5, "name": "svc", "outputs": "shadow"}, "secrets": {"TOKEN": "t0k"},
           "run": RUN, **port_views(TRIGGER, OUTPUTS, RUN)}

DEFEATING = [
    ".", "..", "keys", ".[]", "[.[]] | length", "to_entries | map(.key)", "tojson", "tostring", "{outputs}",
    ". as $c | $c.inputs", "[paths] | length", "getpath([\"inputs\", \"n\"])", "has(\"outputs\")", "length",
    ".[\"inputs\"]", "\"\\(.inputs.n)\"", "\"in\\u0070uts\"", ".\"in\\u0070uts\"", "del(.secrets) | keys",
    "with_entries(.)", "@json", "@base64", "map_values(1) | keys", "[.. | numbers] | add", "env | length",
    "$__loc__", ".inputs # .outputs", "if . then 1 else 2 end", "not", "{a: .inputs} | keys", "[splits(\"x\")]",
    "reduce .[] as $x (0; . + 1)", "first(.[])", "input", "error", "empty", ".inputs as $i | $i | keys",
    ".inputs.n + .5", "1e1 + .inputs.n", "{\"outputs\": .inputs}", ".inputs.name | ascii_upcase",
    ".workflowRun.trigger.by.user.email", ".entity.properties.tier", ".trigger.at", ".run.id + \".\"",
    "[.outputs.fetch.body.items[] | . * 2]", ".outputs.b[1:]", ".inputs?.n // .run.version",
    "{step: 3, n: .inputs.n}", ".outputs.a + {b: (.outputs.a.a * 2)}", "try error(\"x\") catch .",
    "if .inputs.n > 3 then \"big\" elif .inputs.n then \"small\" else null end", ".secrets.TOKEN | length",
]


def _expressions(value: Any) -> Iterator[str]:
    """Template expressions and bare expressions (`expression`, `jqQuery`, … fields) of a definition."""
    yield from (expression for _, expression in templates.find_templates(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key.lower().endswith(("expression", "jqquery", "query")):
                yield templates.unwrap(item)
            yield from _expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions(item)


def _published() -> list[str]:
    files = [*sorted(EXAMPLES.glob("*.json")), *sorted((ROOT / "examples").glob("*.json"))]
    found = (e for f in files for e in _expressions(json.loads(f.read_text())))
    return sorted({e for e in found if _compiles(e)})


def _compiles(expression: str) -> bool:
    try:
        templates.check_syntax(expression)
    except Exception:
        return False
    return True


def _outcome(expression: str, context: Any) -> Any:
    [outcome] = templates.run_text([expression], templates.context_json(context))
    return ("failure", outcome.reason) if isinstance(outcome, templates.Failure) else ("value", outcome)


@pytest.mark.parametrize("expression", DEFEATING + _published())
def test_the_readable_part_gives_the_same_result_as_the_whole_context(expression: str) -> None:
    part = jq_reads.readable(CONTEXT, [expression])
    assert _outcome(expression, part) == _outcome(expression, CONTEXT)


def test_a_narrow_expression_is_given_only_the_keys_it_names() -> None:
    assert jq_reads.readable(CONTEXT, ["{step: 3, n: .inputs.n}"]) == {"inputs": CONTEXT["inputs"]}
    named = jq_reads.readable(CONTEXT, [".outputs.a", ".workflowRun.identifier"])
    assert set(named) == {"outputs", "workflowRun", "workflow"}, "a name within a name keeps both"


@pytest.mark.parametrize("expression", ["keys", ".", ". as $c | $c.inputs", "\"\\(.inputs.n)\"", "tojson", ".inputs # x"])
def test_an_expression_the_analysis_cannot_follow_is_given_everything(expression: str) -> None:
    assert jq_reads.readable(CONTEXT, [expression, ".inputs.n"]) is CONTEXT


def test_a_batch_keeps_what_any_of_its_expressions_names_and_other_inputs_pass_unchanged() -> None:
    assert set(jq_reads.readable(CONTEXT, [".inputs.n", ".run.id"])) == {"inputs", "run"}
    assert jq_reads.readable([1, 2], [".[0]"]) == [1, 2]
