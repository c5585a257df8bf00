"""The Stepline error tree. Every error says whether retrying the same operation can help.

    SteplineError (retryable: bool)
    ├── DefinitionError            a workflow definition is invalid; carries `issues` with JSON pointers
    ├── InputError                 run inputs do not match the trigger's userInputs; carries `issues`
    ├── TemplateError              a `{{ jq }}` template failed to compile or evaluate
    ├── NotFoundError              a workflow, version, tag, run or node run does not exist
    ├── ConflictError              the request conflicts with current state (duplicate id, node not waiting)
    ├── ForbiddenError             the caller may not do this (an approval decided by a non-assignee)
    ├── StoreError                 the store failed
    │   ├── StoreUnavailableError  the store could not be reached (retryable)
    │   └── ConcurrentUpdateError  an optimistic update lost a race (retryable)
    ├── BusError                   the bus failed (retryable)
    ├── SecretError                a secret cannot be used: no secrets key, no such secret, or it does not decrypt
    └── ActionError                a node's action failed; `retryable` says whether a new attempt may help
        └── ActionTimeoutError     the action did not finish within `timeoutSeconds` (retryable)

Adapters translate low-level exceptions into these with `raise X(...) from exc`; the HTTP layer maps
them to status codes in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem found in user input: a JSON pointer to the offending field and a message."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class SteplineError(Exception):
    """Root of all Stepline errors."""

    retryable: bool = False
    code: str = "error"

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class _IssuesError(SteplineError):
    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.issues: list[Issue] = list(issues or [])

    def details(self) -> list[dict[str, str]]:
        return [i.as_dict() for i in self.issues]


class DefinitionError(_IssuesError):
    code = "invalid_definition"


class InputError(_IssuesError):
    code = "invalid_inputs"


class TemplateError(SteplineError):
    code = "template_error"


class NotFoundError(SteplineError):
    code = "not_found"


class ConflictError(SteplineError):
    code = "conflict"


class ForbiddenError(SteplineError):
    code = "forbidden"


class UnauthorizedError(SteplineError):
    """No valid credential (API key or callback token) for a request that needs one."""

    code = "unauthorized"


class StoreError(SteplineError):
    code = "store_error"


class StoreUnavailableError(StoreError):
    retryable = True
    code = "store_unavailable"


class ConcurrentUpdateError(StoreError):
    retryable = True
    code = "concurrent_update"


class BusError(SteplineError):
    retryable = True
    code = "bus_error"


class SecretError(SteplineError):
    """A secret a node needs cannot be revealed: the service has no secrets key, the secret does not
    exist, or it does not decrypt with the configured key. Never carries a secret value."""

    code = "secret_error"


class ActionError(SteplineError):
    """A node action failed. `output` is what the action produced before failing (e.g. the HTTP response)."""

    code = "action_failed"

    def __init__(self, message: str, *, retryable: bool = False, output: Any = None) -> None:
        super().__init__(message, retryable=retryable)
        self.output = output


class ActionTimeoutError(ActionError):
    code = "action_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass
class Collected:
    """Accumulates issues while validating, so every problem is reported at once."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, pointer: str, message: str) -> None:
        self.issues.append(Issue(pointer, message))
