"""Secrets in node attempts: which ones a node's config uses, revealing them, and masking them.

- A node whose config never mentions `secrets` costs nothing: nothing is read or decrypted (the scan
  of its config is cached per workflow version and node).
- `.secrets["NAME"]`, `.secrets."NAME"` and `.secrets.NAME` reveal just the secrets they name; a
  named secret that does not exist fails the node with a message naming it. Any other use of
  `.secrets` (e.g. `.secrets | keys`) reveals every secret.
- Every value revealed during an attempt — for its templates, or by its action through
  `ActionDeps.secrets` — is recorded (a context variable scoped to the attempt) and masked as `***`
  in the completion the executor stores: output, error and logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from libs.core.errors import SecretError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.secrets import SecretReader
from libs.core.templates import find_templates
from libs.store.ports import Completion

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
_CACHE_LIMIT = 4096

_revealed: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("stepline_revealed_secrets",
                                                                             default=None)


@dataclass(frozen=True)
class SecretRefs:
    names: frozenset[str] = frozenset()
    every: bool = False
    """The config uses `.secrets` in a way that does not name the secrets."""

    @property
    def none(self) -> bool:
        return not self.names and not self.every


NO_REFS = SecretRefs()


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


@contextlib.contextmanager
def tracking() -> Iterator[set[str]]:
    """Collect every value revealed through a `TrackedSecrets` in this context (one attempt)."""
    seen: set[str] = set()
    token = _revealed.set(seen)
    try:
        yield seen
    finally:
        _revealed.reset(token)


Lister = Callable[[], Awaitable[list[str]]]


class TrackedSecrets:
    """The executor's `SecretReader`: reveals through the vault and records what it revealed."""

    def __init__(self, reader: SecretReader, names: Lister | None = None) -> None:
        self._reader = reader
        self._names = names
        self._refs: dict[tuple[str, int, str], SecretRefs] = {}

    async def reveal(self, name: str) -> str | None:
        value = await self._reader.reveal(name)
        seen = _revealed.get()
        if value is not None and seen is not None:
            seen.add(value)
        return value

    def refs(self, workflow: str, version: int, node_id: str, config: Any) -> SecretRefs:
        key = (workflow, version, node_id)
        found = self._refs.get(key)
        if found is None:
            if len(self._refs) >= _CACHE_LIMIT:
                self._refs.clear()
            found = self._refs[key] = secret_refs(config)
        return found

    async def for_templates(self, refs: SecretRefs) -> dict[str, str]:
        """The `.secrets` of a node's template context. `SecretError` if a named one does not exist."""
        if refs.none:
            return {}
        names = set(refs.names)
        if refs.every and self._names is not None:
            names.update(await self._names())
        secrets: dict[str, str] = {}
        for name in sorted(names):
            value = await self.reveal(name)
            if value is None:
                if name in refs.names:
                    raise SecretError(f"secret {name!r} does not exist; the node's config uses "
                                      f".secrets[{json.dumps(name)}] (create it with PUT /v1/secrets/{name})")
                continue
            secrets[name] = value
        return secrets


def redact_completion(completion: Completion, revealed: set[str]) -> Completion:
    """The completion with every revealed secret value masked in its output, error and logs."""
    if not revealed:
        return completion
    values = secret_values(revealed)
    return dataclasses.replace(
        completion,
        output=redact_value(completion.output, values),
        error=redact_text(completion.error, values) if completion.error is not None else None,
        logs=tuple(entry.model_copy(update={"log": redact_text(entry.log, values),
                                            "tags": redact_value(entry.tags, values)})
                   for entry in completion.logs),
    )


def redacted_failure(exc: BaseException, revealed: set[str]) -> RuntimeError:
    """An unexpected exception of an attempt that revealed secrets, as one that cannot carry them
    into a log line or traceback."""
    return RuntimeError(redact_text(f"{type(exc).__name__}: {exc}", secret_values(revealed)))
