"""The start sequence of a run is the same on every start path: `run.started` precedes every other
event of the run (only `run.queued` may come before it), read from the run-events topic of an
embedded engine for a direct start, a run queued by `concurrencyLimit` and admitted later, a child
run of SUB_WORKFLOW, a rerun from `failed`, and a run started by a message on a QUEUE_TRIGGER topic."""

from __future__ import annotations

from typing import Any

from libs.contracts.envelope import Envelope
from stepline.embedded import Engine
from tests.auth_helpers import engine_client
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, wait_run, webhook
from tests.service.test_queue_trigger import external, queued, wait_runs
from tests.service.test_run_control import complete, start, until, waiting, waiting_hook
from tests.service.test_run_events import Events, watched
from tests.service.test_waiting_nodes import node

__all__ = ["watched"]


def opening_is_the_start(stream: list[Envelope]) -> list[str]:
    """The run's event types; fails unless `run.started` comes before everything but `run.queued`."""
    kinds = [e.type for e in stream]
    assert "run.started" in kinds, kinds
    assert kinds[:kinds.index("run.started")] in ([], ["run.queued"]), kinds
    assert [e.data["seq"] for e in stream] == list(range(1, len(stream) + 1)), kinds
    return kinds


async def test_run_started_precedes_every_other_event_on_every_start_path(
        watched: tuple[Engine, Events], target: Target) -> None:
    engine, events = watched
    async with engine_client(engine) as api:
        runs = await every_start_path(api, engine, target)
    for name, run_id in runs.items():
        kinds = opening_is_the_start(await events.completed(run_id))
        assert kinds[-1] == "run.completed", name
    queued_kinds = [e.type for e in events.of(runs["admitted"])]
    assert queued_kinds[:3] == ["run.queued", "run.started", "node.completed"], queued_kinds


async def every_start_path(api: Any, engine: Engine, target: Target) -> dict[str, str]:
    """One finished run per start path, by name."""
    await create(api, chain("direct", webhook("call", f"{target.base_url}/direct")))
    runs = {"direct": (await start(api, "direct"))["identifier"]}
    runs.update(await queued_then_admitted(api, target))
    runs.update(await child_and_rerun(api, target))
    await create(api, queued("on-order"))
    await engine.bus.publish("orders.v1", external({"order": 1}, offset=0))
    [message_run] = await wait_runs(engine, "on-order", 1)
    runs["queue-trigger"] = message_run.id
    for run_id in runs.values():
        await wait_run(api, run_id)
    return runs


async def queued_then_admitted(api: Any, target: Target) -> dict[str, str]:
    await create(api, {**chain("gated", waiting_hook(target)), "concurrencyLimit": 1})
    first = await start(api, "gated")
    await until(api, first["identifier"], waiting("hook"))
    second = await start(api, "gated")
    assert second["status"] == "QUEUED"
    await complete(api, await until(api, first["identifier"], waiting("hook")), "hook")
    await complete(api, await until(api, second["identifier"], waiting("hook")), "hook")
    return {"first": first["identifier"], "admitted": second["identifier"]}


async def child_and_rerun(api: Any, target: Target) -> dict[str, str]:
    await create(api, chain("child", webhook("call", f"{target.base_url}/child")))
    await create(api, chain("parent", node("sub", {"type": "SUB_WORKFLOW", "workflowIdentifier": "child"})))
    parent = await wait_run(api, (await start(api, "parent"))["identifier"])
    assert parent["result"] == "SUCCESS", parent
    await create(api, chain("flaky", webhook("first", f"{target.base_url}/first"),
                            webhook("second", f"{target.base_url}/flaky/1/second")))
    failed = await wait_run(api, (await start(api, "flaky"))["identifier"])
    assert failed["result"] == "FAILED", failed
    response = await api.post(f"/v1/workflows/runs/{failed['identifier']}/rerun", json={"from": "failed"})
    assert response.status_code == 201, response.text
    return {"parent": parent["identifier"], "child": parent["variables"]["outputs"]["sub"]["runId"],
            "failed": failed["identifier"], "rerun": response.json()["workflowRun"]["identifier"]}
