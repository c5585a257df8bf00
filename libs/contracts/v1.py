"""Version 1 of the message models. A version only gains optional fields; anything else is v2.

Commands are imperative (consumed by the scheduler or executor); events are past tense (published
by the scheduler on the public run-events topic).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from libs.contracts import topics
from libs.core.errors import SteplineError
from libs.core.run import LogEntry, Outcome, Result, TriggerInfo
from libs.core.workspaces import DEFAULT_WORKSPACE, scoped


class UnknownMessageError(SteplineError):
    """A message type this version does not know: not retryable, goes to the dead-letter topic."""

    code = "unknown_message"


class Message(BaseModel):
    """`TOPIC` is the one topic a message type goes to (libs/bus/publisher.py publishes it there);
    `ExternalMessage` alone has none: it is read from topics outside Stepline, never published."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str] = ""
    TOPIC: ClassVar[str]
    run_id: str


# ---- commands to the scheduler (topic run-commands) -------------------------------------------

class RunCommand(Message):
    """A command to the scheduler about one run."""

    TOPIC: ClassVar[str] = topics.RUN_COMMANDS


class StartRun(RunCommand):
    TYPE: ClassVar[str] = "dev.stepline.run.start.v1"
    workflow: str
    version: int
    trigger: TriggerInfo
    inputs: dict[str, Any] = Field(default_factory=dict)
    trigger_output: dict[str, Any] | None = None
    """The firing trigger node's output when its `variables` reshape it (default: `inputs`)."""
    idempotency_key: str | None = None
    rerun_of: str | None = None
    rerun_from: Literal["start", "failed"] | None = None
    parent_run_id: str | None = None
    """A child run of a SUB_WORKFLOW or FOREACH node: the parent run and its waiting node run."""
    parent_node_run_key: str | None = None
    depth: int = 0


class CancelRun(RunCommand):
    """Cancel a run: start nothing new, cancel waiting and not yet claimed nodes; the run ends
    `CANCELLED` once the node attempts in flight have finished."""

    TYPE: ClassVar[str] = "dev.stepline.run.cancel.v1"
    by: str | None = None


class AdmitRun(RunCommand):
    """A queued run (workflow `concurrencyLimit`) holds a slot now: start it."""

    TYPE: ClassVar[str] = "dev.stepline.run.admit.v1"


class CompleteNode(RunCommand):
    """Asynchronous completion (or progress logs) of a WAITING node run, from the API."""

    TYPE: ClassVar[str] = "dev.stepline.node.complete.v1"
    node_run_key: str
    status: Literal["IN_PROGRESS", "COMPLETED"] = "COMPLETED"
    result: Result | None = None
    output: Any = None
    logs: list[LogEntry] = Field(default_factory=list)
    by: str | None = None
    branch: str | None = None
    """The outlet an INPUT node takes (its connections naming it are followed)."""


class FireTimer(RunCommand):
    """A durable timer came due (retry backoff, node timeout)."""

    TYPE: ClassVar[str] = "dev.stepline.timer.fire.v1"
    timer_id: str
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)


class ReconcileRun(RunCommand):
    """The sweeper found a run idle past its check time: re-apply stored results, re-dispatch."""

    TYPE: ClassVar[str] = "dev.stepline.run.reconcile.v1"


# ---- command to the executor (topic node-dispatch) --------------------------------------------

class RunContext(BaseModel):
    """The run variables a node's templates see (secrets excluded), as of its dispatch."""

    model_config = ConfigDict(frozen=True)
    outputs: dict[str, Any]
    inputs: dict[str, Any]
    trigger: dict[str, Any]


class ExecuteNode(Message):
    TYPE: ClassVar[str] = "dev.stepline.node.execute.v1"
    TOPIC: ClassVar[str] = topics.NODE_DISPATCH
    workflow: str
    version: int
    node_id: str
    attempt: int
    node_run_key: str
    context: RunContext | None = None
    """Inline when small, so the executor need not read the run; None means load it from the store."""


# ---- executor → scheduler (topic node-results) ------------------------------------------------

class NodeResult(Message, Outcome):
    """The outcome of one node attempt, on the wire: an `Outcome` (`waiting`: the action started and
    the node now waits for an external completion; `branch`: the CONDITION option taken, or
    `__fallback__`) of the attempt it names."""

    TYPE: ClassVar[str] = "dev.stepline.node.result.v1"
    TOPIC: ClassVar[str] = topics.NODE_RESULTS
    node_id: str
    attempt: int
    node_run_key: str
    logs: tuple[LogEntry, ...] = Field(default=(), exclude=True)
    """Not sent: a published result stands for its stored node run, whose logs stay in the store."""


# ---- public events (topic run-events): the contract of docs/events.md and docs/asyncapi.yaml ----

class EventTrigger(BaseModel):
    """What started a run, as the API shows it (`at` is ISO 8601)."""

    model_config = ConfigDict(frozen=True)
    type: str = "API"
    by: str | None = None
    at: str | None = None
    node: str = ""


class RunEvent(Message):
    """One state change of one run. The data is camelCase with ISO 8601 times; `seq` counts the
    run's events from 1 and the envelope id is `<runId>/<seq>`, so a redelivery has the same id."""

    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)
    TOPIC: ClassVar[str] = topics.RUN_EVENTS
    seq: int
    at: str
    """When the state change happened (ISO 8601, also the envelope's `time`)."""
    workflow: str
    """The workflow's identifier in its workspace."""
    workspace: str = DEFAULT_WORKSPACE
    version: int

    @property
    def event_id(self) -> str:
        return f"{self.run_id}/{self.seq}"

    @property
    def workflow_key(self) -> str:
        """The workflow's store key (libs/core/workspaces.py)."""
        return scoped(self.workspace, self.workflow)


