"""The trigger service's HTTP API against a real SqliteStore and a real MemoryBus.

There is no scheduler here: `FakeScheduler` consumes RUN_COMMANDS (group "test-scheduler"), records
every command and inserts the run of each StartRun, which is all the API waits for.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus.memory import MemoryBus
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.definition import Node, Workflow
from libs.core.errors import ConflictError, NotFoundError
from libs.core.run import NodeRun, Outcome, Run, TriggerInfo, node_run_id, node_run_key
from libs.store.ports import RunFilter
from libs.store.sqlite import SqliteStore
from services.trigger.app import build_app
from services.trigger.settings import TriggerSettings
from services.trigger.starting import self_serve_trigger
from tests.auth_helpers import new_key

NOW = 1_700_000_000.0
USER = "alice@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class FakeScheduler:
    """Stands in for the scheduler: records commands; inserts the run of every StartRun (unless
    `accept` is False). With `rename`, it inserts the run under another id, as when a concurrent
    request with the same idempotency key won."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.messages: list[v1.Message] = []
        self.envelopes: list[Envelope] = []
        self.accept = True
        self.rename = False

    async def handle(self, envelope: Envelope) -> None:
        message = envelope.message()
        self.envelopes.append(envelope)
        self.messages.append(message)
        if isinstance(message, v1.StartRun) and self.accept:
            run_id = "wfr_WinnerOfTheRace1" if self.rename else message.run_id
            await self.store.insert_run(Run(
                id=run_id, workflow=message.workflow, version=message.version,
                trigger=TriggerInfo(**message.trigger.model_dump()), inputs=message.inputs,
                idempotency_key=message.idempotency_key, created_at=message.trigger.at,
                updated_at=message.trigger.at))

    def of(self, kind: type[v1.Message]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


class Harness:
    def __init__(self, store: SqliteStore, bus: MemoryBus, scheduler: FakeScheduler, api: httpx.AsyncClient) -> None:
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.api = api


def settings(**overrides: Any) -> TriggerSettings:
    return TriggerSettings(**{"accept_timeout_seconds": 5.0, **overrides})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "stepline.db"))
    await db.open()
    yield db
    await db.close()


@asynccontextmanager
async def harness(store: SqliteStore, config: TriggerSettings) -> AsyncIterator[Harness]:
    bus = MemoryBus(2)
    scheduler = FakeScheduler(store)
    bus.subscribe(topics.RUN_COMMANDS, "test-scheduler", scheduler.handle)
    await bus.start()
    app = build_app(config, store, bus, clock=Clock())
    transport = httpx.ASGITransport(app=app)
    headers = await new_key(store, user=USER)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as api:
            yield Harness(store, bus, scheduler, api)
    finally:
        await bus.stop()


@pytest.fixture
async def h(store: SqliteStore) -> AsyncIterator[Harness]:
    async with harness(store, settings()) as ready:
        yield ready


# ---- definitions --------------------------------------------------------------------------------

def definition(identifier: str = "deploy-service", **extra: Any) -> dict[str, Any]:
    return {
        "identifier": identifier, "title": "Deploy Service", **extra,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"version": {"type": "string"}, "replicas": {"type": "integer", "default": 2}},
                "required": ["version"]}}},
            {"identifier": "deploy", "title": "Deploy", "config": {
                "type": "WEBHOOK", "url": "https://deploy.example.com/hooks",
                "body": {"v": "{{ .outputs.trigger.version }}"}, "synchronized": False}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "deploy"}],
    }


