"""A small subset of jq evaluated in Python (pure): the shapes most TRANSFORM expressions and
templates take — field paths (`.run.id`, `.outputs.a`), the identity `.`, integer, string, boolean
and null literals, object construction (`{n: .inputs.n, a: (.inputs.n + 1)}`) and `+ - *`.

jq parses its whole input text before it evaluates anything, and the context must be serialised
for it first; for these expressions that is nearly all of an evaluation's cost. `compile_subset`
gives None for anything outside the subset, and a compiled expression raises `Unsupported` wherever
jq would raise or its answer could differ (arithmetic on anything but integers below 2**53 and
strings, arrays and objects for `+`; a field of anything but an object or null; a float or an
integer of 2**53 or more in the result): the caller then asks jq, so every answer is jq's. One
difference is deliberate: jq is handed the context as strict JSON, so a NaN anywhere in the part of
the context it reads fails every expression there; here only one whose result holds it falls back.
tests/unit/core/test_jq_subset.py compares the two on generated expressions and contexts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Compiled = Callable[[Any], Any]

EXACT = 2 ** 53
"""Integers below this (in magnitude) are exact in jq's doubles, so Python's arithmetic agrees."""
MAX_UNITS = 100_000
"""What a result may hold (a value counts 1, a string 1 per 32 characters): larger results, which
could be many copies of a large context (`{a: ., b: ., …}`), are left to jq and its bounds."""
MAX_LENGTH = 100_000
"""The longest string, array or object `+` may build before the result is left to jq."""
_KEYWORDS = frozenset({"def", "if", "then", "elif", "else", "end", "as", "reduce", "foreach", "try", "catch",
                       "label", "import", "include", "and", "or", "not", "__loc__", "true", "false", "null"})
_LITERALS = {"true": True, "false": False, "null": None}
_TOKEN = re.compile(r"""\s*(?:
    (?P<path>\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?![\w.\["?$])
  | (?P<dot>\.)(?![\w.\["?$])
  | (?P<int>\d{1,16})(?![\w.])
  | (?P<str>"[^"\\\x00-\x1f]*")
  | (?P<word>[A-Za-z_]\w*)(?![\w.\[?$(])
  | (?P<punct>[{}():,+*-])
)""", re.VERBOSE)


class Unsupported(Exception):
    """This evaluation is jq's to do."""


@lru_cache(maxsize=4096)
def compile_subset(expression: str) -> Compiled | None:
    """The expression as a function of its input, or None when it is outside the subset."""
    tokens = _tokens(expression)
    if tokens is None:
        return None
    parser = _Parser(tokens)
    try:
        compiled = parser.expression()
    except (Unsupported, RecursionError):  # deep nesting is jq's to refuse or to evaluate
        return None
    return _checked(compiled) if parser.at_end() else None


def _tokens(expression: str) -> list[tuple[str, str]] | None:
    tokens, position, end = [], 0, len(expression.rstrip())
    while position < end:
        match = _TOKEN.match(expression, position)
        if match is None or match.lastgroup is None:
            return None
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


class _Parser:
    """expression := product (('+' | '-') product)*; product := term ('*' term)*;
    term := path | '.' | integer | string | true | false | null | '(' expression ')' | object."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def at_end(self) -> bool:
        return self.index == len(self.tokens)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end" or (text is not None and token[1] != text):
            raise Unsupported
        self.index += 1
        return token

    def expression(self) -> Compiled:
        compiled = self.product()
        while self.peek()[1] in ("+", "-"):
            operator = _add if self.take()[1] == "+" else _subtract
            compiled = _binary(operator, compiled, self.product())
        return compiled

    def product(self) -> Compiled:
        compiled = self.term()
        while self.peek()[1] == "*":
            self.take()
            compiled = _binary(_multiply, compiled, self.term())
        return compiled

    def term(self) -> Compiled:
        kind, text = self.take()
        if kind == "path":
            return _path(tuple(text[1:].split(".")))
        if kind == "dot":
            return _identity
        if kind in ("int", "str") or text in _LITERALS:
            return _constant(int(text) if kind == "int" else text[1:-1] if kind == "str" else _LITERALS[text])
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text == "{":
            return self.object()
        raise Unsupported

    def object(self) -> Compiled:
        entries: list[tuple[str, Compiled]] = []
        while self.peek()[1] != "}":
            if entries:
                self.take(",")
            entries.append(self.entry())
        self.take("}")
        if len({key for key, _ in entries}) != len(entries):
            raise Unsupported  # a repeated key: jq's rule of which one wins is not worth copying
        return _object(tuple(entries))

    def entry(self) -> tuple[str, Compiled]:
        kind, text = self.take()
        if kind == "str":
            key = text[1:-1]
        elif kind == "word" and text not in _KEYWORDS:
            key = text
        else:
            raise Unsupported
        self.take(":")
        return key, self.term()


def _path(keys: tuple[str, ...]) -> Compiled:
    if any(key in _KEYWORDS for key in keys):
        raise Unsupported

    def field(value: Any) -> Any:
        for key in keys:
            if type(value) is dict:
                value = value.get(key)
            elif value is not None:
                raise Unsupported
        return value
    return field


def _identity(value: Any) -> Any:
    return value


def _constant(value: Any) -> Compiled:
    return lambda _: value


def _object(entries: tuple[tuple[str, Compiled], ...]) -> Compiled:
    return lambda value: {key: compiled(value) for key, compiled in entries}


def _binary(operator: Callable[[Any, Any], Any], left: Compiled, right: Compiled) -> Compiled:
    return lambda value: operator(left(value), right(value))


def _add(left: Any, right: Any) -> Any:
    if left is None:
        return right
    if right is None:
        return left
    kind = type(left)
    if kind is not type(right) or kind not in (int, str, list, dict):
        raise Unsupported
    if kind is int:
        return _exact(left + right)
    return _bounded({**left, **right} if kind is dict else left + right)


def _subtract(left: Any, right: Any) -> Any:
    if type(left) is not int or type(right) is not int:
        raise Unsupported
    return _exact(left - right)


def _multiply(left: Any, right: Any) -> Any:
    if type(left) is not int or type(right) is not int:
        raise Unsupported
    return _exact(left * right)


def _exact(number: int) -> int:
    if -EXACT < number < EXACT:
        return number
    raise Unsupported


def _bounded(value: Any) -> Any:
    if len(value) > MAX_LENGTH:
        raise Unsupported
    return value


def _checked(compiled: Compiled) -> Compiled:
    """The result as a fresh copy (it never shares a container with the input), checked to be
    what jq would answer (JSON numbers it prints back unchanged) and to be small (`MAX_UNITS`)."""
    def run(value: Any) -> Any:
        try:
            return _copy(compiled(value), [MAX_UNITS])
        except RecursionError:  # a deeply nested value
            raise Unsupported from None
    return run


def _copy(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise Unsupported
    kind = type(value)
    if kind is dict:
        return {_text(key, budget): _copy(item, budget) for key, item in value.items()}
    if kind is list:
        return [_copy(item, budget) for item in value]
    if kind is int:
        return _exact(value)
    if kind is str:
        return _text(value, budget)
    if kind is bool or value is None:
        return value
    raise Unsupported  # a float (jq prints some back as another type: 1e16 as 10000000000000000), or not JSON


def _text(value: str, budget: list[int]) -> str:
    """A string jq gives back unchanged: UTF-8 (a lone surrogate, which JSON can carry, jq replaces)."""
    budget[0] -= len(value) // 32
    if budget[0] < 0:
        raise Unsupported
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Unsupported from None
    return value