class RunQueued(RunEvent):
    """Stored without starting: the workflow's `concurrencyLimit` is reached."""

    TYPE: ClassVar[str] = "run.queued"
    trigger: EventTrigger


class RunStarted(RunEvent):
    TYPE: ClassVar[str] = "run.started"
    trigger: EventTrigger


class NodeEvent(RunEvent):
    node_id: str
    attempt: int
    node_run_id: str
    node_type: str


class NodeRunStarted(NodeEvent):
    """An attempt was dispatched: its node run exists and an executor will take it."""

    TYPE: ClassVar[str] = "node.started"


class NodeRunWaiting(NodeEvent):
    """The attempt waits for an outside completion (async WEBHOOK, DELAY, APPROVAL, child runs)."""

    TYPE: ClassVar[str] = "node.waiting"


class NodeRunRetrying(NodeEvent):
    """The attempt failed and attempt `nextAttempt` is due at `retryAt`."""

    TYPE: ClassVar[str] = "node.retrying"
    next_attempt: int
    retry_at: str
    error: str | None = None
    duration_ms: int
    """Of the attempt that failed, from its dispatch."""


class NodeRunCompleted(NodeEvent):
    TYPE: ClassVar[str] = "node.completed"
    result: Result
    error: str | None = None
    duration_ms: int
    """From the attempt's dispatch to its completion."""


class RunCompleted(RunEvent):
    TYPE: ClassVar[str] = "run.completed"
    result: Result
    error: str | None = None
    duration_ms: int
    """From the run's creation (queueing included) to its completion."""


RUN_EVENT_TYPES: tuple[type[RunEvent], ...] = (
    RunQueued, RunStarted, NodeRunStarted, NodeRunWaiting, NodeRunRetrying, NodeRunCompleted, RunCompleted)


# ---- catalog events (topic catalog-events) -----------------------------------------------------

class CatalogDiff(BaseModel):
    model_config = ConfigDict(frozen=True)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class CatalogContext(BaseModel):
    model_config = ConfigDict(frozen=True)
    blueprintIdentifier: str
    entityIdentifier: str


class CatalogEvent(Message):
    """A catalog entity changed, in Port's event shape (`action`, `diff`, `context`, `id`,
    `timestamp`). `run_id` is the entity's key `{blueprint}/{identifier}`, so one entity's changes
    stay ordered in one partition; `id` is what EVENT_TRIGGER de-duplicates on."""

    TYPE: ClassVar[str] = "dev.stepline.catalog.event.v1"
    TOPIC: ClassVar[str] = topics.CATALOG_EVENTS
    id: str
    action: Literal["CREATE", "UPDATE", "DELETE"]
    diff: CatalogDiff
    context: CatalogContext
    timestamp: str
    workspace: str = "default"
    """Only workflows of this workspace see the event."""
    stored: bool = False
    """The change is in Stepline's catalog already (UPSERT_ENTITY made it); the trigger applies every
    other catalog event to the stored entity before it starts runs."""
    attributes: dict[str, Any] | None = None
    """The CloudEvent attributes of an event sent from outside as a CloudEvent (a run's `trigger.event`)."""

    def port_event(self) -> dict[str, Any]:
        """The event as Port shows it (what an EVENT_TRIGGER's output and condition see)."""
        return self.model_dump(mode="json", exclude={"run_id", "workspace", "stored", "attributes"})


# ---- messages from outside Stepline (queue topics, catalog-events) ------------------------------

class ExternalMessage(Message):
    """A record on a topic that accepts outside messages whose value is JSON but not an envelope,
    as the Kafka bus hands it to handlers. `run_id` is the partition key (the record's key, else
    `message_id`); the envelope's id is `message_id`, so a redelivered record has the same id."""

    TYPE: ClassVar[str] = "dev.stepline.external.message.v1"
    topic: str
    partition: int
    offset: int
    key: str | None = None
    value: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    """The record's CloudEvents headers (`ce_` prefixed, binary mode; libs/contracts/cloudevents.py)."""

    @property
    def message_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


# ---- audit log (topic audit) ----------------------------------------------------------------------

AUDIT_KEY = "audit"
"""The partition key of every audit record: they all share one partition."""


class AuditRecorded(Message):
    """A record appended to the audit log (libs/audit), as stored: `{seq, id, at, actor, role,
    workspace, action, target, details, prevHash, hash}`. `run_id` is `AUDIT_KEY`. Published after
    the record is stored, at least once; the store holds the chain of record (a consumer that sees a
    gap in `seq` reads the missing records from `GET /v1/audit`)."""

    TYPE: ClassVar[str] = "dev.stepline.audit.recorded.v1"
    TOPIC: ClassVar[str] = topics.AUDIT
    record: dict[str, Any]


_MESSAGES: tuple[type[Message], ...] = (
    StartRun, CancelRun, AdmitRun, CompleteNode, FireTimer, ReconcileRun, ExecuteNode, NodeResult,
    *RUN_EVENT_TYPES, CatalogEvent, ExternalMessage, AuditRecorded)
MESSAGE_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in _MESSAGES}


def decode(type_: str, data: dict[str, Any]) -> Message:
    model = MESSAGE_TYPES.get(type_)
    if model is None:
        raise UnknownMessageError(f"unknown message type {type_!r}")
    return model.model_validate(data)