def assert_error(response: httpx.Response, status: int, error: str, pointer: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["ok"] is False
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    if pointer is not None:
        pointers = [d["pointer"] for d in body["details"]]
        assert pointer in pointers, body
        if pointer:
            assert pointer in body["message"] or pointer.rsplit("/", 1)[-1] in body["message"], body
    return body


async def create(h: Harness, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await h.api.post("/v1/workflows", json=raw or definition())
    assert response.status_code == 201, response.text
    workflow: dict[str, Any] = response.json()["workflow"]
    return workflow


async def start(h: Harness, body: dict[str, Any] | None = None, workflow: str = "deploy-service",
                **kwargs: Any) -> httpx.Response:
    payload = {"inputs": {"version": "1.2.3"}} if body is None else body
    return await h.api.post(f"/v1/workflows/{workflow}/runs", json=payload, **kwargs)


async def store_is_empty(store: SqliteStore) -> None:
    assert await store.list_workflows(include_deleted=True) == []
    runs, total = await store.list_runs(RunFilter(), limit=10, offset=0)
    assert total == 0 and runs == []


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---- health -------------------------------------------------------------------------------------

async def test_health_and_readiness(h: Harness) -> None:
    assert (await h.api.get("/healthz")).json() == {"ok": True}
    assert (await h.api.get("/readyz")).json() == {"ok": True}


async def test_readiness_fails_when_store_is_closed(h: Harness) -> None:
    await h.store.close()
    assert_error(await h.api.get("/readyz"), 503, "store_unavailable")
    await h.store.open()


async def test_openapi_is_published(h: Harness) -> None:
    schema = (await h.api.get("/openapi.json")).json()
    assert "/v1/workflows/{workflow_id}/runs" in schema["paths"]
    assert "patch" in schema["paths"]["/v1/workflows/nodes/runs/{node_run_id}"]


# ---- workflows ----------------------------------------------------------------------------------

async def test_create_get_and_list(h: Harness) -> None:
    created = await create(h)
    assert created["identifier"] == "deploy-service"
    assert created["version"] == 1 and created["latestVersion"] == 1
    assert created["versionTags"] == {"$LIVE": 1}
    assert created["createdBy"] == USER and ISO.match(created["createdAt"])
    assert [n["identifier"] for n in created["nodes"]] == ["trigger", "deploy"]

    got = await h.api.get("/v1/workflows/deploy-service")
    assert got.status_code == 200 and got.json()["workflow"] == created
    listed = (await h.api.get("/v1/workflows")).json()
    assert listed["ok"] is True and [w["identifier"] for w in listed["workflows"]] == ["deploy-service"]


async def test_create_duplicate_is_409(h: Harness) -> None:
    await create(h)
    body = assert_error(await h.api.post("/v1/workflows", json=definition()), 409, "conflict")
    assert "deploy-service" in body["message"]
    assert len(await h.store.list_versions("deploy-service")) == 1


async def test_put_stores_a_new_version_and_moves_live(h: Harness) -> None:
    await create(h)
    changed = definition(title="Deploy Service v2")
    response = await h.api.put("/v1/workflows/deploy-service", json=changed)
    assert response.status_code == 200, response.text
    workflow = response.json()["workflow"]
    assert workflow["version"] == 2 and workflow["versionTags"] == {"$LIVE": 2}
    assert workflow["title"] == "Deploy Service v2"

    versions = (await h.api.get("/v1/workflows/deploy-service/versions")).json()["versions"]
    assert [(v["version"], v["tags"]) for v in versions] == [(1, []), (2, ["$LIVE"])]
    first = (await h.api.get("/v1/workflows/deploy-service/versions/1")).json()["version"]
    assert first["definition"]["title"] == "Deploy Service" and first["tags"] == []


async def test_put_round_trips_a_get(h: Harness) -> None:
    """A GET body PUT back unchanged (metadata and all) is a valid new version."""
    created = await create(h)
    response = await h.api.put("/v1/workflows/deploy-service", json=created)
    assert response.status_code == 200, response.text
    assert response.json()["workflow"]["version"] == 2


async def test_put_with_another_identifier_is_422_and_stores_nothing(h: Harness) -> None:
    await create(h)
    response = await h.api.put("/v1/workflows/deploy-service", json=definition("other"))
    assert_error(response, 422, "validation_error", "/identifier")
    assert len(await h.store.list_versions("deploy-service")) == 1


async def test_put_unknown_workflow_is_404(h: Harness) -> None:
    response = await h.api.put("/v1/workflows/deploy-service", json=definition())
    assert_error(response, 404, "not_found")
    await store_is_empty(h.store)


async def test_delete_is_soft(h: Harness) -> None:
    await create(h)
    deleted = await h.api.delete("/v1/workflows/deploy-service")
    assert deleted.status_code == 200 and deleted.json()["workflow"]["isDeleted"] is True
    assert_error(await h.api.get("/v1/workflows/deploy-service"), 404, "not_found")
    assert (await h.api.get("/v1/workflows")).json()["workflows"] == []
    gone = (await h.api.get("/v1/workflows", params={"isDeleted": "true"})).json()["workflows"]
    assert [w["identifier"] for w in gone] == ["deploy-service"]
    assert (await h.api.get("/v1/workflows/deploy-service/versions/1")).status_code == 200
    assert_error(await start(h), 404, "not_found")
    assert_error(await h.api.delete("/v1/workflows/deploy-service"), 404, "not_found")


async def test_tags(h: Harness) -> None:
    await create(h)
    await h.api.put("/v1/workflows/deploy-service", json=definition(title="v2"))
    response = await h.api.put("/v1/workflows/deploy-service/tags/$STABLE", json={"version": 1})
    assert response.status_code == 200, response.text
    assert response.json()["tag"] == {"name": "$STABLE", "version": 1}
    got = await h.api.get("/v1/workflows/deploy-service/tags/$STABLE")
    assert got.json() == {"ok": True, "tag": {"name": "$STABLE", "version": 1}}
    assert (await h.api.get("/v1/workflows/deploy-service/tags/%24STABLE")).status_code == 200

    rollback = await h.api.put("/v1/workflows/deploy-service/tags/$LIVE", json={"version": 1})
    assert rollback.status_code == 200
    workflow = (await h.api.get("/v1/workflows/deploy-service")).json()["workflow"]
    assert workflow["version"] == 1 and workflow["latestVersion"] == 2 and workflow["title"] == "Deploy Service"


async def test_tag_errors(h: Harness) -> None:
    await create(h)
    bad = await h.api.put("/v1/workflows/deploy-service/tags/stable", json={"version": 1})
    body = assert_error(bad, 422, "validation_error", "/path/tag")
    assert "tag" in body["message"]
    assert_error(await h.api.get("/v1/workflows/deploy-service/tags/$lower"), 422, "validation_error", "/path/tag")
    unknown_version = await h.api.put("/v1/workflows/deploy-service/tags/$STABLE", json={"version": 9})
    assert_error(unknown_version, 404, "not_found")
    assert_error(await h.api.get("/v1/workflows/deploy-service/tags/$NOPE"), 404, "not_found")
    assert_error(await h.api.put("/v1/workflows/ghost/tags/$STABLE", json={"version": 1}), 404, "not_found")
    missing = await h.api.put("/v1/workflows/deploy-service/tags/$STABLE", json={})
    assert_error(missing, 422, "validation_error", "/version")
    assert (await h.store.get_workflow("deploy-service")).tags == {"$LIVE": 1}


async def test_versions_errors(h: Harness) -> None:
    await create(h)
    assert_error(await h.api.get("/v1/workflows/deploy-service/versions/9"), 404, "not_found")
    assert_error(await h.api.get("/v1/workflows/deploy-service/versions/abc"), 422, "validation_error",
                 "/path/version")
    assert_error(await h.api.get("/v1/workflows/deploy-service/versions/0"), 422, "validation_error",
                 "/path/version")
    assert_error(await h.api.get("/v1/workflows/ghost/versions"), 404, "not_found")


def cyclic() -> dict[str, Any]:
    raw = definition()
    raw["nodes"].append({"identifier": "again", "config": {"type": "NOOP"}})
    raw["connections"] += [{"sourceIdentifier": "deploy", "targetIdentifier": "again"},
                           {"sourceIdentifier": "again", "targetIdentifier": "deploy"}]
    return raw


def unknown_target() -> dict[str, Any]:
    raw = definition()
    raw["connections"][0]["targetIdentifier"] = "nowhere"
    return raw


def bad_jq() -> dict[str, Any]:
    raw = definition()
    raw["nodes"][1]["config"]["body"] = {"v": "{{ .outputs.trigger.version | | }}"}
    return raw


@pytest.mark.parametrize(("make", "pointer"), [
    (cyclic, "/connections"),
    (unknown_target, "/connections/0/targetIdentifier"),
    (bad_jq, "/nodes/1/config/body/v"),
])
async def test_invalid_definitions_are_422_with_pointers_and_store_nothing(h: Harness, make: Any, pointer: str) -> None:
    response = await h.api.post("/v1/workflows", json=make())
    body = assert_error(response, 422, "invalid_definition")
    assert any(d["pointer"].startswith(pointer) for d in body["details"]), body
    assert any(d["pointer"] in body["message"] for d in body["details"]), body
    await store_is_empty(h.store)


async def test_invalid_new_version_leaves_the_workflow_unchanged(h: Harness) -> None:
    await create(h)
    response = await h.api.put("/v1/workflows/deploy-service", json=bad_jq())
    assert_error(response, 422, "invalid_definition")
    with pytest.raises(NotFoundError):
        await h.store.get_version("deploy-service", 2)
    assert (await h.store.get_workflow("deploy-service")).tags == {"$LIVE": 1}


# ---- starting runs ------------------------------------------------------------------------------

async def test_start_run(h: Harness) -> None:
    await create(h)
    response = await start(h)
    assert response.status_code == 201, response.text
    run = response.json()["workflowRun"]
    assert re.fullmatch(r"wfr_[A-Za-z0-9]{16}", run["identifier"])
    assert run["workflow"] == {"identifier": "deploy-service", "version": 1}
    assert run["status"] == "IN_PROGRESS" and run["result"] is None
    assert run["inputs"] == {"version": "1.2.3", "replicas": 2}
    assert run["trigger"]["type"] == "API" and run["trigger"]["by"] == USER
    assert run["trigger"]["node"] == "trigger" and ISO.match(run["trigger"]["at"])
    assert run["nodeRuns"] == []

    [message] = h.scheduler.of(v1.StartRun)
    assert message.run_id == run["identifier"] and message.inputs == {"version": "1.2.3", "replicas": 2}
    assert h.scheduler.envelopes[0].source == "stepline/trigger"
    assert h.scheduler.envelopes[0].subject == run["identifier"]


async def test_start_run_without_body_reports_missing_input(h: Harness) -> None:
    await create(h)
    response = await h.api.post("/v1/workflows/deploy-service/runs")
    body = assert_error(response, 422, "invalid_inputs")
    assert body["details"][0]["pointer"].startswith("/inputs")


async def test_wrong_input_type_is_422_and_starts_nothing(h: Harness) -> None:
    await create(h)
    response = await start(h, {"inputs": {"version": 123}})
    assert_error(response, 422, "invalid_inputs", "/inputs/version")
    unknown = await start(h, {"inputs": {"version": "1", "colour": "red"}})
    assert_error(unknown, 422, "invalid_inputs", "/inputs/colour")
    not_object = await start(h, {"inputs": ["1"]})
    assert_error(not_object, 422, "validation_error", "/inputs")
    await h.bus.drain()
    assert h.scheduler.messages == []
    assert (await h.store.list_runs(RunFilter(), limit=10, offset=0))[1] == 0


async def test_start_unknown_workflow_is_404(h: Harness) -> None:
    body = assert_error(await start(h, workflow="ghost"), 404, "not_found")
    assert "ghost" in body["message"]


async def test_start_on_a_version_or_tag(h: Harness) -> None:
    await create(h)
    await h.api.put("/v1/workflows/deploy-service", json=definition(title="v2"))
    await h.api.put("/v1/workflows/deploy-service/tags/$STABLE", json={"version": 1})
    live = await start(h)
    assert live.json()["workflowRun"]["workflowVersionId"] == 2
    pinned = await start(h, {"inputs": {"version": "1"}, "version": 1})
    assert pinned.json()["workflowRun"]["workflowVersionId"] == 1
    tagged = await start(h, {"inputs": {"version": "1"}, "tag": "$STABLE"})
    assert tagged.json()["workflowRun"]["workflowVersionId"] == 1

    assert_error(await start(h, {"version": 1, "tag": "$STABLE"}), 422, "validation_error", "/tag")
    assert_error(await start(h, {"version": 7}), 404, "not_found")
    assert_error(await start(h, {"tag": "$NOPE"}), 404, "not_found")
    assert_error(await start(h, {"tag": "stable"}), 422, "validation_error", "/tag")
    assert_error(await start(h, {"version": "two"}), 422, "validation_error", "/version")
    assert_error(await start(h, {"inptus": {}}), 422, "validation_error", "/inptus")


async def test_idempotency_key_header_returns_the_same_run(h: Harness) -> None:
    await create(h)
    first = await start(h, headers={"Idempotency-Key": "deploy-42"})
    second = await start(h, headers={"Idempotency-Key": "deploy-42"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["workflowRun"]["identifier"] == second.json()["workflowRun"]["identifier"]
    await h.bus.drain()
    assert len(h.scheduler.of(v1.StartRun)) == 1
    assert h.scheduler.of(v1.StartRun)[0].idempotency_key == "deploy-42"


async def test_idempotency_key_in_body(h: Harness) -> None:
    await create(h)
    first = await start(h, {"inputs": {"version": "1"}, "idempotencyKey": "k1"})
    second = await start(h, {"inputs": {"version": "1"}, "idempotencyKey": "k1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["workflowRun"]["identifier"] == second.json()["workflowRun"]["identifier"]
    clash = await start(h, {"inputs": {"version": "1"}, "idempotencyKey": "k1"}, headers={"Idempotency-Key": "k2"})
    assert_error(clash, 422, "validation_error", "/idempotencyKey")
    await h.bus.drain()
    assert len(h.scheduler.of(v1.StartRun)) == 1


async def test_idempotency_race_answers_the_winning_run(h: Harness) -> None:
    await create(h)
    h.scheduler.rename = True
    response = await start(h, headers={"Idempotency-Key": "raced"})
    assert response.status_code == 200, response.text
    assert response.json()["workflowRun"]["identifier"] == "wfr_WinnerOfTheRace1"


async def test_start_is_202_when_the_scheduler_does_not_accept_in_time(store: SqliteStore) -> None:
    async with harness(store, settings(accept_timeout_seconds=0.2)) as h:
        await create(h)
        h.scheduler.accept = False
        response = await start(h)
        assert response.status_code == 202, response.text
        run = response.json()["workflowRun"]
        assert run["status"] == "IN_PROGRESS" and run["identifier"].startswith("wfr_")
        assert h.scheduler.of(v1.StartRun)[0].run_id == run["identifier"]


def test_a_workflow_without_self_serve_trigger_cannot_start() -> None:
    workflow = Workflow(identifier="w", nodes=[Node(identifier="cron", config={"type": "SCHEDULE_TRIGGER"})])
    with pytest.raises(ConflictError, match="SELF_SERVE_TRIGGER"):
        self_serve_trigger(workflow, 1)


# ---- reading runs -------------------------------------------------------------------------------

async def started_run(h: Harness, **kwargs: Any) -> str:
    response = await start(h, **kwargs)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["workflowRun"]["identifier"]
    return run_id


async def complete_run(store: SqliteStore, run_id: str, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    run = await store.get_run(run_id)
    done = run.model_copy(update={"status": "COMPLETED", "result": "SUCCESS", "completed_at": NOW + 60})
    await store.update_run(done, expected_seq=run.seq)


async def test_get_run_and_unknown_run(h: Harness) -> None:
    await create(h)
    run_id = await started_run(h)
    response = await h.api.get(f"/v1/workflows/runs/{run_id}")
    assert response.status_code == 200
    assert response.json()["workflowRun"]["identifier"] == run_id
    body = assert_error(await h.api.get("/v1/workflows/runs/wfr_0000000000000000"), 404, "not_found")
    assert "wfr_0000000000000000" in body["message"]


async def test_get_run_long_polls_until_completed(h: Harness) -> None:
    await create(h)
    run_id = await started_run(h)
    finisher = asyncio.create_task(complete_run(h.store, run_id, delay=0.1))
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await h.api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 10})
    await finisher
    run = response.json()["workflowRun"]
    assert run["status"] == "COMPLETED" and run["result"] == "SUCCESS" and ISO.match(run["completedAt"])
    assert loop.time() - began < 5


async def test_get_run_wait_times_out_in_progress(h: Harness) -> None:
    await create(h)
    run_id = await started_run(h)
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await h.api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 0.2})
    assert response.json()["workflowRun"]["status"] == "IN_PROGRESS"
    assert 0.15 < loop.time() - began < 3
    assert_error(await h.api.get(f"/v1/workflows/runs/{run_id}", params={"wait": 61}), 422,
                 "validation_error", "/query/wait")


async def test_list_runs_with_filters_and_paging(h: Harness) -> None:
    await create(h)
    await create(h, definition("other"))
    ids = [await started_run(h) for _ in range(3)]
    other = await started_run(h, workflow="other")
    await complete_run(h.store, ids[0])

    page = (await h.api.get("/v1/workflows/runs", params={"limit": 2})).json()
    assert page["total"] == 4 and len(page["workflowRuns"]) == 2 and page["limit"] == 2
    assert "nodeRuns" not in page["workflowRuns"][0]
    rest = (await h.api.get("/v1/workflows/runs", params={"limit": 2, "offset": 2})).json()
    seen = {r["identifier"] for r in page["workflowRuns"] + rest["workflowRuns"]}
    assert seen == {*ids, other}

    by_workflow = (await h.api.get("/v1/workflows/runs", params={"workflow": "other"})).json()
    assert [r["identifier"] for r in by_workflow["workflowRuns"]] == [other]
    completed = (await h.api.get("/v1/workflows/runs", params={"statuses": "COMPLETED"})).json()
    assert [r["identifier"] for r in completed["workflowRuns"]] == [ids[0]]
    running = (await h.api.get("/v1/workflows/runs", params=[("workflowIdentifiers", "deploy-service"),
                                                             ("status", "IN_PROGRESS")])).json()
    assert {r["identifier"] for r in running["workflowRuns"]} == set(ids[1:])
    by_id = (await h.api.get("/v1/workflows/runs", params={"workflowRunIdentifiers": other})).json()
    assert by_id["total"] == 1
    ignored = await h.api.get("/v1/workflows/runs", params={"colour": "blue"})
    assert ignored.status_code == 200 and ignored.json()["total"] == 4


@pytest.mark.parametrize(("params", "pointer"), [
    ({"limit": 0}, "/query/limit"),
    ({"limit": 1001}, "/query/limit"),
    ({"limit": "ten"}, "/query/limit"),
    ({"offset": -1}, "/query/offset"),
    ({"offset": "9" * 40}, "/query/offset"),
    ({"statuses": "DONE"}, "/query/statuses/0"),
    ({"result": "MAYBE"}, "/query/result/0"),
    ({"version": "x"}, "/query/version/0"),
    ({"workflowVersions": "0"}, "/query/workflowVersions/0"),
])
async def test_list_runs_rejects_bad_query(h: Harness, params: dict[str, Any], pointer: str) -> None:
    body = assert_error(await h.api.get("/v1/workflows/runs", params=params), 422, "validation_error", pointer)
    assert "query parameter" in body["message"]


# ---- node-run PATCH -----------------------------------------------------------------------------

async def node_run(h: Harness, run_id: str, state: str, node: str = "deploy", workflow: str = "deploy-service",
                   output: Any = None) -> NodeRun:
    """A node run of `run_id` in `state` (PENDING, RUNNING, WAITING or COMPLETED), set up directly."""
    key = node_run_key(run_id, node, 1)
    record = NodeRun(key=key, id=node_run_id(key), run_id=run_id, workflow=workflow, node_id=node,
                     node_type="WEBHOOK", title="Deploy", created_at=NOW, updated_at=NOW)
    await h.store.insert_node_run(record)
    if state != "PENDING":
        await h.store.claim_node_run(key, owner="executor-1", now=NOW, lease_until=NOW + 30)
    if state in ("WAITING", "COMPLETED"):
        assert await h.store.mark_waiting(key, owner="executor-1", now=NOW)
    if state == "COMPLETED":
        completion = Outcome(result="SUCCESS", output={"id": "abc"} if output is None else output)
        done = await h.store.finish_node_run(key, completion, now=NOW + 1,
                                             from_statuses=frozenset({"WAITING"}))
        assert done is not None
    return await h.store.get_node_run(key)


@pytest.fixture
async def run_id(h: Harness) -> str:
    await create(h)
    return await started_run(h)


def patch_path(record: NodeRun, scoped: bool) -> str:
    if scoped:
        return f"/v1/workflows/runs/{record.run_id}/nodes/{record.id}"
    return f"/v1/workflows/nodes/runs/{record.id}"


async def commands(h: Harness) -> list[v1.CompleteNode]:
    await h.bus.drain()
    return h.scheduler.of(v1.CompleteNode)


@pytest.mark.parametrize("scoped", [False, True])
async def test_patch_completes_a_waiting_node_run(h: Harness, run_id: str, scoped: bool) -> None:
    record = await node_run(h, run_id, "WAITING")
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"resourceId": "abc123"},
            "logs": [{"logLevel": "INFO", "log": "done", "tags": {"env": "prod"}}]}
    response = await h.api.patch(patch_path(record, scoped), json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    [message] = await commands(h)
    assert message.run_id == run_id and message.node_run_key == record.key
    assert (message.status, message.result, message.output) == ("COMPLETED", "SUCCESS", {"resourceId": "abc123"})
    assert message.by == USER and message.logs[0].log == "done" and message.logs[0].tags == {"env": "prod"}


async def test_patch_unknown_node_run_is_404(h: Harness, run_id: str) -> None:
    body = {"status": "COMPLETED", "result": "SUCCESS"}
    response = await h.api.patch("/v1/workflows/nodes/runs/wfnr_0000000000000000", json=body)
    assert_error(response, 404, "not_found")
    record = await node_run(h, run_id, "WAITING")
    elsewhere = await h.api.patch(f"/v1/workflows/runs/wfr_0000000000000000/nodes/{record.id}", json=body)
    assert_error(elsewhere, 404, "not_found")
    assert await commands(h) == []


async def test_patch_of_a_node_run_not_started_is_409(h: Harness, run_id: str) -> None:
    record = await node_run(h, run_id, "PENDING")
    response = await h.api.patch(patch_path(record, False), json={"status": "COMPLETED", "result": "SUCCESS"})
    body = assert_error(response, 409, "conflict")
    assert f"node run {record.id} is not waiting for completion" in body["message"]
    assert await commands(h) == []


async def test_patch_of_a_running_asynchronous_node_is_accepted(h: Harness, run_id: str) -> None:
    """A fast callback can arrive before the executor has marked the (unsynchronized) node WAITING."""
    record = await node_run(h, run_id, "RUNNING")
    response = await h.api.patch(patch_path(record, False), json={"status": "COMPLETED", "result": "SUCCESS"})
    assert response.status_code == 200, response.text
    [message] = await commands(h)
    assert (message.node_run_key, message.result) == (record.key, "SUCCESS")


async def test_patch_completed_without_result_is_422(h: Harness, run_id: str) -> None:
    record = await node_run(h, run_id, "WAITING")
    response = await h.api.patch(patch_path(record, False), json={"status": "COMPLETED", "output": {}})
    body = assert_error(response, 422, "validation_error", "/result")
    assert "result is required" in body["message"]
    assert await commands(h) == []


async def test_patch_repeat_of_an_applied_completion_is_200(h: Harness, run_id: str) -> None:
    record = await node_run(h, run_id, "COMPLETED")
    same = await h.api.patch(patch_path(record, False), json={"status": "COMPLETED", "result": "SUCCESS"})
    assert same.status_code == 200 and same.json()["nodeRun"]["identifier"] == record.id
    assert same.json()["nodeRun"]["status"] == "COMPLETED"
    same_output = await h.api.patch(patch_path(record, True),
                                    json={"status": "COMPLETED", "result": "SUCCESS", "output": {"id": "abc"}})
    assert same_output.status_code == 200
    other_result = await h.api.patch(patch_path(record, False), json={"status": "COMPLETED", "result": "FAILED"})
    assert_error(other_result, 409, "conflict")
    other_output = await h.api.patch(patch_path(record, False),
                                     json={"status": "COMPLETED", "result": "SUCCESS", "output": {"id": "xyz"}})
    assert_error(other_output, 409, "conflict")
    assert await commands(h) == []


async def test_patch_repeat_recognises_output_transformed_by_variables(h: Harness) -> None:
    raw = definition("with-vars")
    raw["nodes"][1]["variables"] = {"resource": "{{ .resourceId }}"}
    await create(h, raw)
    run_id = await started_run(h, workflow="with-vars")
    record = await node_run(h, run_id, "COMPLETED", workflow="with-vars", output={"resource": "abc123"})
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"resourceId": "abc123"}}
    again = await h.api.patch(patch_path(record, False), json=body)
    assert again.status_code == 200, again.text
    other = await h.api.patch(patch_path(record, False), json={**body, "output": {"resourceId": "zzz"}})
    assert_error(other, 409, "conflict")
    assert await commands(h) == []


