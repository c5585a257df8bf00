"""The only way services evaluate user jq: templates, bare expressions and `variables`, bounded.

Each function takes `at`, the JSON pointer of what it evaluates in the workflow definition (e.g.
`/nodes/3/config`), so a breach names the field: "expression at /nodes/3/config/expression exceeded
2 s". A breach raises `ExpressionLimitError` (a `TemplateError`, not retryable: the same expression
over the same data breaches again); an ordinary jq error raises `TemplateError` as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from libs.core import jq_reads, templates
from libs.core.definition import Workflow
from libs.core.errors import TemplateError
from libs.core.jq_bounds import within_budget
from libs.core.jq_subset import Unsupported, compile_subset
from libs.core.templates import Failure, check_syntax, find_templates
from libs.core.waiting_nodes import split_config
from libs.expressions.limits import Limits
from libs.expressions.pool import Breach, Pool
from libs.telemetry import metrics

_pool: list[Pool] = [Pool(Limits())]


class ExpressionLimitError(TemplateError):
    code = "expression_limit"


def configure(limits: Limits) -> None:
    """Use `limits` from now on (a service calls this once at start with its settings)."""
    if limits != _pool[0].limits:
        _pool[0].close()
        _pool[0] = Pool(limits)


def limits() -> Limits:
    return _pool[0].limits


def shutdown() -> None:
    """Stop the idle workers (they are started again on demand)."""
    _pool[0].close()
    _pool[0] = Pool(_pool[0].limits)


async def run_batch(expressions: Sequence[str], context: Any, pointers: Mapping[str, str]) -> list[Any]:
    """A value or `TemplateError` per bare expression; `ExpressionLimitError` on a breach, naming
    the pointer of the expression that caused it."""
    for expression in expressions:
        check_syntax(expression)  # syntax errors, named, without a worker
    values = _in_python(expressions, context)
    if values is not None:
        return values
    text = templates.context_json(jq_reads.readable(context, expressions))
    if within_budget(expressions, len(text)):
        outcomes = templates.run_text(expressions, text)
    else:
        outcomes = await _pooled(list(expressions), text, pointers)
    return [templates.as_outcome(e, o, context) for e, o in zip(expressions, outcomes, strict=True)]


def _in_python(expressions: Sequence[str], context: Any) -> list[Any] | None:
    """Each expression's value from jq's subset in Python (libs/core/jq_subset.py), or None when
    any of them is jq's to evaluate."""
    values = []
    for expression in expressions:
        compiled = compile_subset(expression)
        if compiled is None:
            return None
        try:
            values.append(compiled(context))
        except Unsupported:
            return None
    return values


async def _pooled(expressions: list[str], text: str, pointers: Mapping[str, str]) -> list[Any]:
    pool = _pool[0]
    try:
        pairs = await pool.run(expressions, text)
    except Breach as breach:
        metrics.EXPRESSION_BREACHES.labels(breach.kind).inc()
        culprit = await _culprit(pool, expressions, text) if len(expressions) > 1 else expressions[0]
        raise _limit_error(pool.limits, breach.kind, pointers.get(culprit, "?")) from None
    return [Failure(str(value)) if failed else value for failed, value in pairs]


async def _culprit(pool: Pool, expressions: list[str], text: str) -> str:
    """Which expression of a batch breaches on its own (the first one, or else the first)."""
    for expression in expressions:
        try:
            await pool.run([expression], text)
        except Breach:
            return expression
    return expressions[0]


def _limit_error(limits: Limits, kind: str, pointer: str) -> ExpressionLimitError:
    what = limits.describe_timeout() if kind == "timeout" else limits.describe_memory()
    return ExpressionLimitError(f"expression at {pointer} {what}")


def _raise_failures(outcomes: list[Any]) -> list[Any]:
    for outcome in outcomes:
        if isinstance(outcome, TemplateError):
            raise outcome
    return outcomes


async def render(value: Any, context: Any, *, at: str) -> Any:
    """`templates.render`, bounded: `value` is at pointer `at` of the definition."""
    expressions = templates.expressions_in(value)
    if not expressions:
        return templates.substitute(value, {})
    pointers: dict[str, str] = {}
    for pointer, expression in find_templates(value, at):
        pointers.setdefault(expression, pointer)
    outcomes = _raise_failures(await run_batch(expressions, context, pointers))
    return templates.substitute(value, dict(zip(expressions, outcomes, strict=True)))


async def evaluate(expression: str, context: Any, *, at: str) -> Any:
    """`templates.evaluate`, bounded: the first output of a bare expression (or one `{{ }}`)."""
    bare = templates.unwrap(expression)
    [outcome] = _raise_failures(await run_batch([bare], context, {bare: at}))
    return outcome


async def apply_variables(variables: Mapping[str, Any], raw_output: Any, *, at: str) -> Any:
    """`templates.apply_variables`, bounded: `at` points at the node's `variables`."""
    if not variables:
        return raw_output
    return await render(dict(variables), raw_output, at=at)


@dataclass(frozen=True)
class Shaped:
    """A successful node's output as it is stored, or why its `variables` failed."""

    output: Any
    """The variables applied to the output (they replace it); the raw output when they failed."""
    error: str | None = None
    """The failure, naming the field (the node then fails with it)."""


async def shaped_output(workflow: Workflow, node_id: str, output: Any) -> Shaped:
    """The one way a node's `variables` are applied to an output it succeeded with (executor,
    scheduler completions, trigger): `Shaped.error` set instead of an exception when they fail."""
    variables = workflow.node(node_id).variables
    if not variables:
        return Shaped(output)
    try:
        return Shaped(await apply_variables(variables, output, at=f"{node_at(workflow, node_id)}/variables"))
    except TemplateError as exc:
        return Shaped(output, exc.message)


async def render_config(config: dict[str, Any], context: Any, *, at: str) -> dict[str, Any]:
    """`waiting_nodes.render_config`, bounded: the node config (at pointer `at`) rendered, except
    the fields its action renders itself."""
    now, later = split_config(config)
    rendered: dict[str, Any] = await render(now, context, at=at)
    return {**rendered, **later}


def node_at(workflow: Workflow, node_id: str) -> str:
    """The JSON pointer of a node in its definition: `/nodes/<index>`."""
    index = workflow.position(node_id)
    return f"/nodes/{index}" if index is not None else f"/nodes/{node_id}"
