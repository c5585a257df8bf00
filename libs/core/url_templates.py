"""Templates in the path of a request URL are URL-encoded (pure).

`"url": "https://api.example.com/items/{{ .inputs.id }}"` with `id = "../admin"` must request
`/items/..%2Fadmin`, not `/admin`: each template that stands in the path (after the first literal
`/` that follows the host, before a literal `?` or `#`) is rewritten to encode its value with jq's
`@uri` (a `.` or `..` segment becomes `%2E`/`%2E%2E`), so a value can never add segments or climb
out of the path. Templates in the scheme and host, in the query or in the fragment are left as they
are (a template may hold a whole base URL or query string).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from libs.core.node_kinds import KINDS
from libs.core.templates import _split  # the one template scanner (nested braces, jq strings)

_ENCODE = ('if . == null then "" else (if type == "string" then . else tojson end) | @uri '
           '| if . == "." then "%2E" elif . == ".." then "%2E%2E" else . end end')


def with_encoded_paths(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the path templates of its URL fields encoding their values (see the module doc)."""
    kind = KINDS.get(str(config.get("type")))
    fields = () if kind is None else kind.url_fields
    if not any(isinstance(config.get(f), str) and "{{" in config[f] for f in fields):
        return config
    return {k: encoded_path_templates(v) if k in fields and isinstance(v, str) else v for k, v in config.items()}


@lru_cache(maxsize=1024)
def encoded_path_templates(url: str) -> str:
    out: list[str] = []
    state = _State()
    for part in _split(url).parts:
        if isinstance(part, str):
            out.append(part)
            state.read(part)
        elif state.in_path:
            out.append("{{ (" + part.text + ") | " + _ENCODE + " }}")
        else:
            out.append("{{ " + part.text + " }}")
    return "".join(out)


class _State:
    """Where the literal text read so far leaves the next template: before the path, in it, after it."""

    def __init__(self) -> None:
        self.seen = ""
        self.in_path = False
        self.after_path = False

    def read(self, literal: str) -> None:
        self.seen += literal
        if self.after_path:
            return
        if self.in_path:
            self.after_path = "?" in literal or "#" in literal
            self.in_path = not self.after_path
            return
        rest = self.seen.split("://", 1)[1] if "://" in self.seen else self.seen
        if "?" in rest or "#" in rest:
            self.after_path = True
        elif "/" in rest:
            self.in_path = True