async def test_patch_progress_logs(h: Harness, run_id: str) -> None:
    running = await node_run(h, run_id, "RUNNING")
    response = await h.api.patch(patch_path(running, False),
                                 json={"status": "IN_PROGRESS", "logs": [{"log": "halfway"}]})
    assert response.status_code == 200, response.text
    [message] = await commands(h)
    assert message.status == "IN_PROGRESS" and message.result is None and message.logs[0].logLevel == "INFO"
    pending = await node_run(h, run_id, "PENDING", node="later")
    assert_error(await h.api.patch(patch_path(pending, False), json={"logs": [{"log": "x"}]}), 409, "conflict")
    with_result = await h.api.patch(patch_path(running, False), json={"status": "IN_PROGRESS", "result": "SUCCESS"})
    assert_error(with_result, 422, "validation_error", "/result")


@pytest.mark.parametrize(("body", "pointer"), [
    ({"status": "DONE", "result": "SUCCESS"}, "/status"),
    ({"status": "COMPLETED", "result": "SKIPPED"}, "/result"),  # CANCELLED is Port's, accepted
    ({"logs": [{"logLevel": "LOUD"}]}, "/logs/0/logLevel"),
    ({"logs": {"log": "x"}}, "/logs"),
    ({"logs": [{"tags": {"a": 1}}]}, "/logs/0/tags/a"),
    ({"result": "SUCCESS", "extra": 1}, "/extra"),
    ([{"status": "COMPLETED"}], ""),
    ("COMPLETED", ""),
])
async def test_patch_rejects_malformed_bodies(h: Harness, run_id: str, body: Any, pointer: str) -> None:
    record = await node_run(h, run_id, "WAITING")
    assert_error(await h.api.patch(patch_path(record, False), json=body), 422, "validation_error", pointer)
    assert await commands(h) == []


