"""Starting a run from the API: resolve the version, validate inputs against the SELF_SERVE_TRIGGER,
publish `StartRun`, then wait for the scheduler to insert the run (the trigger never writes runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs.access.principal import Principal
from libs.access.trigger_permissions import has_policy, may_start
from libs.bus.publisher import Publisher
from libs.contracts import v1
from libs.core.definition import Node, Workflow
from libs.core.errors import ConflictError, ForbiddenError
from libs.core.inputs import validate_inputs
from libs.core.run import Run, TriggerInfo, new_run_id
from libs.core.versioning import WorkflowRecord, is_valid_tag
from libs.core.versioning import resolve_version as version_of
from libs.core.workspaces import public
from libs.expressions import evaluate as expressions
from libs.store.definitions import DefinitionCache
from libs.store.pausing import is_paused
from libs.store.ports import Store
from services.trigger.errors import invalid
from services.trigger.input_defaults import with_jq_defaults
from services.trigger.run_waiters import RunWaiters
from services.trigger.waiting import wait_for_insert

SELF_SERVE = "SELF_SERVE_TRIGGER"


@dataclass(frozen=True)
class StartRequest:
    workflow: str
    inputs: dict[str, Any] | None = None
    version: int | None = None
    tag: str | None = None
    idempotency_key: str | None = None
    caller: Principal | None = None
    """Who starts it: checked against the trigger's `permissions`; its `user` is the run's `createdBy`."""

    @property
    def by(self) -> str | None:
        return self.caller.user if self.caller is not None else None


@dataclass(frozen=True)
class StartOutcome:
    run_id: str
    workflow: str
    version: int
    run: Run | None
    """None when the scheduler did not insert the run within the accept timeout."""
    repeated: bool
    """An earlier request with the same idempotency key already started this run."""


async def refuse_if_paused(store: Store, workflow: str) -> None:
    """ConflictError (409) while the workflow is paused."""
    if await is_paused(store, workflow):
        raise ConflictError(f"workflow {workflow!r} is paused, so it starts no runs; resume it with "
                            f"POST /v1/workflows/{workflow}/resume")


def resolve_version(record: WorkflowRecord, version: int | None, tag: str | None) -> int:
    """The version a run starts on: the one asked for, the one `tag` points at, or `$LIVE`."""
    if version is not None and tag is not None:
        raise invalid("/tag", "give either version or tag, not both")
    if version is None and tag is not None and not is_valid_tag(tag):
        raise invalid("/tag", f"tag {tag!r} must match ^\\$[A-Z_]+$ (at most 60 characters)")
    return version_of(record, version, tag)


def self_serve_trigger(workflow: Workflow, version: int) -> Node:
    for node in workflow.nodes:
        if node.type == SELF_SERVE:
            return node
    raise ConflictError(f"workflow {workflow.identifier!r} version {version} has no {SELF_SERVE} node, "
                        "so it cannot be started through the API")


def check_permitted(request: StartRequest, trigger: Node, inputs: dict[str, Any] | None) -> None:
    """ForbiddenError unless the caller may start the trigger (`config.permissions`, its `policy`
    reading `inputs` as the form)."""
    if request.caller is not None and not may_start(trigger.config, request.caller, inputs):
        raise ForbiddenError(f"{request.caller.user!r} may not start {public(request.workflow)!r}: its "
                             f"{SELF_SERVE} node {trigger.identifier!r} lists who may (config.permissions)")


def start_message(request: StartRequest, run_id: str, version: int, trigger: Node,
                  inputs: dict[str, Any], now: float, output: dict[str, Any] | None = None) -> v1.StartRun:
    context = TriggerInfo(type="API", by=request.by, at=now, node=trigger.identifier)
    return v1.StartRun(run_id=run_id, workflow=request.workflow, version=version, trigger=context,
                       inputs=inputs, trigger_output=output, idempotency_key=request.idempotency_key)


async def shaped_output(workflow: Workflow, node: Node, payload: dict[str, Any]) -> dict[str, Any] | None:
    """What the trigger node's `variables` make of its payload, Port's way (None without variables:
    the payload is its output). A 422 naming the workflow's field when one fails."""
    if not node.variables:
        return None
    shaped = await expressions.shaped_output(workflow, node.identifier, payload)
    if shaped.error is not None:
        at = f"{expressions.node_at(workflow, node.identifier)}/variables"
        raise invalid(at, f"the trigger node's variables (workflow definition, {at}) failed: {shaped.error}")
    return shaped.output if isinstance(shaped.output, dict) else {"value": shaped.output}


