"""`{{ <jq> }}` templates: finding, compiling and rendering them, and evaluating bare jq expressions.

- A string that is exactly one template (surrounding whitespace allowed) renders to the JSON value of
  its expression, so `"{{ .outputs.trigger.count }}"` stays a number.
- Templates embedded in text render as text: strings as-is, `null` as "", other values as compact JSON.
- An expression with no output renders as `null`; a failing one raises `TemplateError` naming it.
- Expressions run sandboxed: no `$ENV`/`env`, no `debug`/`stderr` output, no `input`, no `halt`,
  no module directives. Secret values are redacted from evaluation error messages.
- The evaluators here (`render`, `evaluate`, `run_text`, …) run jq in this process with no bound on
  time or memory: services evaluate through `libs.expressions` (a deadline and a memory cap), whose
  workers and in-process fast path call `run_text`. Checking syntax never builds the program
  (`check_syntax`), because jq folds constants while compiling.

Rendering is a hot path. Strings without `{{` are never scanned; the split of a string into literal
text and expressions is cached; compiled jq programs are cached; and all the expressions of one
`render` call run as ONE jq program over ONE serialisation of the context (jq's JSON parser dominates
the cost, so parsing the context once per call instead of once per expression is the big win).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, cast

import jq

from libs.core import pointer as jp
from libs.core.errors import TemplateError
from libs.core.jq_escapes import lenient
from libs.core.redaction import redact_text, secret_values
from libs.core.run_context import port_views

_OPEN = "{{"
_CLOSE = "}}"
_CACHE_SIZE = 4096
_ERROR_KEY = "error"
_SANDBOX = (
    # Templates are written by workflow authors and run inside Stepline's processes: they must not
    # read the process environment ($ENV, env), write to its stderr (debug, stderr), read further
    # inputs or halt the interpreter. Module directives cannot follow this prelude, so no
    # import/include of files either.
    'def env: {}; def debug: .; def debug($m): .; def stderr: .; def input_filename: null; '
    'def input: error("input is not available in templates"); def inputs: empty; '
    'def halt: error("halt is not available in templates"); def halt_error: halt; '
    "def halt_error($c): halt; {} as $ENV |\n"
)


class Program(Protocol):
    """The part of a compiled `jq` program that Stepline uses."""

    def input_text(self, text: str) -> Iterable[Any]: ...

    def input_value(self, value: Any) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Split:
    """A string cut into literal text (`str`) and template expressions (`_Expr`)."""

    parts: tuple[str | _Expr, ...]
    whole: str | None
    """The expression when the string is exactly one template (whitespace around it allowed)."""

    def expressions(self) -> Iterator[str]:
        return (p.text for p in self.parts if isinstance(p, _Expr))


@dataclass(frozen=True, slots=True)
class _Expr:
    text: str


# ---------------------------------------------------------------------------------------- compiling


@lru_cache(maxsize=_CACHE_SIZE)
def compile_expression(expr: str) -> Program:
    """Compile a jq expression, sandboxed (cached). `TemplateError` with jq's reason if it is invalid.
    The program is for evaluating, so only a bounded place may compile it (a worker, or the
    calling process for `jq_bounds` expressions): jq folds constants while compiling, so
    `"a" * 1e10` allocates 10 GB right here. Checking syntax uses `check_syntax`."""
    check_syntax(expr)
    return cast(Program, jq.compile(lenient(_SANDBOX + expr)))


@lru_cache(maxsize=_CACHE_SIZE)
def check_syntax(expr: str) -> None:
    """`TemplateError` with jq's reason unless `expr` compiles, sandboxed. Every `*` is compiled
    as `+` (a binary operator of the same syntax, and `*=` as `+=`), so that constant folding
    cannot build a huge string in the checking process (`"a" * 1e10`)."""
    if not expr.strip():
        raise _SyntaxError(expr, "the expression is empty")
    inert = expr.replace("*", "+")
    try:
        jq.compile(lenient(_SANDBOX + inert))
        return
    except ValueError:
        pass
    try:  # for jq's own message, with the expression's line and column
        jq.compile(lenient(inert))
    except ValueError as exc:
        raise _SyntaxError(expr, _compile_reason(exc)) from None
    raise _SyntaxError(expr, "module directives (import, include) are not allowed")


class _SyntaxError(TemplateError):
    def __init__(self, expr: str, reason: str) -> None:
        super().__init__(f"invalid jq expression {expr!r}: {reason}")
        self.reason = reason


def _compile_reason(exc: ValueError) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
    return first.removeprefix("jq: error: ").replace(" at <top-level>,", " at").rstrip(":")


def syntax_error(expr: str) -> str | None:
    """Why `expr` (a bare jq expression) does not compile, or None if it does."""
    try:
        check_syntax(expr)
    except _SyntaxError as exc:
        return exc.reason
    return None


def unwrap(expression: str) -> str:
    """A bare jq expression; a condition written as one `{{ ... }}` template is accepted too."""
    split = _split(expression) if _OPEN in expression else None
    return split.whole if split is not None and split.whole is not None else expression.strip()


def check_expression(expression: str) -> None:
    """Raise `TemplateError` unless `expression` (bare or as one `{{ }}` template) compiles."""
    check_syntax(unwrap(expression))


# ----------------------------------------------------------------------------------------- scanning


@lru_cache(maxsize=_CACHE_SIZE)
def _split(text: str) -> _Split:
    parts: list[str | _Expr] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) >= 0:
        end = _closing(text, start + len(_OPEN))
        if end < 0:
            break  # an unterminated `{{` is literal text
        if start > pos:
            parts.append(text[pos:start])
        parts.append(_Expr(text[start + len(_OPEN) : end].strip()))
        pos = end + len(_CLOSE)
    if pos < len(text):
        parts.append(text[pos:])
    templates = [p for p in parts if isinstance(p, _Expr)]
    literal_is_blank = all(isinstance(p, _Expr) or not p.strip() for p in parts)
    whole = templates[0].text if len(templates) == 1 and literal_is_blank else None
    return _Split(tuple(parts), whole)


def _closing(text: str, index: int) -> int:
    """Index of the `}}` that closes a template body starting at `index`, or -1. Braces of jq
    object literals nest, and nothing inside a jq string literal counts."""
    depth, in_string, escaped = 0, False, False
    for i in range(index, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "}" and depth == 0 and text.startswith(_CLOSE, i):
            return i
        elif char in "{}":
            depth += 1 if char == "{" else -1
    return -1


def find_templates(value: Any, pointer: str = "") -> list[tuple[str, str]]:
    """`(pointer, expression)` for every `{{ }}` template in any string of a JSON value, where the
    pointer (RFC 6901) names the string that holds it."""
    found: list[tuple[str, str]] = []
    _find(value, pointer, found)
    return found


def _find(value: Any, pointer: str, found: list[tuple[str, str]]) -> None:
    if isinstance(value, str):
        if _OPEN in value:
            found.extend((pointer, e) for e in _split(value).expressions())
    elif isinstance(value, dict):
        for key, item in value.items():
            _find(item, jp.join(pointer, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find(item, jp.join(pointer, index), found)


# ---------------------------------------------------------------------------------------- rendering


def render(value: Any, context: Any) -> Any:
    """Render every template in the strings of a JSON value against `context` (see the module doc),
    in this process, unbounded (services render through `libs.expressions`). Dict keys are not
    rendered. Containers are always rebuilt, so the result shares no dict or list with `value`."""
    expressions = expressions_in(value)
    results = dict(zip(expressions, _evaluate_all(expressions, context), strict=True)) if expressions else {}
    return substitute(value, results)


def expressions_in(value: Any) -> list[str]:
    """The distinct template expressions in the strings of a JSON value, in order."""
    return list(dict.fromkeys(_expressions_in(value)))


def _expressions_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if _OPEN in value:
            yield from _split(value).expressions()
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expressions_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions_in(item)


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """`value` with each template replaced by its expression's result in `results`."""
    if isinstance(value, str):
        return _render_string(value, results) if _OPEN in value else value
    if isinstance(value, dict):
        return {key: substitute(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, results) for item in value]
    return value


