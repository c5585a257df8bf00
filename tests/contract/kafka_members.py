"""Consumer-group members as OS processes (so they can be SIGKILLed), for the recovery tests
(test_kafka_recovery.py) and the recovery measurement (tests/bench/bench_recovery.py).

`python -m tests.contract.kafka_members BOOTSTRAP REPLICA GROUP SESSION STATIC TOPIC...` runs one
`KafkaBus` replica subscribed to each topic in GROUP, as a service would (`STATIC` = 1: static
membership keyed by REPLICA). It prints one JSON line per event on stdout: `{"ready"}` once started,
`{"change": "assigned"|"revoked", "topic", "partitions", "t"}` from the bus's partition log records,
`{"handled": envelope id, "topic"}` per message, `{"duplicate": instance id}` when another live
process took its instance id over, and `{"stopped"}` after a graceful stop (SIGTERM).
`Member` starts such a process and awaits its events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
Event = dict[str, Any]


class Member:
    """One member process and the events it printed, in order."""

    def __init__(self, replica: str, process: asyncio.subprocess.Process) -> None:
        self.replica = replica
        self.events: list[Event] = []
        self._process = process
        self._arrived = asyncio.Condition()
        self._eof = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, bootstrap: str, replica: str, group: str, topics: list[str], *,
                    session: float, static: bool = True) -> Member:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.contract.kafka_members", bootstrap, replica, group, str(session),
            "1" if static else "0", *topics, cwd=REPO, stdout=asyncio.subprocess.PIPE)
        return cls(replica, process)

    async def wait_for(self, matches: Callable[[Event], bool], *, after: int = 0) -> Event:
        """The first event from index `after` on that `matches`, awaiting it if need be."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: self._find(matches, after) is not None or self._eof)
            found = self._find(matches, after)
        if found is None:
            raise AssertionError(f"member {self.replica} exited ({self._process.returncode}): {self.events}")
        return found

    def assigned(self, topic: str) -> set[int]:
        """The partitions of `topic` this member holds after the events so far."""
        held: set[int] = set()
        for event in self.events:
            if event.get("topic") == topic and event.get("change") == "assigned":
                held = set(event["partitions"])
            elif event.get("topic") == topic and event.get("change") == "revoked":
                held -= set(event["partitions"])
        return held

    def kill(self) -> None:
        if self._process.returncode is None:
            self._process.kill()

    async def stop(self) -> int:
        """SIGTERM (a graceful stop) unless it exited; its exit code."""
        if self._process.returncode is None:
            self._process.terminate()
        code = await self._process.wait()
        await self._reader
        return code

    def _find(self, matches: Callable[[Event], bool], after: int) -> Event | None:
        return next((e for e in self.events[after:] if matches(e)), None)

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            async with self._arrived:
                self.events.append(json.loads(line))
                self._arrived.notify_all()
        await self._process.wait()
        async with self._arrived:
            self._eof = True
            self._arrived.notify_all()


# ---- the member process ------------------------------------------------------------------------------


def _say(event: Event) -> None:
    print(json.dumps(event), flush=True)


class _Partitions(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        duplicate = getattr(record, "kafka_duplicate", None)
        if duplicate is not None:
            _say({"duplicate": duplicate, "t": record.created})
        event = getattr(record, "kafka_partitions", None)
        if event is not None:
            topic, _group, change, partitions = event
            _say({"change": change, "topic": topic, "partitions": partitions, "t": record.created})


async def _serve(bootstrap: str, replica: str, group: str, session: float, static: bool,
                 topics: list[str]) -> None:
    from libs.bus.kafka import KafkaBus
    from libs.contracts.envelope import Envelope

    bus = KafkaBus(bootstrap, partitions=8, client_id=f"stepline-test-{replica}", session_timeout=session,
                   heartbeat_interval=min(1.0, session / 3), instance_id=replica if static else None)
    for topic in topics:
        async def handle(envelope: Envelope, topic: str = topic) -> None:
            _say({"handled": envelope.id, "topic": topic, "t": time.time()})
        bus.subscribe(topic, group, handle)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await bus.start()
    _say({"ready": True, "t": time.time()})
    await stop.wait()
    await bus.stop()
    _say({"stopped": True, "t": time.time()})


def main(argv: list[str]) -> None:
    bootstrap, replica, group, session, static, *topics = argv
    logger = logging.getLogger("libs.bus.kafka.consumer")
    logger.setLevel(logging.INFO)
    logger.addHandler(_Partitions())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(bootstrap, replica, group, float(session), static == "1", topics))


if __name__ == "__main__":
    main(sys.argv[1:])
