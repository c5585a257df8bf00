r"""Lenient string escapes: a backslash inside a jq string literal that starts no jq escape is taken
as a literal backslash, as the author meant (`capture("(?<d>[\s\S]+)")` in
Port's published templates). jq itself refuses `\s` ("invalid escape"); a program jq accepts is left
exactly as it is, so this only turns certain errors into the regex the text spells."""

from __future__ import annotations

from typing import Final

_ESCAPES: Final = frozenset('"\\/bfnrtu(')
"""What may follow a backslash in a jq string (`\\(` opens an interpolation)."""


def lenient(text: str) -> str:
    """`text` with each backslash that starts no escape in a string literal doubled."""
    if "\\" not in text:
        return text
    out: list[str] = []
    stack: list[int | None] = [0]  # None: in a string; an int: code, at that parenthesis depth
    i = 0
    while i < len(text):
        i = _string_step(text, i, stack, out) if stack[-1] is None else _code_step(text, i, stack, out)
    return "".join(out)


def _string_step(text: str, i: int, stack: list[int | None], out: list[str]) -> int:
    ch = text[i]
    if ch == '"':
        stack.pop()
    elif ch == "\\":
        following = text[i + 1] if i + 1 < len(text) else ""
        if following == "(":
            stack.append(0)  # an interpolation: code until its closing parenthesis
        if following in _ESCAPES and following:
            out.append(ch + following)
            return i + 2
        out.append("\\\\")
        return i + 1
    out.append(ch)
    return i + 1


def _code_step(text: str, i: int, stack: list[int | None], out: list[str]) -> int:
    ch, depth = text[i], stack[-1]
    assert depth is not None
    if ch == "#":  # a comment runs to the end of the line
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        out.append(text[i:end])
        return end
    if ch == '"':
        stack.append(None)
    elif ch == "(":
        stack[-1] = depth + 1
    elif ch == ")":
        if depth == 0 and len(stack) > 1:
            stack.pop()  # the end of an interpolation: back in its string
        else:
            stack[-1] = depth - 1
    out.append(ch)
    return i + 1