def _render_string(text: str, results: dict[str, Any]) -> Any:
    split = _split(text)
    if split.whole is not None:
        return results[split.whole]
    return "".join(p if isinstance(p, str) else as_text(results[p.text]) for p in split.parts)


def as_text(value: Any) -> str:
    """How a value appears inside text: strings as-is, null as "", anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------- evaluating


def evaluate(expression: str, context: Any) -> Any:
    """The first output of a bare jq expression (e.g. a condition option), or None if it has none
    (in this process, unbounded: services evaluate through `libs.expressions`)."""
    return _evaluate_all([unwrap(expression)], context)[0]


def is_truthy(value: Any) -> bool:
    """jq truthiness: only `false` and `null` are false (0, "" and [] are true)."""
    return value is not None and value is not False


def first_true(expressions: Sequence[str], context: Any) -> int | None:
    """Index of the first expression whose value is truthy (CONDITION options, tried in order), or
    None. An expression that fails before a true one is found raises `TemplateError`; all are
    evaluated over a single parse of the context."""
    bare = [unwrap(e) for e in expressions]
    outcomes = _run_batch(bare, context)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, TemplateError):
            raise outcome
        if is_truthy(outcome):
            return index
    return None


def _evaluate_all(expressions: Sequence[str], context: Any) -> list[Any]:
    outcomes = _run_batch(expressions, context)
    for outcome in outcomes:
        if isinstance(outcome, TemplateError):
            raise outcome
    return outcomes


def _run_batch(expressions: Sequence[str], context: Any) -> list[Any]:
    """One value or `TemplateError` per expression."""
    outcomes = run_text(expressions, context_json(context))
    return [as_outcome(e, o, context) for e, o in zip(expressions, outcomes, strict=True)]


@dataclass(frozen=True, slots=True)
class Failure:
    """An expression that failed to evaluate, with jq's reason (not yet redacted)."""

    reason: str


def as_outcome(expression: str, outcome: Any, context: Any) -> Any:
    """A value, or the `TemplateError` (secrets of `context` redacted) for a `Failure`."""
    return evaluation_error(expression, outcome.reason, context) if isinstance(outcome, Failure) else outcome


