"""SELF_SERVE_TRIGGER inputs whose `default` is `{"jqQuery": ...}` (Port computes them in its form):
for an API run that leaves such an input out, the query is evaluated (bounded, libs/expressions) against
what Port's form would see, `{user: {email}, trigger: {by: {user: {email}}}, inputs}`, and its value is
the input's. A query that fails is a 422 naming the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.core.errors import InputError, Issue, TemplateError
from libs.core.inputs import INPUTS_POINTER, is_jq_query
from libs.expressions import evaluate as expressions


def form_context(user: str | None, inputs: Mapping[str, Any]) -> dict[str, Any]:
    who = {"email": user}
    return {"user": who, "trigger": {"by": {"user": who}}, "inputs": dict(inputs)}


async def with_jq_defaults(user_inputs: Mapping[str, Any], inputs: Mapping[str, Any], user: str | None,
                           *, at: str) -> dict[str, Any]:
    """`inputs` plus the value of every jq default of a declared input that is missing."""
    properties = user_inputs.get("properties")
    completed = dict(inputs)
    for name, spec in (properties if isinstance(properties, Mapping) else {}).items():
        default = spec.get("default") if isinstance(spec, Mapping) else None
        if name in completed or not isinstance(default, Mapping) or not is_jq_query(default):
            continue
        where = f"{at}/userInputs/properties/{name}/default/jqQuery"
        try:
            value = await expressions.evaluate(str(default["jqQuery"]), form_context(user, inputs), at=where)
        except TemplateError as exc:
            issue = Issue(f"{INPUTS_POINTER}/{name}", f"the default of input {name!r} failed: {exc.message}")
            raise InputError(f"invalid inputs: {issue.message}", [issue]) from None
        if value is not None:  # null: the input stays out, as Port's form leaves it empty
            completed[name] = value
    return completed
