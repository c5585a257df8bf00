"""Run and node-run records and their state machines.

A run is `IN_PROGRESS` until no node is running or runnable, then `COMPLETED` with a result. Inside
the run document each node has a `NodeProgress` (the planner's view); each attempt of a node has its
own `NodeRun` record keyed `{run_id}/{node_id}/{attempt}`.

Node-run lifecycle (the protocol of docs/architecture.md):

    PENDING ──claim──► RUNNING ──complete──► COMPLETED
                          │  ▲ lease expired: re-claim
                          └──► WAITING ──PATCH / approval / timeout──► COMPLETED
    PENDING | RUNNING | WAITING ──cancel / timeout──► COMPLETED (FAILED or CANCELLED)
"""

from __future__ import annotations

import hashlib
import os
import random
import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["IN_PROGRESS", "COMPLETED"]
Result = Literal["SUCCESS", "FAILED", "CANCELLED"]
NodeRunStatus = Literal["PENDING", "RUNNING", "WAITING", "COMPLETED"]
NodeState = Literal["PENDING", "WAITING", "RETRY_WAIT", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]
LogSource = Literal["user", "engine"]

FINISHED_NODE_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"})
ACTIVE_NODE_STATES: frozenset[str] = frozenset({"PENDING", "WAITING", "RETRY_WAIT"})

NODE_RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"RUNNING", "COMPLETED"}),
    "RUNNING": frozenset({"RUNNING", "WAITING", "COMPLETED"}),
    "WAITING": frozenset({"COMPLETED"}),
    "COMPLETED": frozenset(),
}
FINISHED_BY_EXECUTOR: frozenset[str] = frozenset({"RUNNING"})
"""The attempt an executor claimed (with its lease owner) completes."""
FINISHED_FROM_OUTSIDE: frozenset[str] = frozenset({"WAITING", "RUNNING"})
"""A PATCH, an approval decision or the end of its child runs completes a waiting node; RUNNING too:
an asynchronous node may be completed before its executor has marked it WAITING."""
FINISHED_BY_TIMER: frozenset[str] = frozenset({"WAITING"})
"""A DELAY's timer or an approval's SLA completes the node that waits for it."""
FINISHED_BY_TIMEOUT: frozenset[str] = frozenset({"PENDING", "RUNNING", "WAITING"})
"""A waiting node's `timeoutSeconds` fails any attempt not completed yet."""
FINISHED_BY_CANCEL: frozenset[str] = frozenset({"PENDING", "WAITING"})
"""Cancelling a run cancels the attempts no executor holds (those in flight finish)."""
NODE_STATE_TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"WAITING", "RETRY_WAIT", "SUCCEEDED", "FAILED", "CANCELLED"}),
    "WAITING": frozenset({"SUCCEEDED", "FAILED", "RETRY_WAIT", "CANCELLED"}),
    "RETRY_WAIT": frozenset({"PENDING", "FAILED", "CANCELLED"}),
    "SUCCEEDED": frozenset(),
    "FAILED": frozenset(),
    "SKIPPED": frozenset(),
    "CANCELLED": frozenset(),
}

_ALNUM = string.ascii_letters + string.digits
_RANDOM = random.Random(os.urandom(32))
"""Run ids are identifiers, not credentials: a generator seeded once from the OS is enough and
avoids a syscall per character."""


def new_run_id() -> str:
    return "wfr_" + "".join(_RANDOM.choices(_ALNUM, k=16))


_BYTE_TO_ALNUM = bytes(ord(_ALNUM[b % 62]) for b in range(256))
"""Byte b → the letter or digit `_ALNUM[b % 62]`, as a `bytes.translate` table."""


def derived_id(prefix: str, key: str) -> str:
    """A deterministic `<prefix>` + 16 alphanumerics from `key` (so redelivery re-derives the same id)."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return prefix + digest.translate(_BYTE_TO_ALNUM).decode()


def node_run_key(run_id: str, node_id: str, attempt: int) -> str:
    return f"{run_id}/{node_id}/{attempt}"


def node_run_id(key: str) -> str:
    return derived_id("wfnr_", key)


def can_move_node_run(current: str, new: str) -> bool:
    return new in NODE_RUN_TRANSITIONS.get(current, frozenset())


def can_move_node(current: str, new: str) -> bool:
    return new in NODE_STATE_TRANSITIONS.get(current, frozenset())


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TriggerInfo(_Record):
    """What started a run: kept in the run and carried by the StartRun that asks for it (one type)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    type: str = "API"
    """`MANUAL`, `API`, `WEBHOOK`, `EVENT`, `SCHEDULE`, `QUEUE`, `RERUN`."""
    by: str | None = None
    at: float = 0.0
    node: str = ""
    event: dict[str, Any] | None = None
    """The attributes of the CloudEvent that started the run (`.trigger.event` in templates), if one did."""