def run_text(expressions: Sequence[str], text: str, prelude: str = "") -> list[Any]:
    """The first output (or None, or a `Failure`) of each expression over the JSON `text`, in this
    process, unbounded: services evaluate through `libs.expressions`, whose workers call this.
    `prelude` is jq definitions placed after the sandbox (e.g. `regex_guard`)."""
    batch = tuple(expressions)
    program = _batch_program(batch, prelude) if prelude else _batch_program(batch)
    try:
        [wrapped] = list(program.input_text(text)) if program is not None else [None]
    except ValueError:  # an error `try` cannot catch: find out which expression it was
        wrapped = None
    if not isinstance(wrapped, list) or len(wrapped) != len(expressions):
        return [_run_one(e, text, prelude) for e in expressions]
    return [_unwrap_outcome(w) for w in wrapped]


@lru_cache(maxsize=_CACHE_SIZE)
def _batch_program(expressions: tuple[str, ...], prelude: str = "") -> Program | None:
    """All expressions as one jq program yielding `[[first output] | [] | {"error": msg}, ...]`, or
    None when they cannot be combined (e.g. an `include`) and must run one by one."""
    for expr in expressions:
        check_syntax(expr)  # a bad one raises here, named; each must stand alone
    items = ",\n".join(
        f'(try ([limit(1; (\n{e}\n))]) catch {{"{_ERROR_KEY}": .}})' for e in expressions
    )
    try:
        return cast(Program, jq.compile(lenient(f"{_SANDBOX}{prelude}[\n{items}\n]")))
    except ValueError:
        return None


@lru_cache(maxsize=_CACHE_SIZE)
def _single_program(expression: str, prelude: str) -> Program:
    if not prelude:
        return compile_expression(expression)
    compile_expression(expression)  # named errors
    return cast(Program, jq.compile(lenient(_SANDBOX + prelude + expression)))


def _unwrap_outcome(wrapped: Any) -> Any:
    if isinstance(wrapped, list):
        return wrapped[0] if wrapped else None
    reason = wrapped.get(_ERROR_KEY) if isinstance(wrapped, dict) else wrapped
    return Failure(as_text(reason) or "error(null)")


def _run_one(expression: str, text: str, prelude: str) -> Any:
    try:
        return next(iter(_single_program(expression, prelude).input_text(text)), None)
    except ValueError as exc:
        return Failure(str(exc))


def evaluation_error(expression: str, reason: str, context: Any) -> TemplateError:
    return TemplateError(f"jq expression {expression!r} failed: {_redact(reason, context)}")


def _redact(message: str, context: Any) -> str:
    """Secrets never appear in error messages, even when jq quotes the value it choked on."""
    secrets = context.get("secrets") if isinstance(context, dict) else None
    if not isinstance(secrets, dict) or not secrets:
        return message
    return redact_text(message, secret_values(secrets))


def context_json(context: Any) -> str:
    try:
        return json.dumps(context, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"the template context is not JSON: {exc}") from None


_REGEX_BUILTINS = (("test", 1), ("test", 2), ("match", 1), ("match", 2), ("capture", 1), ("capture", 2),
                   ("scan", 1), ("scan", 2), ("splits", 1), ("splits", 2), ("split", 2), ("sub", 2),
                   ("sub", 3), ("gsub", 2), ("gsub", 3), ("_match_impl", 3))


def regex_guard(limit: int) -> str:
    """jq definitions that make every regex builtin fail on an input string longer than `limit`
    characters (a clear error instead of minutes of backtracking over a huge text)."""
    guard = (f'def _sl_rx_guard: if type == "string" and length > {limit} then error("regex input is '
             f'longer than {limit} characters (STEPLINE_EXPRESSION_REGEX_INPUT_LIMIT)") else . end; ')
    return guard + "".join(_guarded(name, arity) for name, arity in _REGEX_BUILTINS)


def _guarded(name: str, arity: int) -> str:
    params = "(" + "; ".join(f"a{i}" for i in range(arity)) + ")"
    alias = f"_sl_rx_{name.strip('_')}{arity}"
    return f"def {alias}{params}: {name}{params}; def {name}{params}: _sl_rx_guard | {alias}{params}; "


# ------------------------------------------------------------------------------------ the context


def build_context(
    *,
    outputs: dict[str, Any],
    inputs: dict[str, Any],
    secrets: dict[str, Any],
    trigger: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The context a node's config templates see: `.outputs .inputs .secrets .trigger .run`, and Port's
    `.workflow .workflowRun .entity` with its `.trigger` shape (libs/core/run_context.py)."""
    return {"outputs": outputs, "inputs": inputs, "secrets": secrets, "run": run,
            **port_views(trigger, outputs, run)}


def apply_variables(variables: dict[str, Any], raw_output: Any) -> Any:
    """A node's stored output: `raw_output` itself when it declares no `variables`, else the variables
    rendered against the raw output (`{{ .response.data.id }}`), which replace it entirely."""
    if not variables:
        return raw_output
    return render(dict(variables), raw_output)
