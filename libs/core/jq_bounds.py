"""Which jq expressions are cheap by construction, so they may run in the calling process.

Every other expression runs in a worker process with a deadline and a memory cap
(`libs.expressions`). An expression is *bounded* when its text uses only:

- paths (`.a.b`, `."x"`, `.[0]`, `.a[.b]`, slices), literals (strings without `\\(` interpolation,
  numbers, true/false/null), object and array construction, `|`, `+`, comparisons, `and`/`or`,
  `//`, `?`, `if … then … elif … else … end`, `@format` strings;
- a short list of linear builtins (`length`, `keys`, `tostring`, `map`, `select`, …) that take at
  most one argument;
- and no generator: no `.[]` iteration, no `..`, no comma outside an object or array construction.

Arithmetic `*`, `-`, `/` and `%` only with a number literal right beside the operator (`.a * 2`,
`.n - 1`, `1000 / .ms`), the `*` literals of one expression multiplying to at most MAX_REPEAT: a literal number operand makes
each of them either number arithmetic or an error, except `*` on a string (repetition, bounded by
the literal). No definitions, variables, `reduce`/`foreach`, `range`, `repeat`, `limit`, `while`,
regex, nor arithmetic between two computed values (string repetition by a computed count,
quadratic array difference). Without a generator
every sub-expression has at most one output and cannot reach the root again once inside `map`, so
each output is at most (number of path references) × (context size): time and memory are
O(|expression| × |context|). `within_budget` caps both factors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

MAX_EXPRESSION = 512
"""Characters of one expression the calling process evaluates."""
MAX_BATCH = 2048
"""Characters of all the expressions of one evaluation."""
MAX_REPEAT = 64
"""The largest number literal a `*` may have: a string operand is repeated at most this often."""
MAX_CONTEXT = 64 * 1024
"""Characters of the context's JSON text (so a worst case holds 1024 × 64 KiB = 64 MiB)."""

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<format>@[A-Za-z0-9]+)
  | (?P<op>//|==|!=|<=|>=|\.\.|[.\[\](){}|,:?+<>])
  | (?P<arith>[-*/%])
""", re.VERBOSE)

_KEYWORDS = frozenset({"if", "then", "elif", "else", "end", "and", "or", "true", "false", "null"})
_BUILTINS = frozenset({
    "length", "utf8bytelength", "not", "keys", "keys_unsorted", "has", "in", "type", "tostring",
    "tonumber", "tojson", "ascii_downcase", "ascii_upcase", "first", "last", "any", "all", "min", "max",
    "sort", "reverse", "unique", "to_entries", "from_entries", "with_entries", "map", "select", "empty",
    "values", "nulls", "booleans", "numbers", "strings", "arrays", "objects", "iterables", "scalars",
    "floor", "ltrimstr", "rtrimstr", "startswith", "endswith", "error",
})
_VALUE_END = frozenset({"field", "ident", "string", "number", "format"})
_CLOSERS = frozenset({"]", ")", "}", ".", "?"})


def within_budget(expressions: Sequence[str], context_chars: int) -> bool:
    """Whether these expressions may run in-process over a context of `context_chars` characters."""
    if context_chars > MAX_CONTEXT or sum(len(e) for e in expressions) > MAX_BATCH:
        return False
    return all(is_bounded(e) for e in expressions)


@lru_cache(maxsize=4096)
def is_bounded(expression: str) -> bool:
    """Whether `expression` is in the bounded subset described in the module doc."""
    if len(expression) > MAX_EXPRESSION:
        return False
    tokens = _tokens(expression)
    return tokens is not None and _no_generator(tokens) and _repeat_factor(tokens) <= MAX_REPEAT


def _tokens(expression: str) -> list[tuple[str, str]] | None:
    """(kind, text) of each token, without whitespace; None if anything is outside the subset."""
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None or match.lastgroup is None:
            return None
        kind, text = match.lastgroup, match.group()
        pos = match.end()
        if kind == "string" and "\\(" in text:
            return None
        if kind != "ws":
            found.append((kind, text))
    return found


def _no_generator(tokens: list[tuple[str, str]]) -> bool:
    stack: list[str] = []
    for index, (kind, text) in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if kind == "ident" and not _allowed_ident(text, stack, following):
            return False
        if text == "..":
            return False
        if kind == "arith" and not _literal_operand(text, previous, following):
            return False
        if text == "[":
            stack.append("index" if _ends_value(previous) else "array")
            if stack[-1] == "index" and following == ("op", "]"):
                return False  # `.[]`: iteration
        elif text in ("(", "{"):
            stack.append(text)
        elif text in ("]", ")", "}"):
            if not stack:
                return False
            stack.pop()
        elif text == "," and (not stack or stack[-1] not in ("{", "array")):
            return False
    return not stack


def _literal_operand(operator: str, *neighbours: tuple[str, str] | None) -> bool:
    """Whether a number literal stands right beside `operator`."""
    return any(token is not None and token[0] == "number" for token in neighbours)


def _repeat_factor(tokens: list[tuple[str, str]]) -> float:
    """How often a string may be repeated at most: the product of every `*`'s largest literal."""
    factor = 1.0
    for index, (_, text) in enumerate(tokens):
        if text == "*":
            beside = (tokens[index - 1], tokens[index + 1] if index + 1 < len(tokens) else ("", "0"))
            factor *= max(abs(float(t)) for kind, t in beside if kind == "number")
    return factor


def _allowed_ident(text: str, stack: list[str], following: tuple[str, str] | None) -> bool:
    if stack and stack[-1] == "{" and following in (("op", ":"), ("op", ","), ("op", "}")):
        return True  # an object key: `{step: 1}`, `{name}`
    return text in _KEYWORDS or text in _BUILTINS


def _ends_value(token: tuple[str, str] | None) -> bool:
    if token is None:
        return False
    kind, text = token
    if kind == "ident":
        return text not in _KEYWORDS or text in ("true", "false", "null", "end")
    return kind in _VALUE_END or text in _CLOSERS

