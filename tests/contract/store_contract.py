"""The contract every `Store` adapter passes (libs/store/ports.py), through the port only.

Subclass `StoreContract` as `Test<Tech>Store` and implement `make_store()`: it returns a new, opened
store on this test's (empty) database and may be called several times in one test; every store it
returns must see the same data. The contract closes them all at the end of the test.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from libs.core.errors import ConcurrentUpdateError, ConflictError, InputError, NotFoundError
from libs.core.run import LogEntry, NodeRun, Outcome, Run, TriggerInfo, node_run_id, node_run_key
from libs.core.versioning import LIVE_TAG, WorkflowRecord
from libs.store.ports import ClaimOutcome, RunFilter, Store, Timer

NOW = 1_700_000_000.123456
"""16 significant digits: catches an adapter that rounds floats on the way through."""
LEASE = 30.0
DEFINITION: dict[str, Any] = {"identifier": "wf", "nodes": [{"identifier": "trigger", "config": {
    "type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {"n": {"type": "number"}}}}}],
    "connections": []}
OUTPUT: Any = {"status": 200, "body": {"items": [1, 2.5, None, "x", True]}, "ratio": 0.1 + 0.2}

StoreFactory = Callable[[], Awaitable[Store]]


def workflow(identifier: str = "wf", **changes: Any) -> WorkflowRecord:
    fields: dict[str, Any] = {"identifier": identifier, "title": f"Title {identifier}", "owner": "team-a",
                              "created_at": NOW, "updated_at": NOW, "created_by": "alice"}
    return WorkflowRecord(**(fields | changes))


def run(n: int = 1, *, workflow: str = "wf", **changes: Any) -> Run:
    fields: dict[str, Any] = {"id": f"wfr_{n:016d}", "workflow": workflow, "version": 1,
                              "created_at": NOW + n, "updated_at": NOW + n, "check_at": NOW + n,
                              "inputs": {"n": n}}
    return Run(**(fields | changes))


def node_run(node: str = "deploy", *, run_id: str = "wfr_0000000000000001", attempt: int = 1,
             created_at: float = NOW, **changes: Any) -> NodeRun:
    key = node_run_key(run_id, node, attempt)
    return NodeRun(key=key, id=node_run_id(key), run_id=run_id, workflow="wf", node_id=node,
                   attempt=attempt, node_type="WEBHOOK", created_at=created_at, updated_at=created_at,
                   **changes)


def log(text: str, at: float = NOW) -> LogEntry:
    return LogEntry(logLevel="INFO", log=text, tags={"k": "v"}, createdAt=at)


def timer(timer_id: str, due_at: float) -> Timer:
    return Timer(id=timer_id, run_id="wfr_0000000000000001", kind="retry", due_at=due_at,
                 payload={"node": "deploy", "attempt": 2, "at": NOW})


ALL_OPEN = frozenset({"PENDING", "RUNNING", "WAITING"})


class StoreContract(abc.ABC):
    @abc.abstractmethod
    async def make_store(self) -> Store:
        """A new, opened store on this test's database (see the module docstring)."""

    @pytest.fixture
    async def open_store(self) -> AsyncIterator[StoreFactory]:
        made: list[Store] = []

        async def factory() -> Store:
            made.append(await self.make_store())
            return made[-1]

        yield factory
        for store in made:
            await store.close()

    @pytest.fixture
    async def store(self, open_store: StoreFactory) -> Store:
        return await open_store()

    # -- workflows --------------------------------------------------------------------------------

    async def test_ping(self, store: Store) -> None:
        assert await store.ping() is True

    async def test_data_survives_close_and_reopen(self, open_store: StoreFactory) -> None:
        store = await open_store()
        await store.create_workflow(workflow(), DEFINITION)
        await store.insert_run(run(1))
        key = (await store.insert_node_run(node_run()))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        finished = await store.finish_node_run(key, Outcome(result="SUCCESS", output={"ok": True}), now=NOW + 1,
                                               from_statuses=frozenset({"RUNNING"}), owner="w1")
        await store.close()
        assert await store.ping() is False
        reopened = await open_store()
        await reopened.open()  # open is idempotent on an existing database
        assert (await reopened.get_workflow("wf")).latest_version == 1
        assert await reopened.get_run(run(1).id) == run(1)
        assert await reopened.get_node_run(key) == finished
        claim = await reopened.claim_node_run(key, owner="w2", now=NOW + 2, lease_until=NOW + LEASE)
        assert claim.outcome is ClaimOutcome.COMPLETED

    async def test_create_workflow_stores_version_1_as_live(self, store: Store) -> None:
        record, version = await store.create_workflow(workflow(), DEFINITION)
        assert (record.identifier, record.latest_version, record.tags) == ("wf", 1, {LIVE_TAG: 1})
        assert (record.title, record.owner, record.created_by, record.deleted) == ("Title wf", "team-a", "alice", False)
        assert (version.workflow, version.version, version.definition) == ("wf", 1, DEFINITION)
        assert (version.created_at, version.created_by) == (NOW, "alice")
        assert await store.get_workflow("wf") == record
        assert await store.get_version("wf", 1) == version
        assert await store.list_versions("wf") == [version]

    async def test_create_existing_workflow_conflicts(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        with pytest.raises(ConflictError):
            await store.create_workflow(workflow(title="Other"), DEFINITION)
        assert (await store.get_workflow("wf")).title == "Title wf"
        assert [v.version for v in await store.list_versions("wf")] == [1]

    async def test_missing_workflow_and_version_are_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError):
            await store.get_workflow("nope")
        with pytest.raises(NotFoundError):
            await store.get_version("nope", 1)
        await store.create_workflow(workflow(), DEFINITION)
        with pytest.raises(NotFoundError):
            await store.get_version("wf", 2)
        assert await store.list_versions("nope") == []

    async def test_add_version_numbers_versions_and_moves_live(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        second = DEFINITION | {"title": "v2"}
        record, version = await store.add_version("wf", second, now=NOW + 1, by="bob", title="New")
        assert (version.version, version.definition, version.created_by) == (2, second, "bob")
        assert (record.latest_version, record.tags[LIVE_TAG], record.live_version) == (2, 2, 2)
        assert (record.title, record.updated_by, record.updated_at) == ("New", "bob", NOW + 1)
        record, version = await store.add_version("wf", DEFINITION, now=NOW + 2)
        assert (version.version, record.tags, record.title) == (3, {LIVE_TAG: 3}, "New")
        assert await store.get_workflow("wf") == record
        assert [v.version for v in await store.list_versions("wf")] == [1, 2, 3]
        assert (await store.get_version("wf", 2)).definition == second

    async def test_add_version_to_missing_or_deleted_workflow_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError):
            await store.add_version("nope", DEFINITION, now=NOW)
        await store.create_workflow(workflow(), DEFINITION)
        await store.delete_workflow("wf", now=NOW + 1)
        with pytest.raises(NotFoundError):
            await store.add_version("wf", DEFINITION, now=NOW + 2)

    async def test_concurrent_add_version_gets_distinct_numbers(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        results = await asyncio.gather(*(store.add_version("wf", DEFINITION | {"title": str(i)}, now=NOW + i)
                                         for i in range(8)))
        assert sorted(version.version for _, version in results) == list(range(2, 10))
        record = await store.get_workflow("wf")
        assert (record.latest_version, record.tags[LIVE_TAG]) == (9, 9)
        assert [v.version for v in await store.list_versions("wf")] == list(range(1, 10))

    async def test_set_tag_points_tags_at_versions(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        await store.add_version("wf", DEFINITION, now=NOW)
        record = await store.set_tag("wf", "$STABLE", 1, now=NOW + 5)
        assert (record.tags, record.updated_at) == ({LIVE_TAG: 2, "$STABLE": 1}, NOW + 5)
        record = await store.set_tag("wf", LIVE_TAG, 1, now=NOW + 6)  # roll back
        assert (record.tags, record.live_version, record.latest_version) == ({LIVE_TAG: 1, "$STABLE": 1}, 1, 2)
        record = await store.set_tag("wf", "$STABLE", 2, now=NOW + 7)
        assert await store.get_workflow("wf") == record
        record, _ = await store.add_version("wf", DEFINITION, now=NOW + 8)
        assert record.tags == {LIVE_TAG: 3, "$STABLE": 2}

    async def test_set_tag_validates_version_workflow_and_name(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        with pytest.raises(NotFoundError):
            await store.set_tag("wf", "$STABLE", 2, now=NOW)
        with pytest.raises(NotFoundError):
            await store.set_tag("nope", "$STABLE", 1, now=NOW)
        for bad in ("STABLE", "$stable", '$A"B', "$A.B"):
            with pytest.raises(InputError):
                await store.set_tag("wf", bad, 1, now=NOW)
        assert (await store.get_workflow("wf")).tags == {LIVE_TAG: 1}

    async def test_delete_workflow_is_soft(self, store: Store) -> None:
        await store.create_workflow(workflow("a"), DEFINITION)
        await store.create_workflow(workflow("b"), DEFINITION)
        deleted = await store.delete_workflow("a", now=NOW + 3)
        assert (deleted.deleted, deleted.updated_at) == (True, NOW + 3)
        with pytest.raises(NotFoundError):
            await store.get_workflow("a")
        assert await store.get_workflow("a", include_deleted=True) == deleted
        assert [w.identifier for w in await store.list_workflows()] == ["b"]
        assert [(w.identifier, w.deleted) for w in await store.list_workflows(include_deleted=True)] == [
            ("a", True), ("b", False)]
        assert (await store.get_version("a", 1)).definition == DEFINITION
        with pytest.raises(NotFoundError):
            await store.delete_workflow("a", now=NOW + 4)
        with pytest.raises(NotFoundError):
            await store.delete_workflow("nope", now=NOW)

    async def test_every_definition_write_moves_the_stamp_and_nothing_else_does(self, store: Store) -> None:
        stamps = [await store.definitions_stamp()]

        async def moved(write: Awaitable[Any]) -> bool:
            try:
                await write
            except (NotFoundError, ConflictError, InputError):
                pass
            stamps.append(await store.definitions_stamp())
            return stamps[-1] > stamps[-2]

        assert await moved(store.create_workflow(workflow(), DEFINITION))
        assert await moved(store.add_version("wf", DEFINITION, now=NOW + 1))
        assert await moved(store.set_tag("wf", LIVE_TAG, 1, now=NOW + 2))
        assert await moved(store.delete_workflow("wf", now=NOW + 3))
        assert await moved(store.create_workflow(workflow(), DEFINITION)), "a revival"
        failed = [store.create_workflow(workflow(), DEFINITION), store.add_version("nope", DEFINITION, now=NOW),
                  store.set_tag("wf", "$STABLE", 9, now=NOW), store.delete_workflow("nope", now=NOW)]
        assert [await moved(write) for write in failed] == [False] * 4, "a refused write changes no definition"
        assert not await moved(store.insert_run(run()))
        assert stamps[0] == 0, "a new store"

    async def test_create_revives_deleted_workflow_and_continues_numbering(self, store: Store) -> None:
        await store.create_workflow(workflow(), DEFINITION)
        await store.add_version("wf", DEFINITION, now=NOW)
        await store.set_tag("wf", "$STABLE", 1, now=NOW)
        await store.delete_workflow("wf", now=NOW + 1)
        revived, version = await store.create_workflow(workflow(title="Again"), DEFINITION | {"title": "v3"})
        assert version.version == 3
        assert (revived.deleted, revived.title, revived.latest_version, revived.tags) == (
            False, "Again", 3, {LIVE_TAG: 3})
        assert await store.get_workflow("wf") == revived
        assert [v.version for v in await store.list_versions("wf")] == [1, 2, 3]
        with pytest.raises(ConflictError):
            await store.create_workflow(workflow(), DEFINITION)

    # -- runs -------------------------------------------------------------------------------------

    async def test_insert_and_get_run(self, store: Store) -> None:
        original = run(1, idempotency_key="k1", outputs={"trigger": OUTPUT})
        stored, inserted = await store.insert_run(original)
        assert (stored, inserted) == (original, True)
        assert await store.get_run(original.id) == original
        with pytest.raises(NotFoundError):
            await store.get_run("wfr_missing")

    async def test_insert_run_is_idempotent_by_id(self, store: Store) -> None:
        original = run(1)
        await store.insert_run(original)
        stored, inserted = await store.insert_run(run(1, inputs={"other": True}, version=7))
        assert (stored, inserted) == (original, False)
        assert await store.get_run(original.id) == original

    async def test_insert_run_is_idempotent_by_workflow_and_key(self, store: Store) -> None:
        first = run(1, idempotency_key="same")
        await store.insert_run(first)
        stored, inserted = await store.insert_run(run(2, idempotency_key="same"))
        assert (stored, inserted) == (first, False)
        with pytest.raises(NotFoundError):
            await store.get_run(run(2).id)
        assert await store.find_run_by_idempotency_key("wf", "same") == first
        assert await store.find_run_by_idempotency_key("wf", "other") is None
        other_workflow = run(3, workflow="wf2", idempotency_key="same")
        assert await store.insert_run(other_workflow) == (other_workflow, True)
        assert await store.find_run_by_idempotency_key("wf2", "same") == other_workflow
        for n in (4, 5):  # no key: never a duplicate
            assert (await store.insert_run(run(n)))[1] is True

    async def test_update_run_increments_seq(self, store: Store) -> None:
        original, _ = await store.insert_run(run(1))
        changed = original.model_copy(update={"outputs": {"trigger": OUTPUT}, "updated_at": NOW + 9})
        updated = await store.update_run(changed, expected_seq=0)
        assert updated.seq == 1
        assert updated == changed.model_copy(update={"seq": 1})
        assert await store.get_run(original.id) == updated
        done = updated.model_copy(update={"status": "COMPLETED", "result": "SUCCESS", "completed_at": NOW + 10})
        assert (await store.update_run(done, expected_seq=1)).seq == 2
        assert (await store.get_run(original.id)).status == "COMPLETED"

    async def test_update_run_with_stale_seq_changes_nothing(self, store: Store) -> None:
        original, _ = await store.insert_run(run(1))
        first = await store.update_run(original.model_copy(update={"error": "first"}), expected_seq=0)
        with pytest.raises(ConcurrentUpdateError) as caught:
            await store.update_run(original.model_copy(update={"error": "second"}), expected_seq=0)
        assert caught.value.retryable is True
        assert await store.get_run(original.id) == first
        with pytest.raises(ConcurrentUpdateError):
            await store.update_run(first, expected_seq=5)

    async def test_concurrent_updates_with_same_seq_one_wins(self, store: Store) -> None:
        original, _ = await store.insert_run(run(1))
        attempts = [store.update_run(original.model_copy(update={"error": str(i)}), expected_seq=0)
                    for i in range(10)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [r for r in results if isinstance(r, Run)]
        assert len(winners) == 1
        assert all(isinstance(r, ConcurrentUpdateError) for r in results if not isinstance(r, Run))
        assert await store.get_run(original.id) == winners[0]

    async def _five_runs(self, store: Store) -> list[Run]:
        runs = [run(1), run(2, workflow="wf2"), run(3, status="COMPLETED", result="FAILED"),
                run(4, version=2, status="COMPLETED", result="SUCCESS"), run(5, workflow="wf2", version=2)]
        for r in (runs[2], runs[0], runs[4], runs[1], runs[3]):  # insertion order is not creation order
            await store.insert_run(r)
        return runs

    async def test_list_runs_newest_first_with_total(self, store: Store) -> None:
        runs = await self._five_runs(store)
        page, total = await store.list_runs(RunFilter(), limit=10, offset=0)
        assert (page, total) == (runs[::-1], 5)
        page, total = await store.list_runs(RunFilter(), limit=2, offset=1)
        assert ([r.id for r in page], total) == ([runs[3].id, runs[2].id], 5)
        assert await store.list_runs(RunFilter(), limit=2, offset=10) == ([], 5)

    @pytest.mark.parametrize(("flt", "expected"), [
        (RunFilter(workflows=("wf2",)), [5, 2]),
        (RunFilter(workflows=("wf", "wf2")), [5, 4, 3, 2, 1]),
        (RunFilter(statuses=("IN_PROGRESS",)), [5, 2, 1]),
        (RunFilter(results=("SUCCESS", "FAILED")), [4, 3]),
        (RunFilter(versions=(2,)), [5, 4]),
        (RunFilter(run_ids=(run(1).id, run(4).id, "wfr_missing")), [4, 1]),
        (RunFilter(workflows=("wf",), statuses=("COMPLETED",), versions=(1,)), [3]),
        (RunFilter(workflows=("nope",)), []),
    ])
    async def test_list_runs_filters(self, store: Store, flt: RunFilter, expected: list[int]) -> None:
        await self._five_runs(store)
        page, total = await store.list_runs(flt, limit=1, offset=0)
        assert total == len(expected)
        assert [r.id for r in page] == [run(n).id for n in expected[:1]]
        page, _ = await store.list_runs(flt, limit=10, offset=0)
        assert [r.id for r in page] == [run(n).id for n in expected]

    async def test_list_runs_of_one_workspace(self, store: Store) -> None:
        """`workflow_prefix` keeps the runs whose workflow key starts with `<workspace>~` (or, for "",
        has no `~`): the runs of one workspace, counted and paged in the store."""
        for n, workflow in ((1, "wf"), (2, "acme~wf"), (3, "acme~other"), (4, "acmeish~wf"), (5, "wf2")):
            await store.insert_run(run(n, workflow=workflow))
        for prefix, expected in (("", [5, 1]), ("acme~", [3, 2]), ("acmeish~", [4]), ("zeta~", [])):
            page, total = await store.list_runs(RunFilter(workflow_prefix=prefix), limit=10, offset=0)
            assert ([r.id for r in page], total) == ([run(n).id for n in expected], len(expected)), prefix
        both = RunFilter(workflows=("acme~wf", "wf"), workflow_prefix="acme~")
        assert [r.id for r in (await store.list_runs(both, limit=10, offset=0))[0]] == [run(2).id]

    async def test_list_runs_by_creation_time_creator_and_trigger_type(self, store: Store) -> None:
        """`created_from` is inclusive, `created_to` exclusive; `created_by` and `trigger_types` match
        the run's `trigger.by` and `trigger.type`."""
        triggers = {1: ("API", "ann"), 2: ("WEBHOOK", None), 3: ("API", "bob"), 4: ("SCHEDULE", None), 5: ("API", "ann")}
        for n, (kind, by) in triggers.items():
            await store.insert_run(run(n, trigger=TriggerInfo(type=kind, by=by, node="trigger")))
        for flt, expected in (
                (RunFilter(created_from=NOW + 2, created_to=NOW + 4), [3, 2]),
                (RunFilter(created_from=NOW + 4), [5, 4]), (RunFilter(created_to=NOW + 1), []),
                (RunFilter(created_by=("ann",)), [5, 1]), (RunFilter(created_by=("ann", "bob")), [5, 3, 1]),
                (RunFilter(trigger_types=("WEBHOOK", "SCHEDULE")), [4, 2]),
                (RunFilter(trigger_types=("API",), created_by=("ann",), created_to=NOW + 5), [1])):
            page, total = await store.list_runs(flt, limit=10, offset=0)
            assert ([r.id for r in page], total) == ([run(n).id for n in expected], len(expected)), flt

    async def test_runs_due_for_check_and_postpone(self, store: Store) -> None:
        for n, check_at in ((1, NOW + 30), (2, NOW + 10), (3, NOW + 20), (4, NOW + 99)):
            await store.insert_run(run(n, check_at=check_at))
        await store.insert_run(run(5, check_at=NOW, status="COMPLETED", result="SUCCESS"))
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(n).id for n in (2, 3, 1)]
        assert await store.runs_due_for_check(NOW + 30, limit=2) == [run(n).id for n in (2, 3)]
        assert await store.runs_due_for_check(NOW, limit=10) == []
        await store.postpone_check(run(2).id, NOW + 50)
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(n).id for n in (3, 1)]
        stored = await store.get_run(run(2).id)
        assert (stored.check_at, stored.seq) == (NOW + 50, 0)
        await store.update_run(stored, expected_seq=0)  # postponing did not touch seq
        await store.postpone_check("wfr_missing", NOW)  # no error

    async def test_a_completed_run_with_unrelayed_events_is_due_until_its_outbox_is_cleared(self, store: Store) -> None:
        event = {"id": f"{run(1).id}/3", "type": "run.completed", "data": {"seq": 3}}
        await store.insert_run(run(1, check_at=NOW + 10, status="COMPLETED", result="SUCCESS", outbox=[event]))
        await store.insert_run(run(2, check_at=NOW + 5, status="COMPLETED", result="SUCCESS"))
        await store.insert_run(run(3, check_at=NOW + 20, outbox=[event]))
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(1).id, run(3).id]
        assert (await store.get_run(run(1).id)).outbox == [event]
        assert not await store.clear_outbox(run(1).id, seq=1), "only at the seq that wrote the events"
        assert await store.clear_outbox(run(1).id, seq=0)
        stored = await store.get_run(run(1).id)
        assert (stored.outbox, stored.seq) == ([], 0)
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(3).id]
        assert not await store.clear_outbox("wfr_missing", seq=0)
        written = await store.update_run((await store.get_run(run(2).id)).model_copy(update={"outbox": [event]}),
                                         expected_seq=0)
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(2).id, run(3).id]
        await store.update_run(written.model_copy(update={"outbox": []}), expected_seq=1)
        assert await store.runs_due_for_check(NOW + 30, limit=10) == [run(3).id]

    # -- node runs --------------------------------------------------------------------------------

    async def test_insert_node_run_if_absent(self, store: Store) -> None:
        original = node_run(title="Deploy")
        assert await store.insert_node_run(original) == (original, True)
        again = node_run(title="Other", created_at=NOW + 5)
        assert await store.insert_node_run(again) == (original, False)
        assert await store.get_node_run(original.key) == original
        assert await store.get_node_run_by_id(original.id) == original
        with pytest.raises(NotFoundError):
            await store.get_node_run("wfr_x/deploy/1")
        with pytest.raises(NotFoundError):
            await store.get_node_run_by_id("wfnr_missing")

    async def test_list_node_runs_in_creation_order(self, store: Store) -> None:
        later = node_run("a", attempt=2, created_at=NOW + 2)
        first = node_run("z", created_at=NOW)
        middle = node_run("a", created_at=NOW + 1)
        longer_id = node_run("a", run_id=first.run_id + "0")  # a run id that starts with the other
        for record in (later, first, middle, node_run("a", run_id="wfr_other"), longer_id):
            await store.insert_node_run(record)
        assert await store.list_node_runs(first.run_id) == [first, middle, later]
        assert await store.list_node_runs(longer_id.run_id) == [longer_id]
        assert await store.list_node_runs("wfr_none") == []

    async def test_claim_pending_node_run(self, store: Store) -> None:
        pending, _ = await store.insert_node_run(node_run())
        claim = await store.claim_node_run(pending.key, owner="w1", now=NOW + 1, lease_until=NOW + LEASE)
        assert claim.outcome is ClaimOutcome.CLAIMED and claim.node_run is not None
        expected = pending.model_copy(update={"status": "RUNNING", "lease_owner": "w1",
                                              "lease_expires_at": NOW + LEASE, "started_at": NOW + 1})
        assert claim.node_run.model_copy(update={"updated_at": expected.updated_at}) == expected
        stored = await store.get_node_run(pending.key)
        assert stored == claim.node_run

    async def test_claim_leased_by_another_owner_is_busy(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        claim = await store.claim_node_run(key, owner="w2", now=NOW + 1, lease_until=NOW + 1 + LEASE)
        assert claim.outcome is ClaimOutcome.BUSY
        assert claim.node_run is not None and claim.node_run.lease_owner == "w1"
        assert (await store.get_node_run(key)).lease_expires_at == NOW + LEASE

    async def test_claim_after_lease_expired_moves_it(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        claim = await store.claim_node_run(key, owner="w2", now=NOW + LEASE + 1, lease_until=NOW + 2 * LEASE)
        assert claim.outcome is ClaimOutcome.CLAIMED and claim.node_run is not None
        assert (claim.node_run.lease_owner, claim.node_run.lease_expires_at) == ("w2", NOW + 2 * LEASE)
        assert claim.node_run.started_at == NOW  # only the first claim sets it
        assert not await store.renew_lease(key, owner="w1", lease_until=NOW + 99)

    async def test_same_owner_reclaims(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        claim = await store.claim_node_run(key, owner="w1", now=NOW + 1, lease_until=NOW + 1 + LEASE)
        assert claim.outcome is ClaimOutcome.CLAIMED and claim.node_run is not None
        assert (claim.node_run.lease_expires_at, claim.node_run.started_at) == (NOW + 1 + LEASE, NOW)

    async def test_claim_completed_waiting_and_missing(self, store: Store) -> None:
        done, _ = await store.insert_node_run(node_run("done"))
        finished = await store.finish_node_run(done.key, Outcome(result="SUCCESS", output=OUTPUT), now=NOW,
                                               from_statuses=ALL_OPEN)
        claim = await store.claim_node_run(done.key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        assert (claim.outcome, claim.node_run) == (ClaimOutcome.COMPLETED, finished)
        waiting, _ = await store.insert_node_run(node_run("wait"))
        await store.claim_node_run(waiting.key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        assert await store.mark_waiting(waiting.key, owner="w1", now=NOW)
        claim = await store.claim_node_run(waiting.key, owner="w1", now=NOW + 99, lease_until=NOW + 99)
        assert claim.outcome is ClaimOutcome.BUSY
        assert claim.node_run is not None and claim.node_run.status == "WAITING"
        claim = await store.claim_node_run("wfr_x/none/1", owner="w1", now=NOW, lease_until=NOW)
        assert (claim.outcome, claim.node_run) == (ClaimOutcome.MISSING, None)

    async def test_renew_lease_only_while_mine(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        assert not await store.renew_lease(key, owner="w1", lease_until=NOW + 60)  # still PENDING
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        assert await store.renew_lease(key, owner="w1", lease_until=NOW + 60)
        assert (await store.get_node_run(key)).lease_expires_at == NOW + 60
        assert not await store.renew_lease(key, owner="w2", lease_until=NOW + 90)
        await store.finish_node_run(key, Outcome(result="SUCCESS"), now=NOW, from_statuses=frozenset({"RUNNING"}))
        assert not await store.renew_lease(key, owner="w1", lease_until=NOW + 90)
        assert not await store.renew_lease("wfr_x/none/1", owner="w1", lease_until=NOW)

    async def test_mark_waiting_only_by_owner(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        assert not await store.mark_waiting(key, owner="w1", now=NOW)  # PENDING
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        assert not await store.mark_waiting(key, owner="w2", now=NOW)
        assert (await store.get_node_run(key)).status == "RUNNING"
        assert await store.mark_waiting(key, owner="w1", now=NOW + 1, output=OUTPUT)
        stored = await store.get_node_run(key)
        assert (stored.status, stored.lease_owner, stored.lease_expires_at) == ("WAITING", None, None)
        assert (stored.output, stored.updated_at) == (OUTPUT, NOW + 1)
        assert not await store.mark_waiting(key, owner="w1", now=NOW + 2)

    async def test_mark_waiting_appends_logs(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run(logs=[log("queued")])))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        engine = log("waiting for a callback", NOW + 1).model_copy(update={"source": "engine"})
        lines = (log("attempt 1 started", NOW), engine)
        assert await store.mark_waiting(key, owner="w1", now=NOW + 1, output=OUTPUT, logs=lines)
        stored = await store.get_node_run(key)
        assert [(e.log, e.source) for e in stored.logs] == [
            ("queued", "user"), ("attempt 1 started", "user"), ("waiting for a callback", "engine")]

    async def test_finish_node_run_by_owner(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run(logs=[log("queued")])))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        completion = Outcome(result="FAILED", output=OUTPUT, error="HTTP 500", logs=(log("a", NOW + 1), log("b", NOW + 2)))
        assert await store.finish_node_run(key, completion, now=NOW + 3, from_statuses=frozenset({"RUNNING"}),
                                           owner="w2") is None
        finished = await store.finish_node_run(key, completion, now=NOW + 3,
                                               from_statuses=frozenset({"RUNNING"}), owner="w1")
        assert finished is not None
        assert (finished.status, finished.result, finished.output, finished.error) == (
            "COMPLETED", "FAILED", OUTPUT, "HTTP 500")
        assert (finished.completed_at, finished.started_at) == (NOW + 3, NOW)
        assert finished.logs == [log("queued"), log("a", NOW + 1), log("b", NOW + 2)]
        assert await store.get_node_run(key) == finished

    async def test_finish_records_branch_and_retryability(self, store: Store) -> None:
        cond = (await store.insert_node_run(node_run("c")))[0].key
        flaky = (await store.insert_node_run(node_run("f")))[0].key
        for key in (cond, flaky):
            await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        routed = await store.finish_node_run(cond, Outcome(result="SUCCESS", output={"o": 1}, branch="prod"), now=NOW + 1,
                                             from_statuses=ALL_OPEN, owner="w1")
        failed = await store.finish_node_run(flaky, Outcome(result="FAILED", error="503", retryable=True), now=NOW + 1,
                                             from_statuses=ALL_OPEN, owner="w1")
        assert routed is not None and (routed.branch, routed.retryable) == ("prod", False)
        assert failed is not None and (failed.branch, failed.retryable) == (None, True)
        assert (await store.get_node_run(flaky)).retryable is True

    async def test_second_finish_changes_nothing(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        first = await store.finish_node_run(key, Outcome(result="SUCCESS", output={"n": 1}, logs=(log("ok"),)), now=NOW + 1,
                                            from_statuses=ALL_OPEN, owner="w1")
        assert first is not None
        again = Outcome(result="FAILED", output={"n": 2}, error="late", logs=(log("late"),))
        assert await store.finish_node_run(key, again, now=NOW + 2, from_statuses=ALL_OPEN, owner="w1") is None
        assert await store.finish_node_run(key, again, now=NOW + 2, from_statuses=ALL_OPEN) is None
        assert await store.get_node_run(key) == first
        assert await store.finish_node_run("wfr_x/none/1", again, now=NOW, from_statuses=ALL_OPEN) is None

    async def test_finish_respects_from_statuses(self, store: Store) -> None:
        pending, _ = await store.insert_node_run(node_run("p"))
        assert await store.finish_node_run(pending.key, Outcome(result="SUCCESS"), now=NOW,
                                           from_statuses=frozenset({"RUNNING", "WAITING"})) is None
        assert (await store.get_node_run(pending.key)).status == "PENDING"
        cancelled = await store.finish_node_run(pending.key, Outcome(result="CANCELLED", error="cancelled"),
                                                now=NOW + 1, from_statuses=ALL_OPEN)
        assert cancelled is not None and (cancelled.status, cancelled.result) == ("COMPLETED", "CANCELLED")
        waiting, _ = await store.insert_node_run(node_run("w"))
        await store.claim_node_run(waiting.key, owner="w1", now=NOW, lease_until=NOW + LEASE)
        await store.mark_waiting(waiting.key, owner="w1", now=NOW)
        assert await store.finish_node_run(waiting.key, Outcome(result="SUCCESS"), now=NOW,
                                           from_statuses=frozenset({"RUNNING"})) is None
        done = await store.finish_node_run(waiting.key, Outcome(result="SUCCESS", output={"approved": True}), now=NOW + 2,
                                           from_statuses=frozenset({"WAITING"}))
        assert done is not None and (done.result, done.output) == ("SUCCESS", {"approved": True})

    async def test_finish_replaces_an_output_with_the_same_values_under_other_names(self, store: Store) -> None:
        """A DELAY waits with `{resumeAt: T}` and completes with `{waitedUntil: T}` (FerretDB 1.x
        takes such documents for identical and would skip a plain `$set`)."""
        for index, (waited, result) in enumerate([({"resumeAt": "T"}, {"waitedUntil": "T"}),
                                                  ({"a": 1, "b": [2]}, {"c": 1, "d": [2]}),
                                                  ({"n": {"a": 1}}, {"n": {"b": 1}})]):
            key = (await store.insert_node_run(node_run(f"d{index}")))[0].key
            await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)
            assert await store.mark_waiting(key, owner="w1", now=NOW, output=waited)
            done = await store.finish_node_run(key, Outcome(result="SUCCESS", output=result), now=NOW + 1,
                                               from_statuses=frozenset({"WAITING"}))
            assert done is not None and (done.status, done.output) == ("COMPLETED", result)
            assert (await store.get_node_run(key)).output == result

    async def test_append_logs_until_completed(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        assert await store.append_logs(key, [log("one", NOW + 1)], now=NOW + 1)
        many = [log(f"line {i}", NOW + 2 + i) for i in range(100)]
        assert await store.append_logs(key, many, now=NOW + 2)
        assert await store.append_logs(key, [], now=NOW + 3)
        stored = await store.get_node_run(key)
        assert stored.logs == [log("one", NOW + 1), *many]
        await store.finish_node_run(key, Outcome(result="SUCCESS", logs=(log("last"),)), now=NOW + 4,
                                    from_statuses=ALL_OPEN)
        assert not await store.append_logs(key, [log("too late")], now=NOW + 5)
        assert (await store.get_node_run(key)).logs == [log("one", NOW + 1), *many, log("last")]
        assert not await store.append_logs("wfr_x/none/1", [log("x")], now=NOW)

    async def test_thousands_of_log_entries_in_one_write(self, store: Store) -> None:
        """About 900 entries in one statement once overflowed SQLite's parser stack and the completion
        carrying them was lost; any number now goes in one write, in order, next to the stored ones."""
        key = (await store.insert_node_run(node_run()))[0].key
        first = [log(f"progress {i}", NOW + i) for i in range(2_000)]
        assert await store.append_logs(key, first, now=NOW + 1)
        last = [log(f"final {i}", NOW + i) for i in range(2_000)]
        done = await store.finish_node_run(key, Outcome(result="SUCCESS", output={"ok": True}, logs=tuple(last)), now=NOW + 2,
                                           from_statuses=ALL_OPEN)
        assert done is not None and done.output == {"ok": True}
        assert (await store.get_node_run(key)).logs == [*first, *last]

    async def test_concurrent_claims_have_one_winner(self, store: Store) -> None:
        key = (await store.insert_node_run(node_run()))[0].key
        claims = await asyncio.gather(*(store.claim_node_run(key, owner=f"w{i}", now=NOW, lease_until=NOW + LEASE)
                                        for i in range(20)))
        winners = [c for c in claims if c.outcome is ClaimOutcome.CLAIMED]
        assert len(winners) == 1 and winners[0].node_run is not None
        assert all(c.outcome is ClaimOutcome.BUSY for c in claims if c is not winners[0])
        owner = winners[0].node_run.lease_owner
        assert owner is not None and (await store.get_node_run(key)).lease_owner == owner
        finishes = await asyncio.gather(*(
            store.finish_node_run(key, Outcome(result="SUCCESS", output={"i": i}), now=NOW + 1,
                                  from_statuses=frozenset({"RUNNING"}), owner=owner) for i in range(20)))
        done = [f for f in finishes if f is not None]
        assert len(done) == 1
        assert await store.get_node_run(key) == done[0]

    async def test_concurrent_claims_across_store_instances(self, store: Store,
                                                            open_store: StoreFactory) -> None:
        stores = [store, await open_store(), await open_store()]
        keys = [(await store.insert_node_run(node_run(f"n{i}")))[0].key for i in range(5)]
        claims = await asyncio.gather(*(
            stores[i % 3].claim_node_run(key, owner=f"w{i}", now=NOW, lease_until=NOW + LEASE)
            for key in keys for i in range(12)))
        assert sum(c.outcome is ClaimOutcome.CLAIMED for c in claims) == len(keys)
        assert {c.outcome for c in claims} == {ClaimOutcome.CLAIMED, ClaimOutcome.BUSY}

    # -- timers -----------------------------------------------------------------------------------

    async def test_put_timer_is_idempotent(self, store: Store) -> None:
        assert await store.put_timer(timer("t1", NOW))
        assert not await store.put_timer(timer("t1", NOW + 500))
        due = await store.claim_due_timers(NOW, lease_seconds=10, limit=10)
        assert [(t.id, t.run_id, t.kind, t.payload) for t in due] == [
            ("t1", "wfr_0000000000000001", "retry", {"node": "deploy", "attempt": 2, "at": NOW})]

    async def test_claim_due_timers_pushes_due_at(self, store: Store) -> None:
        for timer_id, due_at in (("a", NOW - 5), ("b", NOW), ("c", NOW + 5)):
            await store.put_timer(timer(timer_id, due_at))
        due = await store.claim_due_timers(NOW, lease_seconds=10, limit=10)
        assert sorted(t.id for t in due) == ["a", "b"]
        assert await store.claim_due_timers(NOW, lease_seconds=10, limit=10) == []
        assert [t.id for t in await store.claim_due_timers(NOW + 5, lease_seconds=10, limit=10)] == ["c"]
        again = await store.claim_due_timers(NOW + 10, lease_seconds=10, limit=10)
        assert sorted(t.id for t in again) == ["a", "b"]

    async def test_claim_due_timers_limit_takes_earliest(self, store: Store) -> None:
        for i in range(5):
            await store.put_timer(timer(f"t{i}", NOW - i))
        first = await store.claim_due_timers(NOW, lease_seconds=60, limit=2)
        assert sorted(t.id for t in first) == ["t3", "t4"]
        rest = await store.claim_due_timers(NOW, lease_seconds=60, limit=10)
        assert sorted(t.id for t in rest) == ["t0", "t1", "t2"]

    async def test_concurrent_timer_claims_do_not_share(self, store: Store) -> None:
        for i in range(10):
            await store.put_timer(timer(f"t{i}", NOW))
        batches = await asyncio.gather(*(store.claim_due_timers(NOW, lease_seconds=60, limit=3)
                                         for _ in range(6)))
        claimed = [t.id for batch in batches for t in batch]
        assert len(claimed) == len(set(claimed))
        rest = await store.claim_due_timers(NOW, lease_seconds=60, limit=10)
        assert sorted(claimed + [t.id for t in rest]) == sorted(f"t{i}" for i in range(10))

    async def test_delete_timer(self, store: Store) -> None:
        await store.put_timer(timer("t1", NOW))
        await store.delete_timer("t1")
        await store.delete_timer("t1")  # no error
        assert await store.claim_due_timers(NOW, lease_seconds=1, limit=10) == []
        assert await store.put_timer(timer("t1", NOW))

    # -- entries ----------------------------------------------------------------------------------

    async def test_insert_entry_is_insert_if_absent(self, store: Store) -> None:
        first, inserted = await store.insert_entry("secret", "token", {"v": OUTPUT}, now=NOW)
        assert inserted and first.rev == 1 and first.data == {"v": OUTPUT} and first.updated_at == NOW
        again, inserted = await store.insert_entry("secret", "token", {"v": "other"}, now=NOW + 1)
        assert not inserted and again == first
        assert await store.get_entry("secret", "token") == first
        assert await store.get_entry("secret", "missing") is None
        assert await store.get_entry("other-kind", "token") is None

    async def test_replace_entry_is_compare_and_set(self, store: Store) -> None:
        first, _ = await store.insert_entry("lease", "s1", {"tick": 1}, now=NOW)
        second = await store.replace_entry("lease", "s1", {"tick": 2}, expected_rev=first.rev, now=NOW + 1)
        assert second is not None and second.rev == 2 and second.data == {"tick": 2}
        assert await store.replace_entry("lease", "s1", {"tick": 3}, expected_rev=first.rev, now=NOW + 2) is None
        assert await store.replace_entry("lease", "absent", {"tick": 3}, expected_rev=1, now=NOW + 2) is None
        assert (await store.get_entry("lease", "s1")) == second

    async def test_concurrent_replaces_have_one_winner(self, store: Store) -> None:
        first, _ = await store.insert_entry("lease", "s1", {"owner": None}, now=NOW)
        results = await asyncio.gather(*(store.replace_entry("lease", "s1", {"owner": f"w{i}"},
                                                             expected_rev=first.rev, now=NOW) for i in range(8)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await store.get_entry("lease", "s1") == winners[0]

    async def test_put_and_delete_entry(self, store: Store) -> None:
        created = await store.put_entry("entity", "svc/a", {"title": "A"}, now=NOW)
        assert created.rev == 1
        updated = await store.put_entry("entity", "svc/a", {"title": "B"}, now=NOW + 1)
        assert updated.rev == 2 and updated.data == {"title": "B"} and updated.updated_at == NOW + 1
        assert await store.delete_entry("entity", "svc/a") is True
        assert await store.delete_entry("entity", "svc/a") is False
        assert await store.get_entry("entity", "svc/a") is None

    async def test_list_entries_by_prefix_in_key_order(self, store: Store) -> None:
        for key in ("svc/b", "svc/a", "svc.x/c", "team/a", "svc/c"):
            await store.put_entry("entity", key, {"k": key}, now=NOW)
        await store.put_entry("other", "svc/z", {}, now=NOW)
        listed = await store.list_entries("entity", prefix="svc/")
        assert [e.key for e in listed] == ["svc/a", "svc/b", "svc/c"]
        assert [e.key for e in await store.list_entries("entity", prefix="svc/", limit=1, offset=1)] == ["svc/b"]
        assert len(await store.list_entries("entity")) == 5
