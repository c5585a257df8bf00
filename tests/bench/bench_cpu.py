"""CPU time and node completions/s of one workflow in its own embedded engine: the comparison that
survives a noisy machine (wall-clock figures swing ±30 % here; process CPU per workload much less).

    .venv/bin/python tests/bench/bench_cpu.py chain|fan [--runs N] [--in-flight K] [--workflows W]

`--workflows W` stores W other workflows beside the measured one (what the trigger workers' lookups of
live triggers grow with).

To compare two commits, run it in a worktree of each, alternately:
    git worktree add /tmp/base <commit> && cd /tmp/base && \\
        PYTHONPATH=/tmp/base /work/main/.venv/bin/python tests/bench/bench_cpu.py fan
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_embedded as bench  # noqa: E402

from libs.runtime import event_loop  # noqa: E402
from stepline.embedded import Engine  # noqa: E402
from stepline.settings import EmbeddedSettings  # noqa: E402


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def main(shape: str, runs: int, in_flight: int, others: int) -> None:
    definition = bench.chain(10) if shape == "chain" else bench.fan(20)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(EmbeddedSettings(data_dir=Path(tmp), stale_seconds=30))
        began = cpu_seconds()
        try:
            row = await bench.bench(engine, definition, runs, in_flight, others)
        finally:
            used = cpu_seconds() - began
            await engine.stop()
    print(f"{definition['identifier']} {runs} runs, {in_flight} in flight: {row['nodes_per_s']:.0f} nodes/s, "
          f"process CPU {used:.2f} s" + (f", {others} other workflows stored" if others else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shape", choices=("chain", "fan"))
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--workflows", type=int, default=0)
    args = parser.parse_args()
    event_loop.run(main(args.shape, args.runs, args.in_flight, args.workflows))
