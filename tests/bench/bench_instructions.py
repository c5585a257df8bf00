"""Instructions per node completion (embedded bench) or per W3 run, counted by valgrind: the one
comparison of two commits that holds on a loaded 2-core machine, where process CPU swings ±30 % (two
busy hyperthreads slow each other down) and wall clock more.

    .venv/bin/python tests/bench/bench_instructions.py chain|fan|w3 [--small N] [--large M]

Each workload runs twice under `valgrind --tool=cachegrind --cache-sim=no`, with N and with M runs;
the difference of the two instruction totals divided by the difference in work is the marginal cost,
without the start-up (imports, the first key's scrypt). `chain`/`fan` drive bench_cpu.py (4 runs in
flight); `w3` serves `stepline up` under valgrind and drives the W3 workflow (an HTTP start with
{"n": i}, three TRANSFORM steps, a long poll for the result) from outside it, 4 at a time. To compare
commits, run it in a worktree of each (PYTHONPATH=<worktree>), one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
NODES_PER_RUN = {"chain": 10, "fan": 22, "w3": 1}


def instructions(output: str) -> int:
    found = re.search(r"I\s+refs:\s+([\d,]+)", output)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{output[-2000:]}")
    return int(found.group(1).replace(",", ""))


def embedded(shape: str, runs: int) -> int:
    argv = [*VALGRIND, sys.executable, str(HERE / "bench_cpu.py"), shape, "--runs", str(runs), "--in-flight", "4"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=True)
    return instructions(done.stderr)


W3 = {"identifier": "w3", "nodes": [
    {"identifier": "start", "config": {"type": "SELF_SERVE_TRIGGER",
                                       "userInputs": {"properties": {"n": {"type": "integer"}}, "required": ["n"]}}},
    {"identifier": "a", "config": {"type": "TRANSFORM", "expression": "{n: .inputs.n, a: (.inputs.n + 1)}"}},
    {"identifier": "b", "config": {"type": "TRANSFORM", "expression": ".outputs.a + {b: (.outputs.a.a * 2)}"}},
    {"identifier": "done", "config": {"type": "TRANSFORM", "expression": ".outputs.b + {done: true}"}}],
    "connections": [{"sourceIdentifier": s, "targetIdentifier": t} for s, t in (("start", "a"), ("a", "b"), ("b", "done"))]}


def w3(runs: int) -> int:
    """`stepline up` under valgrind serving `runs` W3 runs driven from this process."""
    with tempfile.TemporaryDirectory() as tmp:
        port, log = _free_port(), Path(tmp) / "server.log"
        argv = [*VALGRIND, sys.executable, "-m", "stepline", "up", "--port", str(port), "--data-dir", tmp]
        with log.open("w") as out:
            server = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            try:
                asyncio.run(_drive(f"http://127.0.0.1:{port}", Path(tmp) / "admin.key", runs))
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=600)
        return instructions(log.read_text())


async def _drive(api: str, key_file: Path, runs: int) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=600) as client:
        await _ready(client, key_file)
        assert (await client.post("/v1/workflows", json=W3)).status_code == 201
        numbers = iter(range(runs))

        async def worker() -> None:
            for n in numbers:
                run = (await client.post("/v1/workflows/w3/runs", json={"inputs": {"n": n}})).json()["workflowRun"]
                while run["status"] != "COMPLETED":
                    run = (await client.get(f"/v1/workflows/runs/{run['identifier']}", params={"wait": 30})).json()["workflowRun"]
                assert run["variables"]["outputs"]["done"]["b"] == 2 * (n + 1), run
        await asyncio.gather(*(worker() for _ in range(4)))


async def _ready(client: httpx.AsyncClient, key_file: Path) -> None:
    """Wait (valgrind starts slowly) for the server and its owner key, then send the key."""
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200 and key_file.exists() and key_file.read_text().strip():
                break
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    client.headers["authorization"] = f"Bearer {key_file.read_text().strip()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(NODES_PER_RUN))
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=60)
    args = parser.parse_args()
    count = (lambda n: w3(n)) if args.workload == "w3" else (lambda n: embedded(args.workload, n))
    small, large = count(args.small), count(args.large)
    work = (args.large - args.small) * NODES_PER_RUN[args.workload]
    unit = "W3 run" if args.workload == "w3" else "node completion"
    print(f"{args.workload}: {(large - small) / work / 1e6:.2f} M instructions per {unit} "
          f"({args.small} → {args.large} runs: {small:,} → {large:,})")


if __name__ == "__main__":
    main()