class NodeProgress(_Record):
    state: NodeState
    attempt: int = 1
    branch: str | None = None
    """CONDITION: the option taken, `"__fallback__"` for the fallback, None when no branch applies."""
    failure_handled: bool = False
    """The node failed but the run goes on (onFailure continue, or an error branch took it)."""
    continues: bool = False
    """Failed, and its plain connections are followed anyway (onFailure continue, or onTimeout continue
    after a timeout)."""


class Run(_Record):
    id: str
    workflow: str
    version: int
    status: RunStatus = "IN_PROGRESS"
    result: Result | None = None
    seq: int = 0
    trigger: TriggerInfo = Field(default_factory=TriggerInfo)
    inputs: dict[str, Any] = Field(default_factory=dict)
    trigger_output: dict[str, Any] | None = None
    """The firing trigger node's output when its `variables` reshape it (default: `inputs`)."""
    outputs: dict[str, Any] = Field(default_factory=dict)
    nodes: dict[str, NodeProgress] = Field(default_factory=dict)
    terminating: bool = False
    """A node failed with onFailure terminate: start nothing new, finish when in-flight nodes end."""
    cancel_requested: bool = False
    cancelled_by: str | None = None
    queued: bool = False
    """Waiting for a slot under the workflow's `concurrencyLimit`: no node has started yet."""
    rerun_of: str | None = None
    """The run this one re-runs (`POST .../rerun`)."""
    rerun_from: str | None = None
    """`start` or `failed` (reuse the outputs of the nodes that succeeded in `rerun_of`)."""
    parent_run_id: str | None = None
    """A child run started by a SUB_WORKFLOW or FOREACH node of this run."""
    parent_node_run_key: str | None = None
    """The key of the parent node run that waits for this child run."""
    depth: int = 0
    """How deeply this run is nested under parent runs, or chained after the runs whose completion
    started it (EVENT_TRIGGER on runs); 0: neither."""
    error: str | None = None
    idempotency_key: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None
    check_at: float = 0.0
    """When the sweeper should next reconcile this run if nothing else touches it."""
    event_seq: int = 0
    """How many run events (`stepline.run-events.v1`) its state changes have produced so far."""
    node_started_at: dict[str, float] = Field(default_factory=dict)
    """When each node's current attempt was dispatched (the start of its `durationMs`)."""
    outbox: list[dict[str, Any]] = Field(default_factory=list)
    """The run events (CloudEvents envelopes) of its state changes not yet known to be published:
    written by the same conditional write as the change, emptied once relayed to the bus."""


class LogEntry(_Record):
    logLevel: LogLevel = "INFO"
    log: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    createdAt: float = 0.0
    source: LogSource = "user"
    """`engine`: written by Stepline itself (libs/core/engine_logs.py); `user`: sent with a PATCH."""


class Outcome(BaseModel):
    """What one node attempt came to, in one type: the executor (or an outside completion) makes it,
    `Store.finish_node_run` writes it onto the node run, the planner decides on it, and v1.NodeResult
    is one on the wire. `result` is None only while the node is `waiting` for a completion."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    result: Result | None = None
    output: Any = None
    error: str | None = None
    retryable: bool = False
    """Whether a failed attempt may succeed if tried again (decides retries)."""
    branch: str | None = None
    """CONDITION: the option taken (or `__fallback__`)."""
    waiting: bool = False
    logs: tuple[LogEntry, ...] = ()
    """Stored with the result (v1.NodeResult does not send them)."""


class NodeRun(_Record):
    key: str
    id: str
    run_id: str
    workflow: str
    node_id: str
    attempt: int = 1
    node_type: str = ""
    title: str | None = None
    icon: str | None = None
    status: NodeRunStatus = "PENDING"
    result: Result | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    output: Any = None
    error: str | None = None
    retryable: bool = False
    """Whether a failed attempt may succeed if tried again (decides retries)."""
    branch: str | None = None
    """CONDITION: the option taken (or `__fallback__`)."""
    logs: list[LogEntry] = Field(default_factory=list)
    max_attempts: int | None = None
    """Set on the node runs the executor performs: their `attempt N of M started` engine line is
    derived from it and `started_at` when they are shown (engine_logs.shown), not stored."""
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float = 0.0

    def outcome(self) -> Outcome:
        """The outcome this node run stands for (COMPLETED, or WAITING), without its logs."""
        return Outcome(result=self.result, output=self.output, error=self.error, retryable=self.retryable,
                       branch=self.branch, waiting=self.status == "WAITING")