@dataclass(frozen=True)
class TriggerStart:
    """A run started by a trigger node other than SELF_SERVE_TRIGGER (webhook, event, schedule,
    queue): `output` becomes the trigger node's output and the run's inputs."""

    workflow: str
    version: int
    node: str
    """The identifier of the trigger node that fired."""
    trigger_type: str
    """`WEBHOOK`, `EVENT`, `SCHEDULE`, `QUEUE`."""
    output: dict[str, Any]
    idempotency_key: str | None = None
    """Derive it from the delivery (webhook delivery id, event id, tick, topic/partition/offset) so a
    redelivered trigger starts nothing new."""
    by: str | None = None
    wait: bool = True
    """Wait up to the accept timeout for the scheduler to insert the run."""
    event: dict[str, Any] | None = None
    """The attributes of the CloudEvent that fired it (`.trigger.event`)."""
    depth: int = 0
    """The run's depth (a run started by another run's completion is one deeper than it)."""


class RunStarter:
    def __init__(self, store: Store, publisher: Publisher, definitions: DefinitionCache, clock: Callable[[], float],
                 accept_timeout: float, waiters: RunWaiters | None = None) -> None:
        """With `waiters` (fed by the run-events stream), a start waits for its run's first event
        instead of polling the store."""
        self._waiters = waiters
        self._store = store
        self._publisher = publisher
        self._definitions = definitions
        self._clock = clock
        self._accept_timeout = accept_timeout

    async def start(self, request: StartRequest) -> StartOutcome:
        record = await self._store.get_workflow(request.workflow)
        version = resolve_version(record, request.version, request.tag)
        repeat = await self._repeat(request.workflow, request.idempotency_key)
        if repeat is not None:
            return repeat
        await refuse_if_paused(self._store, request.workflow)
        definition = await self._definitions.get(record.identifier, version)
        trigger = self_serve_trigger(definition, version)
        if not has_policy(trigger.config):  # refused before the inputs are read; a policy may read them
            check_permitted(request, trigger, None)
        user_inputs = trigger.config.get("userInputs")
        form = user_inputs if isinstance(user_inputs, dict) else {}
        at = f"{expressions.node_at(definition, trigger.identifier)}/config"
        inputs = validate_inputs(form, await with_jq_defaults(form, request.inputs or {}, request.by, at=at))
        check_permitted(request, trigger, inputs)
        output = await shaped_output(definition, trigger, inputs)
        return await self.send(start_message(request, new_run_id(), version, trigger, inputs, self._clock(), output))

    async def fire(self, start: TriggerStart) -> StartOutcome:
        """Start a run from a trigger node. The caller checks pausing (its answer differs by ingress)."""
        repeat = await self._repeat(start.workflow, start.idempotency_key)
        if repeat is not None:
            return repeat
        workflow = await self._definitions.get(start.workflow, start.version)
        output = await shaped_output(workflow, workflow.node(start.node), start.output)
        context = TriggerInfo(type=start.trigger_type, by=start.by, at=self._clock(), node=start.node,
                              event=start.event)
        return await self.send(v1.StartRun(run_id=new_run_id(), workflow=start.workflow, version=start.version,
                                           trigger=context, inputs=start.output, trigger_output=output,
                                           idempotency_key=start.idempotency_key, depth=start.depth), wait=start.wait)

    async def send(self, message: v1.StartRun, *, wait: bool = True) -> StartOutcome:
        """Publish `message`; with `wait`, wait up to the accept timeout for the scheduler to insert
        the run (or the earlier run holding its idempotency key)."""
        if not wait:
            await self._publisher.publish(message)
            return StartOutcome(message.run_id, message.workflow, message.version, None, repeated=False)
        with self._waiters.starting(message.run_id) if self._waiters else contextlib.nullcontext() as woken:
            await self._publisher.publish(message)
            run = await wait_for_insert(self._store, message.run_id, message.workflow, message.idempotency_key,
                                        self._accept_timeout, woken)
        return StartOutcome(message.run_id, message.workflow, message.version, run,
                            repeated=run is not None and run.id != message.run_id)

    async def _repeat(self, workflow: str, idempotency_key: str | None) -> StartOutcome | None:
        if idempotency_key is None:
            return None
        run = await self._store.find_run_by_idempotency_key(workflow, idempotency_key)
        if run is None:
            return None
        return StartOutcome(run.id, run.workflow, run.version, run, repeated=True)
