"""SCHEDULE_TRIGGER time logic (libs/core/schedule.py): ticks of cron and interval schedules, in
time zones without daylight saving time, and what is due after a short delay or a long downtime."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.core.errors import DefinitionError
from libs.core.schedule import Due, Schedule, due, latest_tick, next_tick, schedule_issues, tick_iso
from libs.core.validation import parse_workflow

UTC = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30 all year, no DST
TOKYO = ZoneInfo("Asia/Tokyo")  # +09:00 all year, no DST


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp())


def cron(expression: str, zone: str = "UTC", missed: str = "skip") -> Schedule:
    return Schedule.from_config({"type": "SCHEDULE_TRIGGER", "cron": expression, "timezone": zone,
                                 "missedTicks": missed})


def every(seconds: int, missed: str = "skip") -> Schedule:
    return Schedule.from_config({"type": "SCHEDULE_TRIGGER", "intervalSeconds": seconds, "missedTicks": missed})


# ---- ticks ---------------------------------------------------------------------------------------


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    schedule = every(60)
    assert next_tick(schedule, 1_000_000_000) == 1_000_000_020  # 1e9 = 16666666 * 60 + 40
    assert next_tick(schedule, 1_000_000_020) == 1_000_000_080  # strictly after a tick
    assert next_tick(schedule, 1_000_000_019.9) == 1_000_000_020
    assert latest_tick(schedule, 1_000_000_020) == 1_000_000_020  # at or before
    assert latest_tick(schedule, 1_000_000_079.5) == 1_000_000_020


def test_a_one_second_interval_ticks_every_second() -> None:
    schedule = every(1)
    assert next_tick(schedule, 100.2) == 101
    assert latest_tick(schedule, 100.2) == 100


def test_cron_ticks_in_utc() -> None:
    schedule = cron("*/15 * * * *")
    start = at(UTC, 2026, 3, 1, 10, 7, 30)
    assert next_tick(schedule, start) == at(UTC, 2026, 3, 1, 10, 15)
    assert next_tick(schedule, at(UTC, 2026, 3, 1, 10, 15)) == at(UTC, 2026, 3, 1, 10, 30)
    assert latest_tick(schedule, at(UTC, 2026, 3, 1, 10, 15)) == at(UTC, 2026, 3, 1, 10, 15)
    assert latest_tick(schedule, start) == at(UTC, 2026, 3, 1, 10, 0)


def test_cron_ticks_are_read_in_the_schedule_time_zone() -> None:
    nine_in_kolkata = cron("0 9 * * *", "Asia/Kolkata")
    start = at(UTC, 2026, 6, 1, 0, 0)  # 05:30 in Kolkata
    assert next_tick(nine_in_kolkata, start) == at(KOLKATA, 2026, 6, 1, 9, 0) == at(UTC, 2026, 6, 1, 3, 30)
    nine_in_tokyo = cron("0 9 * * *", "Asia/Tokyo")
    assert next_tick(nine_in_tokyo, start) == at(TOKYO, 2026, 6, 2, 9, 0)  # already 09:00 there: tomorrow


def test_cron_weekdays_and_macros() -> None:
    mondays = cron("30 8 * * 1", "Asia/Tokyo")
    saturday = at(TOKYO, 2026, 3, 7, 12, 0)  # 2026-03-07 is a Saturday
    assert next_tick(mondays, saturday) == at(TOKYO, 2026, 3, 9, 8, 30)
    assert next_tick(cron("@daily"), at(UTC, 2026, 3, 7, 12, 0)) == at(UTC, 2026, 3, 8)
    assert next_tick(cron("@HOURLY"), at(UTC, 2026, 3, 7, 12, 0)) == at(UTC, 2026, 3, 7, 13)


def test_tick_iso_carries_the_time_zone_offset() -> None:
    schedule = cron("0 9 * * *", "Asia/Kolkata")
    assert tick_iso(schedule, at(KOLKATA, 2026, 6, 1, 9, 0)) == "2026-06-01T09:00:00+05:30"
    assert tick_iso(every(60), 1_000_000_020) == "2001-09-09T01:47:00+00:00"


# ---- what is due ---------------------------------------------------------------------------------


def test_nothing_is_due_before_the_next_tick() -> None:
    assert due(every(60), 120, 119.9, grace=30) is None


def test_a_tick_found_on_time_fires_and_the_next_one_follows() -> None:
    assert due(every(60), 120, 120.4, grace=30) == Due(fire=120, next_tick=180, skipped=0)
    assert due(every(60, "once"), 120, 120.4, grace=30) == Due(fire=120, next_tick=180, skipped=0)


def test_skip_fires_nothing_for_ticks_missed_during_downtime() -> None:
    # down from before 120 until 400: ticks 120, 180, 240, 300, 360 were missed
    assert due(every(60), 120, 400, grace=30) == Due(fire=None, next_tick=420, skipped=5)


def test_once_fires_one_run_for_all_missed_ticks_then_continues() -> None:
    step = due(every(60, "once"), 120, 400, grace=30)
    assert step == Due(fire=360, next_tick=420, skipped=4)
    assert due(every(60, "once"), step.next_tick, 420.2, grace=30) == Due(fire=420, next_tick=480, skipped=0)


def test_after_downtime_a_tick_that_is_on_time_fires_either_way() -> None:
    # back at 365: 360 is on time, the ones before it were missed
    assert due(every(60), 120, 365, grace=30) == Due(fire=360, next_tick=420, skipped=4)
    assert due(every(60, "once"), 120, 365, grace=30) == Due(fire=360, next_tick=420, skipped=4)


def test_a_single_late_tick_beyond_grace_is_missed() -> None:
    assert due(every(3600), 3600, 3600 + 31, grace=30) == Due(fire=None, next_tick=7200, skipped=1)
    assert due(every(3600, "once"), 3600, 3600 + 31, grace=30) == Due(fire=3600, next_tick=7200, skipped=0)


def test_cron_downtime_in_a_time_zone() -> None:
    daily = cron("0 9 * * *", "Asia/Kolkata", "once")
    stored = at(KOLKATA, 2026, 6, 1, 9, 0)
    back = at(KOLKATA, 2026, 6, 4, 12, 0)  # four days later: 1st, 2nd, 3rd, 4th at 09:00 missed
    step = due(daily, stored, back, grace=30)
    assert step == Due(fire=at(KOLKATA, 2026, 6, 4, 9, 0), next_tick=at(KOLKATA, 2026, 6, 5, 9, 0), skipped=3)
    skipping = cron("0 9 * * *", "Asia/Kolkata", "skip")
    assert due(skipping, stored, back, grace=30) == Due(fire=None, next_tick=step.next_tick, skipped=4)


# ---- config --------------------------------------------------------------------------------------


def workflow(config: dict[str, Any]) -> dict[str, Any]:
    return {"identifier": "nightly", "nodes": [{"identifier": "tick", "config": config},
                                               {"identifier": "work", "config": {"type": "NOOP"}}],
            "connections": [{"sourceIdentifier": "tick", "targetIdentifier": "work"}]}


def issues(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_workflow(workflow(config))
    return [(i.pointer, i.message) for i in caught.value.issues]


def test_valid_schedules_pass_validation() -> None:
    for config in ({"type": "SCHEDULE_TRIGGER", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
                   {"type": "SCHEDULE_TRIGGER", "intervalSeconds": 1, "missedTicks": "once"},
                   {"type": "SCHEDULE_TRIGGER", "cron": "@hourly"}):
        parse_workflow(workflow(config))


@pytest.mark.parametrize(("config", "pointer", "words"), [
    ({"cron": "61 * * * *"}, "/nodes/0/config/cron", "not a valid cron expression"),
    ({"cron": "* * * * * *"}, "/nodes/0/config/cron", "five fields"),
    ({"cron": "every day"}, "/nodes/0/config/cron", "five fields"),
    ({"cron": "@sometimes"}, "/nodes/0/config/cron", "not a known macro"),
    ({"intervalSeconds": 5, "timezone": "Mars/Olympus_Mons"}, "/nodes/0/config/timezone", "IANA"),
    ({"intervalSeconds": 5, "timezone": "../etc/passwd"}, "/nodes/0/config/timezone", "IANA"),
    ({"intervalSeconds": 0}, "/nodes/0/config/intervalSeconds", ">= 1"),
    ({"intervalSeconds": 1.5}, "/nodes/0/config/intervalSeconds", "integer"),
    ({"intervalSeconds": 5, "missedTicks": "all"}, "/nodes/0/config/missedTicks", "one of"),
    ({}, "/nodes/0/config", "exactly one of `cron` and `intervalSeconds`"),
    ({"cron": "@daily", "intervalSeconds": 60}, "/nodes/0/config", "exactly one of"),
    ({"intervalSeconds": 60, "every": "day"}, "/nodes/0/config/every", "not an allowed field"),
])
def test_bad_schedules_are_rejected_with_a_pointer(config: dict[str, Any], pointer: str, words: str) -> None:
    found = issues({"type": "SCHEDULE_TRIGGER", **config})
    assert any(p == pointer and words in m for p, m in found), found


def test_schedule_issues_alone_cover_what_the_schema_cannot() -> None:
    assert schedule_issues({"cron": "0 9 * * *", "timezone": "Asia/Tokyo"}) == []
    assert [i.pointer for i in schedule_issues({"cron": "0 25 * * *", "timezone": "Nowhere"}, "/c")] == [
        "/c/cron", "/c/timezone"]
    with pytest.raises(ValueError, match="timezone"):
        Schedule.from_config({"intervalSeconds": 5, "timezone": "Nowhere"})
