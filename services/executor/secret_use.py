"""Secrets in node attempts: which ones a node's config uses, revealing them, and masking them.

- A node whose config never mentions `secrets` costs nothing: nothing is read or decrypted (the scan
  of its config is cached per workflow version and node).
- A node's template context holds only the secrets its config names where secrets may be read
  (`libs/core/secret_refs.py`: the config of WEBHOOK, NOTIFY, INTEGRATION_ACTION, a KAFKA node's
  headers); a named secret that does not exist fails the node with a message naming it. An
  unnamed use (`.secrets | keys`) reveals nothing.
- Every value revealed during an attempt — for its templates, or by its action through
  `ActionDeps.secrets` — is recorded (a context variable scoped to the attempt) and masked as `***`
  in the completion the executor stores (output, error and logs), in its common encodings too
  (`libs/core/redaction.py`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from typing import Any

from libs.core.errors import SecretError
from libs.core.redaction import redact_text, redact_value, secret_values
from libs.core.run import Outcome
from libs.core.secret_refs import SecretRefs, readable_refs
from libs.core.secrets import SecretReader

_CACHE_LIMIT = 4096
_revealed: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("stepline_revealed_secrets",
                                                                             default=None)


@contextlib.contextmanager
def tracking() -> Iterator[set[str]]:
    """Collect every value revealed through a `TrackedSecrets` in this context (one attempt)."""
    seen: set[str] = set()
    token = _revealed.set(seen)
    try:
        yield seen
    finally:
        _revealed.reset(token)


def revealed_values() -> frozenset[str]:
    """The secret values revealed so far in the current attempt (an AI step's guardrails block a
    prompt that carries one)."""
    seen = _revealed.get()
    return frozenset(seen) if seen is not None else frozenset()


class TrackedSecrets:
    """The executor's `SecretReader`: reveals through the vault and records what it revealed."""

    def __init__(self, reader: SecretReader) -> None:
        self._reader = reader
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
            node_type = str(config.get("type")) if isinstance(config, dict) else ""
            found = self._refs[key] = readable_refs(node_type, config)
        return found

    async def for_templates(self, refs: SecretRefs) -> dict[str, str]:
        """The `.secrets` of a node's template context. `SecretError` if a named one does not exist."""
        secrets: dict[str, str] = {}
        for name in sorted(refs.names):
            value = await self.reveal(name)
            if value is None:
                raise SecretError(f"secret {name!r} does not exist; the node's config uses "
                                  f".secrets[{json.dumps(name)}] (create it with PUT /v1/secrets/{name})")
            secrets[name] = value
        return secrets


def redact_outcome(outcome: Outcome, revealed: set[str]) -> Outcome:
    """The outcome with every revealed secret value masked in its output, error and logs."""
    if not revealed:
        return outcome
    values = secret_values(revealed)
    return outcome.model_copy(update={
        "output": redact_value(outcome.output, values),
        "error": redact_text(outcome.error, values) if outcome.error is not None else None,
        "logs": tuple(entry.model_copy(update={"log": redact_text(entry.log, values),
                                               "tags": redact_value(entry.tags, values)})
                      for entry in outcome.logs),
    })


def redacted_failure(exc: BaseException, revealed: set[str]) -> RuntimeError:
    """An unexpected exception of an attempt that revealed secrets, as one that cannot carry them
    into a log line or traceback."""
    return RuntimeError(redact_text(f"{type(exc).__name__}: {exc}", secret_values(revealed)))
