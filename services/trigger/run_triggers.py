"""EVENT_TRIGGER on runs (`event: {source: "run", workflow, events}`, libs/core/run_triggers.py): a run
starts when a run of another workflow (or of its own) completes.

The trigger workers consume the run-events topic in one group shared by the replicas
(`stepline-trigger-runs`), in embedded and distributed mode alike. For each `run.completed` event they
read the completed run and start a run (trigger type `RUN`, output `run_payload`: that run's result and
outputs) of every live run-watching EVENT_TRIGGER of the same workspace that watches its workflow and
result, whose `condition` holds on the output and whose workflow is not paused. The idempotency key
`run:{completed run id}:{trigger node}` makes a redelivered event start nothing new.

Chains are bounded: the started run is one deeper (`depth`) than the completed one, and a completed
run at `STEPLINE_MAX_RUN_DEPTH` starts nothing (logged), so a workflow that triggers itself stops.
A run that completed before the listening workflow was created starts nothing (a new consumer group
reads the topic from its oldest retained event).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from libs.bus.ports import ForTypes
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.errors import NotFoundError, TemplateError
from libs.core.run import Run
from libs.core.run_triggers import fires_on, run_payload, watches_runs
from libs.core.workspaces import belongs_to, split
from libs.expressions import evaluate as expressions
from libs.runtime.service import Subscription
from libs.store.pausing import is_paused
from libs.store.ports import Store
from services.trigger.event_triggers import NODE_TYPE, condition_holds
from services.trigger.live_triggers import LiveTrigger, LiveTriggers
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter, TriggerStart

GROUP_SUFFIX: Final = "-runs"
TRIGGER_TYPE: Final = "RUN"
log = logging.getLogger("stepline.trigger.runs")


class RunTriggers:
    def __init__(self, store: Store, starter: RunStarter, live: LiveTriggers, *, max_depth: int) -> None:
        self.store = store
        self.starter = starter
        self.live = live
        self.max_depth = max_depth

    async def handle(self, envelope: Envelope) -> None:
        """The run-events handler: only `run.completed` matters."""
        if envelope.type != v1.RunCompleted.TYPE:
            return
        event = envelope.message()
        assert isinstance(event, v1.RunCompleted)
        watching = [t for t in await self.live.of_type(NODE_TYPE)
                    if watches_runs(t.node.config) and belongs_to(t.workflow.identifier, event.workspace)
                    and fires_on(t.node.config, event.workflow, event.result)]
        if not watching:
            return
        try:
            run = await self.store.get_run(event.run_id)
        except NotFoundError:  # an event of another installation's store on a shared topic
            log.warning("run %s of a run.completed event is not in the store: it starts nothing", event.run_id)
            return
        await self.fire(run, event.workflow, watching)

    async def fire(self, run: Run, workflow: str, watching: list[LiveTrigger]) -> None:
        """Start a run of each trigger in `watching` for the completed `run` (of `workflow`)."""
        if run.depth + 1 > self.max_depth:
            log.warning("run %s of %s is at depth %d (STEPLINE_MAX_RUN_DEPTH %d): its completion starts no "
                        "run (does a workflow trigger on itself?)", run.id, workflow, run.depth, self.max_depth)
            return
        payload = run_payload(run, workflow)
        for trigger in watching:
            if await self._may_start(trigger, run, payload):
                await self.starter.fire(TriggerStart(
                    workflow=trigger.workflow.identifier, version=trigger.version, node=trigger.node.identifier,
                    trigger_type=TRIGGER_TYPE, output=payload, wait=False, depth=run.depth + 1,
                    idempotency_key=f"run:{run.id}:{trigger.node.identifier}"))

    async def _may_start(self, trigger: LiveTrigger, run: Run, payload: dict[str, Any]) -> bool:
        workflow = trigger.workflow.identifier
        record = await self.store.get_workflow(workflow)
        if (run.completed_at or run.updated_at) < record.created_at:
            return False
        if await is_paused(self.store, workflow):
            log.info("workflow %s is paused: the completion of run %s starts no run", workflow, run.id)
            return False
        try:
            at = f"{expressions.node_at(trigger.workflow, trigger.node.identifier)}/config"
            return await condition_holds(trigger.node.config, payload, at=at)
        except TemplateError as exc:
            log.warning("workflow %s trigger %s: condition failed on run %s, so it does not match: %s",
                        split(workflow)[1], trigger.node.identifier, run.id, exc.message)
            return False


def run_trigger_subscription(settings: TriggerSettings, store: Store, starter: RunStarter, live: LiveTriggers, *,
                             group: str) -> Subscription:
    triggers = RunTriggers(store, starter, live, max_depth=settings.limits().max_run_depth)
    completions = ForTypes(frozenset({v1.RunCompleted.TYPE}), triggers.handle)
    return Subscription(topics.RUN_EVENTS, group + GROUP_SUFFIX, completions)