# ---- body limits, malformed requests, unexpected errors -----------------------------------------

async def test_a_20_mb_body_is_413_and_stores_nothing(h: Harness) -> None:
    raw = definition(description="x" * (20 * 1024 * 1024))
    response = await h.api.post("/v1/workflows", json=raw)
    assert_error(response, 413, "payload_too_large")
    await store_is_empty(h.store)


async def test_a_streamed_body_over_the_limit_is_413(store: SqliteStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"identifier": "deploy-service", "description": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    async with harness(store, settings(max_body_bytes=16 * 1024)) as h:
        response = await h.api.post("/v1/workflows", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        small = await h.api.post("/v1/workflows", json=definition())
        assert small.status_code == 201
        assert_error(await h.api.post("/v1/workflows", content=b"{}", headers={"content-length": "x1"}), 400,
                     "bad_request")


@pytest.mark.parametrize("content", [
    b"{", b'{"identifier": }', b"[1, 2", b"\xff\xfe", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e999}',
    b'{"a": ' + b"9" * 5000 + b"}", b"[" * 10_000 + b"]" * 10_000, b'{"a": "\\ud800"}',
])
async def test_invalid_json_is_400(h: Harness, content: bytes) -> None:
    response = await h.api.post("/v1/workflows", content=content, headers={"content-type": "application/json"})
    body = assert_error(response, 400, "bad_request", "")
    assert "JSON" in body["message"]
    await store_is_empty(h.store)


async def test_body_without_json_content_type_is_415(h: Harness) -> None:
    response = await h.api.post("/v1/workflows", content=json.dumps(definition()).encode())
    assert_error(response, 415, "unsupported_media_type")
    form = await h.api.post("/v1/workflows", data={"identifier": "x"})
    assert_error(form, 415, "unsupported_media_type")
    await store_is_empty(h.store)


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("POST", "/v1/workflows", [definition()], 422, "validation_error"),
    ("POST", "/v1/workflows", "deploy-service", 422, "validation_error"),
    ("POST", "/v1/workflows", {}, 422, "invalid_definition"),
    ("POST", "/v1/workflows", {"identifier": 5, "nodes": {}}, 422, "invalid_definition"),
    ("POST", "/v1/workflows", {"identifier": "x" * 500, "nodes": []}, 422, "invalid_definition"),
    ("POST", "/v1/workflows/deploy-service/runs", [], 422, "validation_error"),
    ("POST", "/v1/workflows/deploy-service/runs", {"version": 10**30}, 422, "validation_error"),
    ("POST", "/v1/workflows/deploy-service/runs", {"version": 1.5}, 422, "validation_error"),
    ("POST", "/v1/workflows/deploy-service/runs", {"inputs": {"version": 10**300}}, 422, "invalid_inputs"),
    ("PUT", "/v1/workflows/deploy-service/tags/$X", {"version": "1"}, 200, None),
    ("PUT", "/v1/workflows/deploy-service/tags/$X", {"version": "one"}, 422, "validation_error"),
    ("PUT", "/v1/workflows/deploy-service/tags/$X", {"version": 10**20}, 422, "validation_error"),
    ("PUT", "/v1/workflows/deploy-service/tags/$X", [1], 422, "validation_error"),
    ("GET", "/v1/workflows/deploy-service/versions/99999999999999999999999", None, 422, "validation_error"),
    ("GET", "/v1/workflows/runs/x?wait=nan", None, 422, "validation_error"),
    ("GET", "/v1/workflows/runs/x?wait=-1", None, 422, "validation_error"),
    ("GET", "/v1/workflows?isDeleted=maybe", None, 422, "validation_error"),
    ("GET", "/v1/workflows?unknown=1&isDeleted=false", None, 200, None),
    ("GET", "/v1/nothing-here", None, 404, "not_found"),
    ("PATCH", "/v1/workflows", None, 405, "method_not_allowed"),
    ("PATCH", "/v1/workflows/nodes/runs/wfnr_x", {"status": "COMPLETED", "result": "SUCCESS"}, 404, "not_found"),
])
async def test_fuzzed_requests_never_500(h: Harness, method: str, path: str, body: Any, status: int,
                                         error: str | None) -> None:
    await create(h)
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    response = await h.api.request(method, path, **kwargs)
    if error is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, error)


