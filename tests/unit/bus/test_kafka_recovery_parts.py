"""The pure parts of fast recovery (issue 11): reconnect backoff, the outage log limiter, and the
static group instance ids. Their behaviour on a broker: tests/contract/test_kafka_recovery.py."""

from __future__ import annotations

import logging

import pytest

from libs.bus.kafka.backoff import Backoff
from libs.bus.kafka.membership import MAX_ID, static_id
from libs.bus.kafka.outage_log import QUIET, OutageLimiter


def test_backoff_doubles_up_to_the_ceiling_with_jitter_and_resets() -> None:
    low = Backoff(first=0.1, ceiling=1.0, jitter=lambda: 0.0)
    assert low.delay() == 0.0
    assert [low.failed() for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    high = Backoff(first=0.1, ceiling=1.0, jitter=lambda: 1.0)
    assert [high.failed() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    high.succeeded()
    assert high.failed() == pytest.approx(0.1)


def test_backoff_refuses_a_ceiling_below_the_first_wait() -> None:
    with pytest.raises(ValueError):
        Backoff(first=2.0, ceiling=1.0)


def record(level: int = logging.ERROR, name: str = "aiokafka.client", msg: str = "Unable connect") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_passes_one_line_per_second_and_counts_the_rest() -> None:
    clock, reports = Clock(), list[str]()
    limiter = OutageLimiter(clock=clock, report=reports.append)
    passed = []
    for step in range(50):  # 5 s of an error every 100 ms
        clock.now = 100.0 + step / 10
        line = record()
        if limiter.filter(line):
            passed.append(line.getMessage())
    assert len(passed) == 5
    assert passed[0] == "Unable connect"
    assert passed[1] == "Unable connect [9 similar Kafka lines suppressed]"
    assert limiter.check_quiet() == pytest.approx(QUIET - 0.0)  # still failing: not back yet
    assert reports == []


def test_the_end_of_an_outage_is_one_line() -> None:
    clock, reports = Clock(), list[str]()
    limiter = OutageLimiter(clock=clock, report=reports.append)
    for step in range(30):
        clock.now = 100.0 + step / 10
        limiter.filter(record())
    clock.now += QUIET
    assert limiter.check_quiet() is None
    assert limiter.check_quiet() is None
    assert len(reports) == 1 and reports[0].startswith("Kafka reachable again")
    assert "27 lines suppressed" in reports[0]


def test_info_lines_and_the_bus_own_errors_pass_and_a_rebalance_is_no_outage() -> None:
    clock, reports = Clock(), list[str]()
    limiter = OutageLimiter(clock=clock, report=reports.append)
    assert all(limiter.filter(record(logging.INFO)) for _ in range(10))
    assert all(limiter.filter(record(logging.ERROR, "libs.bus.kafka.delivery", "dead-lettering")) for _ in range(10))
    assert limiter.filter(record(logging.WARNING, "aiokafka.consumer.group_coordinator", "rebalancing"))
    assert not limiter.filter(record(logging.WARNING, "libs.bus.kafka.commit", "commit failed; will retry"))
    assert limiter.check_quiet() is None  # warnings only: nothing to report as "back"
    assert reports == []


def test_static_ids_are_per_replica_and_consumer_and_legal() -> None:
    assert static_id("executor-1", "stepline.node-dispatch.v1") == "executor-1--stepline.node-dispatch.v1"
    assert static_id("scheduler", "a") != static_id("scheduler", "b")
    assert static_id("host:1/x y", "t") == "host_1_x_y--t"
    long = static_id("r" * 300, "t")
    assert len(long) == MAX_ID and long != static_id("r" * 301, "t")


def test_a_burst_shorter_than_a_second_is_no_outage() -> None:
    clock, reports = Clock(), list[str]()
    limiter = OutageLimiter(clock=clock, report=reports.append)
    for step in range(3):  # the group coordinator not ready yet, at start-up
        clock.now = 100.0 + step / 10
        limiter.filter(record(msg="Group Coordinator Request failed"))
    clock.now += QUIET
    assert limiter.check_quiet() is None
    assert reports == []


async def test_readers_of_run_events_fetch_in_batches_and_command_readers_at_once() -> None:
    """Followers of run events wait up to 50 ms for a batch; the scheduler's and executors' commands
    and results are fetched as soon as one record is there (aiokafka's defaults)."""
    from libs.bus.kafka.consumer import FOLLOWER_FETCH, ConsumerSettings, new_consumer
    from libs.contracts import topics

    settings = ConsumerSettings("127.0.0.1:9", "test", session_timeout=10, commit_timeout=5)
    follower = new_consumer(topics.RUN_EVENTS, "g", settings, None)
    worker = new_consumer(topics.NODE_DISPATCH, "g", settings, None)
    try:
        assert (follower._fetch_min_bytes, follower._fetch_max_wait_ms) == (
            FOLLOWER_FETCH["fetch_min_bytes"], FOLLOWER_FETCH["fetch_max_wait_ms"])
        assert follower._fetch_min_bytes > 1
        assert worker._fetch_min_bytes == 1
    finally:
        await follower.stop()
        await worker.stop()
