"""Which top-level keys of its input a jq expression can read (pure).

jq parses the whole input text before it evaluates anything, at roughly a tenth of a microsecond per
byte, so handing a template only the part of the context it can read is most of its cost: a node's
`{step: 3, n: .inputs.n}` needs `.inputs`, not every earlier node's output and Port's views.

The analysis is conservative. An expression is *narrow* when it reads its input only through field
accesses by name (`.inputs`, `."run"`): outside string literals every `.` starts a field access (or
is part of a number) and every bare word is a keyword or an object key (`{n: …}`); any builtin
(`keys`, `tojson`, `..`, `.[]`, a bare `.`, a string with escapes, a comment) makes it read
everything. A narrow expression reads a key only if the key's name appears in its text, so the keys
kept are those whose names appear; anything else keeps the whole input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_KEYWORDS = frozenset({"and", "or", "not", "if", "then", "elif", "else", "end", "as", "try", "catch",
                       "true", "false", "null"})
"""Words that read no input of their own: operators, control flow, literals (`not` reads only the
value it is given; the root object is truthy whatever keys it keeps)."""
_BARE_WORD = re.compile(r"(?<![.$\w])[A-Za-z_]\w*\b(?!\s*:)")
"""A word that is no field access (`.x`), variable (`$x`), part of a number (`1e5`) or object key."""


def readable(context: Any, expressions: Sequence[str]) -> Any:
    """`context` with only the top-level keys the expressions can read (itself when that is all)."""
    if not isinstance(context, dict):
        return context
    keys = _keys_read(tuple(expressions), tuple(context))
    return context if keys is None else {k: context[k] for k in keys}


@lru_cache(maxsize=4096)
def _keys_read(expressions: tuple[str, ...], keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """The keys named in the expressions when every one is narrow, else None (all of them)."""
    if not all(_narrow(e) for e in expressions):
        return None
    read = tuple(k for k in keys if any(k in e for e in expressions))
    return None if len(read) == len(keys) else read


def _narrow(expression: str) -> bool:
    code = _outside_strings(expression)
    if code is None or "#" in code:
        return False
    if any(word not in _KEYWORDS for word in _BARE_WORD.findall(code)):
        return False
    return not any(_not_a_field(code, m.start()) for m in re.finditer(r"\.", code))


def _not_a_field(code: str, at: int) -> bool:
    """The `.` at `at` is not the start of a field access (`.name`, `."name"`) nor in a number."""
    after = code[at + 1:at + 2]
    if after.isalpha() or after in ('_', '"'):
        return False
    return not (after.isdigit() or code[at - 1:at].isdigit())


def _outside_strings(expression: str) -> str | None:
    """The expression with every string literal emptied (`""`), or None when one has an escape or an
    interpolation (not analysed) or never ends."""
    parts, i = [], 0
    while (start := expression.find('"', i)) >= 0:
        end = expression.find('"', start + 1)
        if end < 0 or "\\" in expression[start:end]:
            return None
        parts.append(expression[i:start] + '""')
        i = end + 1
    parts.append(expression[i:])
    return "".join(parts)
