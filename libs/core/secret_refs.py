"""Which secrets a node reads, and where a definition may read them (pure).

- `.secrets["NAME"]`, `.secrets."NAME"` and `.secrets.NAME` name one secret; any other use of
  `.secrets` (`.secrets | keys`, `.secrets[.inputs.x]`, `. as $c | $c.secrets`) names none and is
  "unnamed" (`every`).
- `.secrets` is readable only in the config of a node that sends a request: WEBHOOK, NOTIFY,
  INTEGRATION_ACTION (a FOREACH's inline node of those types too), and a KAFKA node's `headers`.
  Anywhere else (TRANSFORM, CONDITION, `variables`, any other field whose value becomes an output,
  a topic payload or a message) a reference is refused at save time with its pointer, and the
  executor does not reveal it for such a field of an older definition either.
- A node sees only the secrets it names: an unnamed use is refused at save time, and at run time
  reveals nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from libs.core import pointer as jp
from libs.core.errors import Issue
from libs.core.node_kinds import KINDS
from libs.core.templates import find_templates

_OPEN = "{{"
_JQ_STRING = r'"((?:[^"\\]|\\.)*)"'
_NAMED = re.compile(
    r"\.\s*secrets\s*\??\s*(?:\[\s*" + _JQ_STRING + r"\s*\]|\.\s*" + _JQ_STRING + r"|\.\s*([A-Za-z_][A-Za-z0-9_]*))"
)
_IN_TEMPLATE = re.compile(r"\bsecrets\b")
"""Inside `{{ }}` any mention of `secrets` counts."""
_IN_TEXT = re.compile(r"\.\s*secrets\b|\"secrets\"")
"""In a string without templates (a bare jq expression such as a CONDITION option) only `.secrets`
and `"secrets"` count, so a plain URL path `/secrets/` reveals nothing."""

@dataclass(frozen=True)
class SecretRefs:
    names: frozenset[str] = frozenset()
    every: bool = False
    """The config uses `.secrets` in a way that does not name the secrets."""

    @property
    def none(self) -> bool:
        return not self.names and not self.every



def secret_refs(config: Any) -> SecretRefs:
    """The secrets a node config's templates and jq expressions use."""
    names: set[str] = set()
    every = False
    for text, mention in _texts(config):
        if "secrets" not in text:
            continue
        spans = []
        for match in _NAMED.finditer(text):
            if _follows_value(text, match.start()):
                continue  # `.outputs.secrets.x`: a field of something else
            name = _name(match)
            if name is None:
                every = True
            else:
                names.add(name)
            spans.append(match.span())
        for found in mention.finditer(text):
            at = found.start() + found.group().find("secrets")
            if any(start <= at < end for start, end in spans) or _nested_field(text, at):
                continue
            every = True
    return SecretRefs(frozenset(names), every)


def _follows_value(text: str, dot: int) -> bool:
    """Whether the `.` at `dot` accesses a field of a preceding value rather than of the context."""
    before = text[:dot].rstrip()
    return bool(before) and (before[-1].isalnum() or before[-1] in '_])?"$')


def _nested_field(text: str, start: int) -> bool:
    """Whether `secrets` at `start` is a field of another value (`.outputs.secrets`), not of the
    context or of a variable that may hold it (`$ctx.secrets`)."""
    before = text[:start].rstrip()
    if not before.endswith("."):
        return False
    dot = len(before) - 1
    if not _follows_value(text, dot):
        return False
    variable = re.search(r"\$[A-Za-z_][A-Za-z0-9_]*$", before[:dot].rstrip())
    return variable is None


def _texts(config: Any) -> Iterator[tuple[str, re.Pattern[str]]]:
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _OPEN in item:
                yield from ((expr, _IN_TEMPLATE) for _, expr in find_templates(item))
            else:
                yield item, _IN_TEXT
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _name(match: re.Match[str]) -> str | None:
    quoted = match.group(1) if match.group(1) is not None else match.group(2)
    if quoted is None:
        return match.group(3)
    try:
        name = json.loads(f'"{quoted}"')
    except ValueError:
        return None  # an escape jq accepts and JSON does not: treat it as unnamed use
    return name if isinstance(name, str) else None


# ------------------------------------------------------------------------------------------- policy

WHERE_ALLOWED = ("`.secrets` may only be read in the config of a node that sends a request (WEBHOOK, "
                 "NOTIFY, INTEGRATION_ACTION) or in a KAFKA node's headers")
NAME_IT = ("name each secret a node reads (`.secrets.NAME` or `.secrets[\"NAME\"]`): a node sees only the "
           "secrets it names, so `.secrets` alone, `keys` of it or a computed name are refused")


def readable_refs(node_type: str, config: Any) -> SecretRefs:
    """The named secrets a node may read: those named in the fields where secrets are readable."""
    names: set[str] = set()
    for _, text, allowed in _uses(node_type, config, ""):
        if allowed:
            names |= secret_refs(text).names
    return SecretRefs(frozenset(names))


def secret_issues(node_type: str, config: Any, variables: Any, pointer: str) -> list[Issue]:
    """Every reference to `.secrets` a definition may not make, with the pointer of its string."""
    found: list[Issue] = []
    for where, text, allowed in _uses(node_type, config, jp.join(pointer, "config")):
        refs = secret_refs(text)
        if not allowed and not refs.none:
            found.append(Issue(where, f"{WHERE_ALLOWED}; a {node_type} node's {_field(where, pointer)} "
                                      "would expose it"))
        elif refs.every:
            found.append(Issue(where, NAME_IT))
    if isinstance(variables, dict):
        for where, text in _strings(variables, jp.join(pointer, "variables")):
            if "{{" in text and not secret_refs(text).none:
                found.append(Issue(where, f"{WHERE_ALLOWED}; `variables` become the node's output"))
    return found


def _field(where: str, pointer: str) -> str:
    return where.removeprefix(pointer).lstrip("/").replace("/", ".") or "config"


def _uses(node_type: str, config: Any, pointer: str) -> Iterator[tuple[str, str, bool]]:
    """(pointer, text, secrets readable there) for every string of a config that is jq: one with a
    `{{ }}` template, or a bare expression field."""
    if not isinstance(config, dict):
        return
    kind = KINDS.get(node_type)
    for key, value in config.items():
        where = jp.join(pointer, key)
        if node_type == "FOREACH" and key == "node" and isinstance(value, dict):
            yield from _uses(str(value.get("type")), value, where)
            continue
        allowed = kind is not None and (kind.sends or key in kind.secret_fields)
        bare = (kind is not None and key in kind.bare_jq) or (node_type == "CONDITION" and key == "options")
        for string_at, text in _strings(value, where):
            if "{{" in text or (bare and _is_bare(node_type, string_at)):
                yield string_at, text, allowed


def _is_bare(node_type: str, where: str) -> bool:
    return node_type != "CONDITION" or where.endswith("/expression")


def _strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, jp.join(pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, jp.join(pointer, index))
