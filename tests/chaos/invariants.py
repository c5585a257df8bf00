"""What must hold after any chaos, however the faults fell: every accepted run completed (none
stuck), each executed node succeeded exactly once with the outputs its shape must have, and no
request had an effect on the target under two idempotency keys (a request re-sent under its own
key is fine: that is what the key is for)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from tests.chaos.workload import Tracked
from tests.conftest import Target, respond


@dataclass(frozen=True)
class Verdict:
    accepted: int
    completed: int
    stuck: list[str]
    doubled: list[str]
    """`run/node` that succeeded more than once."""
    wrong: list[str]
    """Runs whose result, executed nodes or outputs are not what their shape must give."""
    two_keys: list[str]
    """`run path` that had an effect on the target under more than one idempotency key."""
    lingering: list[str]
    """Node runs of completed runs that are not COMPLETED (reported, not asserted: see check() in
    tests/e2e/test_distributed_faults.py)."""
    refused_patches: list[str]
    target_requests: int
    target_failed: int
    resent_same_key: int

    @property
    def violations(self) -> dict[str, list[str]]:
        found = {"stuck": self.stuck, "succeeded twice": self.doubled, "wrong result": self.wrong,
                 "effect under two keys": self.two_keys, "approval refused": self.refused_patches}
        return {name: items for name, items in found.items() if items}


def succeeded_nodes(t: Tracked) -> Counter[str]:
    assert t.run is not None
    return Counter(nr["node"]["identifier"] for nr in t.run["nodeRuns"]
                   if nr["status"] == "COMPLETED" and nr["result"] == "SUCCESS")


def wrong(t: Tracked) -> str | None:
    """Why a completed run is not what its shape must give, or None."""
    assert t.run is not None
    succeeded = set(succeeded_nodes(t))
    if t.run["result"] != "SUCCESS" or succeeded != t.planned.executed:
        return f"{t.run_id} ({t.key}): {t.run['result']}, succeeded {sorted(succeeded)} of {sorted(t.planned.executed)}"
    try:
        t.planned.check(t.run)
    except AssertionError as exc:
        return f"{t.run_id} ({t.key}): outputs: {exc}"
    return None


def effects(target: Target) -> tuple[dict[tuple[str, str], set[str]], int]:
    """Idempotency keys per (run, path) of the requests the target answered with success (by the
    target's own rule, `respond`, replayed in arrival order), and how many it failed."""
    seen: Counter[str] = Counter()
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    failed = 0
    for r in target.requests:
        seen[r["path"]] += 1
        if respond(r["path"].lstrip("/"), seen[r["path"]], r).status_code >= 400:
            failed += 1
            continue
        keys[(r["headers"]["x-stepline-run-id"], r["path"])].add(r["headers"]["idempotency-key"])
    return keys, failed


def judge(runs: list[Tracked], target: Target, refused_patches: list[str]) -> Verdict:
    done = [t for t in runs if t.completed]
    keys, failed = effects(target)
    lingering = [f"{t.run_id}/{nr['node']['identifier']}#{nr['attempt']}: {nr['state']}"
                 for t in done for nr in (t.run or {})["nodeRuns"] if nr["status"] != "COMPLETED"]
    resent = Counter(r["headers"]["idempotency-key"] for r in target.requests)
    return Verdict(
        accepted=sum(1 for t in runs if t.run_id), completed=len(done),
        stuck=[f"{t.run_id} ({t.key}): {(t.run or {}).get('status', 'never seen')}" for t in runs if not t.completed],
        doubled=[f"{t.run_id}/{node}" for t in done for node, n in succeeded_nodes(t).items() if n > 1],
        wrong=[w for t in done if (w := wrong(t)) is not None],
        two_keys=[f"{run} {path}: {sorted(k)}" for (run, path), k in keys.items() if len(k) > 1],
        lingering=lingering, refused_patches=refused_patches, target_requests=len(target.requests),
        target_failed=failed, resent_same_key=sum(1 for n in resent.values() if n > 1))
