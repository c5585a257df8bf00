"""The recovery figures of a chaos run, from the runs' own records: run latency (first start request
→ the run's `completedAt`) and the longest stall, the longest time in which runs were in flight and
not one node run or run completed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from tests.chaos.workload import Tracked


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ended(t: Tracked) -> float | None:
    return epoch(t.run["completedAt"]) if t.completed and t.run and t.run["completedAt"] else None


def progress(runs: list[Tracked]) -> list[float]:
    """Every completion among `runs`: of each node run and of each run."""
    times = [epoch(nr["completedAt"]) for t in runs if t.run for nr in t.run["nodeRuns"] if nr["completedAt"]]
    return sorted(times + [e for t in runs if (e := ended(t)) is not None])


def longest_stall(runs: list[Tracked]) -> tuple[float, float]:
    """(seconds, when it ended): the longest gap between two completions during which some run had
    been asked for and was not completed; a gap counts from the later of the previous completion and
    the first start request of a run in flight. A run never completed is in flight to the end."""
    spans = [(t.sent_at, ended(t) or math.inf) for t in runs if t.sent_at]
    times = progress(runs)
    worst = (0.0, 0.0)
    for before, now in pairwise(times):
        waiting = [sent for sent, end in spans if sent < now <= end]
        if waiting and now - max(before, min(waiting)) > worst[0]:
            worst = (now - max(before, min(waiting)), now)
    return worst


@dataclass(frozen=True)
class Figures:
    phase: str
    runs: int
    answered_202: int
    first_to_last: float
    """First start request → last run completed, in seconds."""
    p50: float
    p99: float
    stall: float
    stall_at: float

    def row(self) -> str:
        return (f"| {self.phase} | {self.runs} | {self.answered_202} | {self.first_to_last:.1f} s | "
                f"{self.p50:.1f} s / {self.p99:.1f} s | {self.stall:.1f} s |")


HEADER = ("| phase | runs | starts answered 202 | first start → last completed | latency p50 / p99 | longest stall |\n"
          "|---|---|---|---|---|---|")


def figures(phase: str, runs: list[Tracked]) -> Figures:
    latencies = [e - t.sent_at for t in runs if (e := ended(t)) is not None]
    last = max((e for t in runs if (e := ended(t)) is not None), default=math.nan)
    stall, at = longest_stall(runs)
    return Figures(phase, len(runs), sum(1 for t in runs if t.answered == 202),
                   last - min((t.sent_at for t in runs), default=math.nan),
                   percentile(latencies, 50), percentile(latencies, 99), stall, at)


def breaches(free: Figures, faults: Figures, stall_limit: float = 10.0) -> list[str]:
    """The issue's thresholds for the long profile: p99 under faults at most 3× the fault-free p99
    plus 5 s, and no stall over `stall_limit` seconds."""
    found = []
    if not faults.p99 <= 3 * free.p99 + 5:
        found.append(f"p99 under faults {faults.p99:.1f} s > 3 × {free.p99:.1f} s + 5 s")
    found += [f"{f.phase}: a stall of {f.stall:.1f} s > {stall_limit:g} s" for f in (free, faults) if f.stall > stall_limit]
    return found


def timeline(t: Tracked, since: float) -> str:
    """One run's story, in seconds after `since`: asked for, and each node run's start → completion."""
    assert t.run is not None
    end = ended(t)
    steps = ", ".join(f"{nr['node']['identifier']}#{nr['attempt']} {epoch(nr['startedAt']) - since:+.1f}"
                      f"→{epoch(nr['completedAt']) - since:+.1f} {nr['result']}" if nr["completedAt"] and nr["startedAt"]
                      else f"{nr['node']['identifier']}#{nr['attempt']} {nr['state']}" for nr in t.run["nodeRuns"])
    return (f"{t.run_id} {t.planned.workflow} ({t.key}, answered {t.answered}): asked {t.sent_at - since:+.1f}, "
            f"latency {end - t.sent_at if end else math.nan:.1f} s: {steps}")


def slowest(runs: list[Tracked], since: float, count: int = 5) -> list[str]:
    done = sorted((t for t in runs if ended(t) is not None), key=lambda t: t.sent_at - (ended(t) or 0))
    return [timeline(t, since) for t in done[:count]]
