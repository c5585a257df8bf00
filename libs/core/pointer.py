"""RFC 6901 JSON pointers: how every issue names the field it is about (`/nodes/2/config/url`)."""

from __future__ import annotations

from collections.abc import Iterable


def escape_token(token: str | int) -> str:
    """One reference token: `~` becomes `~0` and `/` becomes `~1` (in that order)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def join(base: str, *tokens: str | int) -> str:
    """`join("/nodes", 2, "config")` → `/nodes/2/config`; `base` is already a pointer ("" is the root)."""
    return base + "".join("/" + escape_token(t) for t in tokens)


def from_path(path: Iterable[str | int]) -> str:
    """A pointer from a sequence of keys and indices (a pydantic `loc`, a jsonschema `path`)."""
    return join("", *path)


def tokens(pointer: str) -> list[str]:
    """The unescaped reference tokens of `pointer` (`""` → `[]`)."""
    if not pointer:
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    return [unescape_token(t) for t in pointer[1:].split("/")]
