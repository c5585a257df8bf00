"""Executor: claim a node run, perform its action, record the completion, publish the result.

Steps 3–4 of the protocol (docs/architecture.md): the claim and the completion are conditional
updates, so a redelivered ExecuteNode never performs a finished attempt again and never overwrites
someone else's completion; when a claim or completion loses, the stored result is re-published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from libs.access.secret_scope import in_workspace
from libs.bus.node_runs import republish
from libs.bus.publisher import Publisher
from libs.contracts import from_store, v1
from libs.contracts.envelope import Envelope
from libs.core import engine_logs
from libs.core.errors import ActionError, SecretError, TemplateError
from libs.core.limits import Limits
from libs.core.planner import timeout_error
from libs.core.run import FINISHED_BY_EXECUTOR, NodeRun, Outcome
from libs.core.secrets import NoSecrets
from libs.core.templates import build_context
from libs.core.workspaces import public, workspace_of
from libs.expressions import evaluate as expressions
from libs.store.definitions import DefinitionCache
from libs.store.ports import ClaimOutcome, Store
from libs.telemetry import spans
from services.executor import attempt_log
from services.executor.actions.base import Action, ActionInput
from services.executor.leases import Leases
from services.executor.output_limits import within_limits
from services.executor.secret_use import TrackedSecrets, redact_outcome, redacted_failure, tracking

log = logging.getLogger("stepline.executor")


class Executor:
    def __init__(self, store: Store, publisher: Publisher, actions: dict[str, Action], *, owner: str,
                 clock: Callable[[], float], lease_seconds: float, default_timeout: float,
                 concurrency: int = 64, secrets: TrackedSecrets | None = None, limits: Limits = Limits(),
                 api_url: str = "") -> None:
        self.store = store
        self.api_url = api_url.rstrip("/") or None
        """`.run.apiUrl` of templates: the engine's API as node requests reach it."""
        self.limits = limits
        self.secrets = secrets if secrets is not None else TrackedSecrets(NoSecrets())
        self.publisher = publisher
        self.actions = actions
        self.owner = owner
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.default_timeout = default_timeout
        self.definitions = DefinitionCache(store)
        self.slots = asyncio.Semaphore(concurrency)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.in_flight_keys: set[str] = set()
        self.leases = Leases(store, owner=owner, clock=clock, lease_seconds=lease_seconds)

    async def handle(self, envelope: Envelope) -> None:
        msg = envelope.message()
        if isinstance(msg, v1.ExecuteNode):
            await self.execute(msg)

    async def execute(self, msg: v1.ExecuteNode) -> None:
        if msg.node_run_key in self.in_flight_keys:
            return  # a re-drive of an attempt this executor is performing right now
        now = self.clock()
        claim = await self.store.claim_node_run(msg.node_run_key, owner=self.owner, now=now,
                                                lease_until=now + self.lease_seconds)
        if claim.outcome is ClaimOutcome.COMPLETED and claim.node_run is not None:
            await self.publish_result(claim.node_run)
        if claim.outcome is not ClaimOutcome.CLAIMED or claim.node_run is None:
            return
        # The claim is the durable write: acknowledge the message and run the action concurrently
        # (fan-out siblings share a partition). A crash from here on is repaired by lease expiry.
        self.leases.hold(msg.node_run_key)
        await self.slots.acquire()
        task = asyncio.create_task(self._attempt(msg, claim.node_run))
        self.in_flight.add(task)
        self.in_flight_keys.add(msg.node_run_key)
        task.add_done_callback(lambda t: self._finished(t, msg.node_run_key))

    def _finished(self, task: asyncio.Task[None], key: str) -> None:
        self.in_flight.discard(task)
        self.in_flight_keys.discard(key)
        self.leases.release(key)
        self.slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("node attempt failed unexpectedly; the sweeper will re-drive it",
                      exc_info=task.exception())

    async def _attempt(self, msg: v1.ExecuteNode, record: NodeRun) -> None:
        traced = spans.node_attempt(msg.run_id, public(msg.workflow), msg.node_id, record.node_type, record.attempt)
        with traced as span:
            context = msg.context or await self._load_context(msg.run_id)
            with in_workspace(workspace_of(msg.workflow)):  # secrets, entities and child runs of the run's workspace
                outcome = await self.perform(msg, context, record)
            if outcome.result is not None and outcome.result != "SUCCESS":
                spans.failed(span, outcome.error or outcome.result)
            await self.record(msg.node_run_key, outcome)

    async def _load_context(self, run_id: str) -> v1.RunContext:
        return from_store.run_context(await self.store.get_run(run_id))

    async def drain(self) -> None:
        """Graceful stop: let every in-flight attempt finish and record its completion."""
        while self.in_flight:
            await asyncio.gather(*list(self.in_flight), return_exceptions=True)

    async def perform(self, msg: v1.ExecuteNode, run: v1.RunContext, record: NodeRun) -> Outcome:
        """One attempt. Every secret value it reveals is masked in the outcome it returns, and an
        unexpected exception of such an attempt is re-raised without them (secret_use.py)."""
        with tracking() as revealed, attempt_log.collecting() as lines:
            try:
                outcome = within_limits(await self._perform(msg, run, record), run, self.limits)
                outcome = await self._with_engine_logs(msg, record, outcome, lines)
            except Exception as exc:
                if not revealed:
                    raise
                raise redacted_failure(exc, revealed) from None
        return redact_outcome(outcome, revealed)

    async def _with_engine_logs(self, msg: v1.ExecuteNode, record: NodeRun, outcome: Outcome,
                                lines: attempt_log.AttemptLog) -> Outcome:
        """The outcome with the attempt's engine log lines first (stored by the same write; the
        attempt's start is not among them: it is derived from the record, engine_logs.shown)."""
        node = (await self.definitions.get(msg.workflow, msg.version)).node(msg.node_id)
        now = self.clock()
        added = lines.entries()
        if outcome.waiting:
            added.append(engine_logs.waiting(node.type, outcome.output, now))
        elif outcome.result == "FAILED" and outcome.retryable and node.retry is not None \
                and record.attempt < node.max_attempts:
            delay = node.retry.delay_before(record.attempt + 1)
            added.append(engine_logs.retry_scheduled(record.attempt + 1, node.max_attempts, delay,
                                                     outcome.error, now))
        if not added:
            return outcome
        fitting = engine_logs.within_limits(record.logs, added, self.limits)
        return outcome.model_copy(update={"logs": (*fitting, *outcome.logs)})

    async def _perform(self, msg: v1.ExecuteNode, run: v1.RunContext, record: NodeRun) -> Outcome:
        workflow = await self.definitions.get(msg.workflow, msg.version)
        node = workflow.node(msg.node_id)
        action = self.actions.get(node.type)
        if action is None:
            return Outcome(result="FAILED", error=f"node type {node.type} is not supported by this executor")
        timeout = node.timeoutSeconds or self.default_timeout
        try:
            refs = self.secrets.refs(msg.workflow, msg.version, node.identifier, node.config)
            secrets = await self.secrets.for_templates(refs) if not refs.none else {}
            context = build_context(outputs=run.outputs, inputs=run.inputs, secrets=secrets,
                                    trigger=run.trigger, run={"id": msg.run_id, "workflow": public(msg.workflow),
                                                              "version": msg.version, "apiUrl": self.api_url})
            at = expressions.node_at(workflow, node.identifier)
            config = await expressions.render_config(node.config, context, at=f"{at}/config")
            data = ActionInput(node=node, config=config, context=context, run_id=msg.run_id, node_run_id=record.id,
                               node_run_key=record.key, attempt=record.attempt, timeout=timeout, at=at)
            async with asyncio.timeout(timeout):  # in this task: no task per attempt
                result = await action.execute(data)
            if result.waiting:
                return Outcome(output=result.output, waiting=True)
            shaped = await expressions.shaped_output(workflow, node.identifier, result.output)
            if shaped.error is not None:
                return Outcome(result="FAILED", error=shaped.error)
            return Outcome(result="SUCCESS", output=shaped.output, branch=result.branch)
        except (TemplateError, SecretError) as exc:
            return Outcome(result="FAILED", error=exc.message)
        except ActionError as exc:
            return Outcome(result="FAILED", output=exc.output, error=exc.message, retryable=exc.retryable)
        except TimeoutError:
            attempt_log.add(engine_logs.timed_out(timeout, self.clock()))
            return Outcome(result="FAILED", error=timeout_error(timeout), retryable=True)

    async def record(self, key: str, outcome: Outcome) -> None:
        now = self.clock()
        if outcome.waiting:
            if await self.store.mark_waiting(key, owner=self.owner, now=now, output=outcome.output,
                                             logs=outcome.logs):
                stored = await self.store.get_node_run(key)
                await self.publish_result(stored)
                return
        else:
            done = await self.store.finish_node_run(key, outcome, now=now, from_statuses=FINISHED_BY_EXECUTOR,
                                                   owner=self.owner)
            if done is not None:
                await self.publish_result(done)
                return
        await self.publish_result(await self.store.get_node_run(key))

    async def publish_result(self, record: NodeRun) -> None:
        await republish(self.publisher, record)
