"""EVENT_TRIGGER on runs in the embedded engine: a workflow starts when another one's run completes,
with that run's result and outputs as its trigger output; only the watched results fire; a
redelivered `run.completed` starts nothing new; a workflow that triggers itself stops at
STEPLINE_MAX_RUN_DEPTH; a bad config is refused naming the field.

"Nothing started" is asserted after `bus.drain()` twice: the first waits until the run-triggers group
handled the completion (its StartRun published), the second until the scheduler stored the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from tests.auth_helpers import auth_headers, new_key
from tests.service.test_catalog import runs_of, settled
from tests.service.test_embedded_runs import chain, create, run_to_end, trigger, wait_run


def transform(identifier: str, expression: str) -> dict[str, Any]:
    return {"identifier": identifier, "config": {"type": "TRANSFORM", "expression": expression}}


def on_runs(workflow: str, events: list[str], *, watched: str = "build", condition: list[str] | None = None,
            self_serve: bool = False) -> dict[str, Any]:
    """`workflow` starts when a run of `watched` completes with one of `events`; its `seen` node keeps
    what it was told."""
    config: dict[str, Any] = {"type": "EVENT_TRIGGER",
                              "event": {"source": "run", "workflow": watched, "events": events}}
    if condition is not None:
        config["condition"] = {"type": "JQ", "expressions": condition}
    nodes = [{"identifier": "on-run", "config": config},
             transform("seen", '.outputs["on-run"] | {type, runId, result, error, outputs}')]
    connections = [{"sourceIdentifier": "on-run", "targetIdentifier": "seen"}]
    if self_serve:
        nodes.append(trigger())
        connections.append({"sourceIdentifier": "trigger", "targetIdentifier": "seen"})
    return {"identifier": workflow, "nodes": nodes, "connections": connections}


async def only_run(api: httpx.AsyncClient, workflow: str) -> dict[str, Any]:
    [run] = await runs_of(api, workflow)
    return await wait_run(api, run["identifier"])


async def test_a_completion_starts_the_watching_workflows_with_the_runs_outputs(
        api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, chain("build", transform("compile", '{artifact: "app-1.4.2.tar.gz"}')))
    await create(api, on_runs("deploy-after-build", ["run.completed"]))
    await create(api, on_runs("page-on-failure", ["run.failed"]))
    await create(api, on_runs("gold-only", ["run.completed"],
                              condition=['.outputs.compile.artifact | startswith("gold")']))
    build = await run_to_end(api, "build")
    await settled(engine)

    deploy = await only_run(api, "deploy-after-build")
    assert deploy["result"] == "SUCCESS"
    assert deploy["trigger"]["type"] == "RUN"
    told = deploy["variables"]["outputs"]["seen"]
    assert told == {"type": "run.completed", "runId": build["identifier"], "result": "SUCCESS", "error": None,
                    "outputs": build["variables"]["outputs"]}
    assert told["outputs"]["compile"] == {"artifact": "app-1.4.2.tar.gz"}
    assert deploy["inputs"]["workflow"] == "build" and deploy["inputs"]["durationMs"] >= 0
    assert await runs_of(api, "page-on-failure") == []
    assert await runs_of(api, "gold-only") == [], "the condition sees the completed run"


async def test_a_failed_run_fires_run_failed_with_its_error(api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, chain("build", transform("compile", 'error("compiler crashed")')))
    await create(api, on_runs("page-on-failure", ["run.failed"]))
    await create(api, on_runs("deploy-after-build", ["run.completed"]))
    build = await run_to_end(api, "build")
    assert build["result"] == "FAILED"
    await settled(engine)

    page = await only_run(api, "page-on-failure")
    told = page["variables"]["outputs"]["seen"]
    assert (told["type"], told["runId"], told["result"]) == ("run.failed", build["identifier"], "FAILED")
    assert "compiler crashed" in str(told["error"])
    assert await runs_of(api, "deploy-after-build") == []


async def test_a_redelivered_completion_starts_nothing_new(api: httpx.AsyncClient, engine: Any) -> None:
    completions: list[Envelope] = []

    async def keep(envelope: Envelope) -> None:
        if envelope.type == v1.RunCompleted.TYPE:
            completions.append(envelope)

    await engine.bus.add_subscription(topics.RUN_EVENTS, "tests-completions", keep)
    await create(api, chain("build", transform("compile", "1")))
    await create(api, on_runs("deploy-after-build", ["run.completed"]))
    build = await run_to_end(api, "build")
    await settled(engine)
    [completed] = [e for e in completions if e.subject == build["identifier"]]
    await engine.bus.publish(topics.RUN_EVENTS, completed)
    await settled(engine)
    assert len(await runs_of(api, "deploy-after-build")) == 1


async def test_another_workspaces_workflow_of_the_same_name_is_not_watched(
        api: httpx.AsyncClient, engine: Any) -> None:
    await create(api, on_runs("deploy-after-build", ["run.completed"]))
    headers = await new_key(engine.store, user="bob@example.com", workspace="team-b")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://127.0.0.1",
                                 headers=headers) as team_b:
        await create(team_b, chain("build", transform("compile", "1")))
        assert (await run_to_end(team_b, "build"))["result"] == "SUCCESS"
    await settled(engine)
    assert await runs_of(api, "deploy-after-build") == []


@pytest.fixture
async def shallow_engine(tmp_path: Path) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    engine = Engine(EmbeddedSettings(data_dir=tmp_path / "data", partitions=2, max_run_depth=3))
    await engine.start()
    yield engine
    await engine.stop()


async def test_a_workflow_that_triggers_itself_stops_at_the_run_depth_limit(shallow_engine: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=shallow_engine.app), base_url="http://127.0.0.1",
                                 headers=auth_headers(shallow_engine)) as api:
        await create(api, on_runs("again", ["run.completed"], watched="again", self_serve=True))
        latest = await run_to_end(api, "again")
        while True:
            await settled(shallow_engine)
            runs = await runs_of(api, "again")
            newest = max(runs, key=lambda r: r["createdAt"])
            if newest["identifier"] == latest["identifier"]:
                break
            latest = await wait_run(api, newest["identifier"])
            assert latest["inputs"]["runId"] in {r["identifier"] for r in runs}
    assert len(runs) == 4, "depths 0, 1, 2 and 3; the run at depth 3 (the limit) starts none"


async def test_bad_run_trigger_configs_are_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    missing = on_runs("bad-missing", ["run.completed"])
    del missing["nodes"][0]["config"]["event"]["workflow"]
    response = await api.post("/v1/workflows", json=missing)
    assert response.status_code == 422
    assert [d["pointer"] for d in response.json()["details"]] == ["/nodes/0/config/event/workflow"]

    unknown = on_runs("bad-event", ["run.finished"])
    response = await api.post("/v1/workflows", json=unknown)
    assert response.status_code == 422
    [detail] = response.json()["details"]
    assert detail["pointer"] == "/nodes/0/config/event/events/0"
    assert "run.completed, run.failed, run.cancelled" in detail["message"]
