"""The run-status stream (`stepline.run-events.v1`) as docs/events.md and docs/asyncapi.yaml describe
it, read from the bus of an embedded engine while real runs retry, fail, wait, queue and are
cancelled: every message validates against the AsyncAPI document, every documented type occurs, and
each run's ids are `<runId>/1..n` in order, ending with the result the API shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from libs.contracts import topics
from libs.contracts.envelope import Envelope
from stepline.embedded import Engine
from stepline.settings import EmbeddedSettings
from tests.auth_helpers import engine_client
from tests.conftest import Target
from tests.service.test_embedded_runs import chain, create, wait_run, webhook
from tests.service.test_run_control import complete, start, until, waiting, waiting_hook

ASYNCAPI = Path(__file__).parents[2] / "docs" / "asyncapi.yaml"


class Events:
    """Every envelope on the run-events topic, and a way to await a run's completion event."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []
        self.changed = asyncio.Condition()

    async def handle(self, envelope: Envelope) -> None:
        async with self.changed:
            self.seen.append(envelope)
            self.changed.notify_all()

    def of(self, run_id: str) -> list[Envelope]:
        return [e for e in self.seen if e.subject == run_id]

    async def completed(self, run_id: str) -> list[Envelope]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(
                lambda: any(e.type == "run.completed" for e in self.of(run_id))), 10)
        return self.of(run_id)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Engine, Events]]:
    settings = EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                lease_seconds=5.0, partitions=4)
    engine, events = Engine(settings), Events()
    engine.bus.subscribe(topics.RUN_EVENTS, "test-run-events", events.handle)
    await engine.start()
    yield engine, events
    await engine.stop()


def validators(channel: str = "runEvents") -> dict[str, Draft7Validator]:
    """The AsyncAPI document's payload schema of each message name (`type`) of one channel
    (`workflowStats`: tests/e2e/test_workflow_stats_on_broker.py)."""
    doc = yaml.safe_load(ASYNCAPI.read_text())
    registry: Registry[Any] = Registry().with_resource("urn:asyncapi", Resource.from_contents(doc, default_specification=DRAFT7))
    named = {}
    for key in (m["$ref"].rsplit("/", 1)[1] for m in doc["channels"][channel]["messages"].values()):
        message = doc["components"]["messages"][key]
        ref = message["payload"]["$ref"]
        named[message["name"]] = Draft7Validator({"$ref": f"urn:asyncapi{ref}"}, registry=registry)
        assert ref == f"#/components/schemas/{key}"
    return named


async def scenario(api: httpx.AsyncClient, target: Target) -> dict[str, dict[str, Any]]:
    """Runs covering every event type; their final API views by name."""
    await create(api, chain("flaky", webhook("call", f"{target.base_url}/flaky/1/x",
                                             retry={"maxAttempts": 2, "initialIntervalSeconds": 0.05})))
    await create(api, chain("broken", webhook("call", f"{target.base_url}/status/400")))
    await create(api, {**chain("gated", waiting_hook(target)), "concurrencyLimit": 1})
    runs = {"flaky": await start(api, "flaky"), "broken": await start(api, "broken")}
    runs["first"] = await start(api, "gated")
    await until(api, runs["first"]["identifier"], waiting("hook"))
    runs["queued"] = await start(api, "gated")
    assert runs["queued"]["status"] == "QUEUED"
    await api.post(f"/v1/workflows/runs/{runs['first']['identifier']}/cancel")
    second = await until(api, runs["queued"]["identifier"], waiting("hook"))
    await complete(api, second, "hook")
    return {name: await wait_run(api, run["identifier"]) for name, run in runs.items()}


async def test_the_stream_follows_the_asyncapi_document(watched: tuple[Engine, Events], target: Target) -> None:
    engine, events = watched
    async with engine_client(engine) as api:
        final = await scenario(api, target)
    schemas = validators()
    for name, run in final.items():
        stream = await events.completed(run["identifier"])
        for envelope in stream:
            raw = envelope.model_dump(mode="json")
            errors = [e.message for e in schemas[envelope.type].iter_errors(raw)]
            assert errors == [], f"{name}: {raw} does not match docs/asyncapi.yaml: {errors}"
        assert [e.id for e in stream] == [f"{run['identifier']}/{n}" for n in range(1, len(stream) + 1)]
        assert [e.data["seq"] for e in stream] == list(range(1, len(stream) + 1))
        assert stream[-1].type == "run.completed" and stream[-1].data["result"] == run["result"], name
        assert all(e.time == e.data["at"] for e in stream)
    assert {e.type for e in events.seen} == set(schemas), "every documented type occurs, nothing else"