async def test_unexpected_errors_are_500_without_internals(store: SqliteStore) -> None:
    class BrokenStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def list_workflows(self, *, include_deleted: bool = False) -> Any:
            raise RuntimeError("secret connection string sqlite:///etc/passwd")

    bus = MemoryBus(1)
    app = build_app(settings(), BrokenStore(), bus)  # type: ignore[arg-type]
    headers = await new_key(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 headers=headers) as api:
        response = await api.get("/v1/workflows")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["details"] == []
    await bus.stop()


async def test_store_outage_is_503(store: SqliteStore) -> None:
    from libs.core.errors import StoreUnavailableError

    class DownStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def get_workflow(self, identifier: str, *, include_deleted: bool = False) -> Any:
            raise StoreUnavailableError("cannot reach db at 10.0.0.7")

    bus = MemoryBus(1)
    app = build_app(settings(), DownStore(), bus)  # type: ignore[arg-type]
    headers = await new_key(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 headers=headers) as api:
        response = await api.get("/v1/workflows/x")
    assert_error(response, 503, "store_unavailable")
    assert "10.0.0.7" not in response.text and response.headers["retry-after"] == "1"
    await bus.stop()


def test_presenters_render_iso_times() -> None:
    from services.trigger.presenters import iso

    assert iso(NOW) == "2023-11-14T22:13:20.000Z"
    assert iso(None) is None
    assert iso(1e300) is None


def test_responses_never_emit_nan() -> None:
    from services.trigger.responses import dumps

    assert json.loads(dumps({"a": float("nan"), "b": [float("inf")], "c": "\ud800"})) == {"a": None, "b": [None], "c": "\ud800"}