async def test_each_state_change_reports_what_happened(watched: tuple[Engine, Events], target: Target) -> None:
    engine, events = watched
    async with engine_client(engine) as api:
        final = await scenario(api, target)

    def kinds(name: str) -> list[str]:
        return [e.type for e in events.of(final[name]["identifier"])]

    assert kinds("flaky") == ["run.started", "node.completed", "node.started", "node.retrying", "node.started",
                              "node.completed", "run.completed"]
    retrying = next(e.data for e in events.of(final["flaky"]["identifier"]) if e.type == "node.retrying")
    assert (retrying["attempt"], retrying["nextAttempt"]) == (1, 2) and "503" in retrying["error"]
    flaky_end = events.of(final["flaky"]["identifier"])[-1].data
    assert flaky_end["result"] == "SUCCESS" and flaky_end["durationMs"] >= 50, "the 50 ms backoff is in the run"
    broken = [e.data for e in events.of(final["broken"]["identifier"]) if e.type == "node.completed"][-1]
    assert (broken["nodeId"], broken["result"]) == ("call", "FAILED") and "400" in broken["error"]
    assert kinds("first")[-3:] == ["node.waiting", "node.completed", "run.completed"]
    assert events.of(final["first"]["identifier"])[-1].data["result"] == "CANCELLED"
    assert kinds("queued")[:2] == ["run.queued", "run.started"]
    node_run_ids = {nr["identifier"] for nr in final["queued"]["nodeRuns"]}
    assert {e.data["nodeRunId"] for e in events.of(final["queued"]["identifier"]) if "nodeRunId" in e.data} <= node_run_ids


def engine_on(data_dir: Path) -> Engine:
    return Engine(EmbeddedSettings(data_dir=data_dir, stale_seconds=0.5, sweep_interval_seconds=0.1,
                                   lease_seconds=5.0, partitions=4))


async def run_then_die_before_publishing_its_end(data_dir: Path, target: Target,
                                                 monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Events]:
    """An engine whose scheduler stores a run's last state change with its events and 'dies' before
    publishing them (its relay does nothing for that change); the run as the API shows it and the
    events that were published."""
    from services.scheduler.handlers import Scheduler

    real_relay = Scheduler.relay

    async def dies_before_publishing_the_end(self: Scheduler, run: Any, *, clear: bool = True) -> Any:
        if any(raw["type"] == "run.completed" for raw in run.outbox):
            return run
        return await real_relay(self, run, clear=clear)

    engine, published = engine_on(data_dir), Events()
    engine.bus.subscribe(topics.RUN_EVENTS, "test-run-events", published.handle)
    with monkeypatch.context() as patched:
        patched.setattr(Scheduler, "relay", dies_before_publishing_the_end)
        await engine.start()
        async with engine_client(engine) as api:
            await create(api, chain("wf", webhook("call", f"{target.base_url}/ok")))
            run = await wait_run(api, (await start(api, "wf"))["identifier"])
        assert (await engine.store.get_run(run["identifier"])).outbox != [], "written, never published"
        await engine.stop()
    return run, published


async def test_events_written_but_never_published_are_relayed_after_a_restart(
        tmp_path: Path, target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next engine on the same data directory finds the outbox and publishes those events:
    every seq of the run arrives, each exactly once."""
    run, before = await run_then_die_before_publishing_its_end(tmp_path / "data", target, monkeypatch)
    assert [e.type for e in before.of(run["identifier"])] == ["run.started", "node.completed", "node.started"]
    second, after = engine_on(tmp_path / "data"), Events()
    second.bus.subscribe(topics.RUN_EVENTS, "test-run-events", after.handle)
    await second.start()
    try:
        relayed = await after.completed(run["identifier"])
        assert (await second.store.get_run(run["identifier"])).outbox == []
    finally:
        await second.stop()
    assert [e.type for e in relayed] == ["node.completed", "run.completed"]
    ids = [e.id for e in before.of(run["identifier"]) + relayed]
    assert ids == [f"{run['identifier']}/{n}" for n in range(1, 6)], "every seq once, in order"
    assert relayed[-1].data["result"] == run["result"] == "SUCCESS"
