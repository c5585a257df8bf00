"""`devinfra` against the real servers: Kafka (KRaft) and FerretDB on free loopback ports.

Opt-in for now: the first run fetches Kafka's jars with Maven and builds FerretDB with Go (about
1.5 minutes from empty caches, cached in `.cache/infra` afterwards). Run with

    STEPLINE_INFRA_TESTS=1 .venv/bin/pytest -q tests/infra
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

if "1" not in (os.environ.get("STEPLINE_INFRA_TESTS"), os.environ.get("STEPLINE_REQUIRE_INFRA")):
    pytest.skip("dev-infra self-tests are opt-in: set STEPLINE_INFRA_TESTS=1 (CI runs them)", allow_module_level=True)

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from devinfra import (  # noqa: E402
    DevInfra,
    InfraError,
    MissingToolError,
    Server,
    default_cache_dir,
    free_port,
    kafka_metadata,
)

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def infra() -> DevInfra:
    return DevInfra(default_cache_dir())


@pytest.fixture(scope="module")
def kafka(infra: DevInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = infra.start_kafka(tmp_path_factory.mktemp("kafka"), port=free_port(),
                               controller_port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mongo(infra: DevInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = infra.start_ferretdb(tmp_path_factory.mktemp("ferretdb"), port=free_port())
    yield server
    server.stop()


async def _produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"run-1")
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        got: list[bytes] = []
        async with asyncio.timeout(timeout):
            while len(got) < count:
                message = await consumer.getone()
                assert message.value is not None
                got.append(message.value)
        return got
    finally:
        await consumer.stop()


def _topic() -> str:
    return f"devinfra-{uuid.uuid4().hex[:10]}"


def test_servers_report_urls_pids_and_logs(kafka: Server, mongo: Server) -> None:
    assert kafka.url == f"127.0.0.1:{kafka.port}"
    assert mongo.url == f"mongodb://127.0.0.1:{mongo.port}/"
    for server in (kafka, mongo):
        assert server.pid > 0 and server.running and server.answers()
        assert server.log_path.is_file()
    brokers, controller = kafka_metadata(kafka.port)
    assert brokers == [1] and controller == 1


async def test_kafka_produce_and_consume(kafka: Server) -> None:
    topic = _topic()
    await _produce(kafka.url, topic, b'{"hello": "kafka"}')
    assert await _consume(kafka.url, topic, 1) == [b'{"hello": "kafka"}']


async def test_ferretdb_insert_find_and_conditional_update(mongo: Server) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo.url, serverSelectionTimeoutMS=5000)
    try:
        runs = client["devinfra"]["runs"]
        await runs.insert_one({"_id": "wfr_1", "status": "IN_PROGRESS", "seq": 0})
        assert await runs.find_one({"_id": "wfr_1"}) == {"_id": "wfr_1", "status": "IN_PROGRESS", "seq": 0}
        won = await runs.find_one_and_update({"_id": "wfr_1", "seq": 0}, {"$set": {"status": "COMPLETED"},
                                                                          "$inc": {"seq": 1}})
        lost = await runs.find_one_and_update({"_id": "wfr_1", "seq": 0}, {"$inc": {"seq": 1}})
        assert won is not None and lost is None
        assert (await runs.find_one({"_id": "wfr_1"}) or {}).get("seq") == 1
    finally:
        await client.close()


async def test_kafka_serves_after_graceful_restart_and_after_a_crash(kafka: Server) -> None:
    topic = _topic()
    await _produce(kafka.url, topic, b"before")
    old_pid = kafka.pid

    await asyncio.to_thread(kafka.restart)
    assert kafka.pid != old_pid and kafka.answers()
    await _produce(kafka.url, topic, b"after-restart")

    kafka.kill()
    assert not kafka.running
    await asyncio.to_thread(kafka.restart)
    await _produce(kafka.url, topic, b"after-crash")
    assert await _consume(kafka.url, topic, 3) == [b"before", b"after-restart", b"after-crash"]


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_stop_and_kill_leave_no_process_behind(infra: DevInfra, tmp_path: Path) -> None:
    mongo = infra.start_ferretdb(tmp_path / "ferretdb", port=free_port())
    kafka = infra.start_kafka(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    assert _processes_mentioning(str(tmp_path))
    mongo.stop()
    kafka.kill()
    for server in (mongo, kafka):
        assert not server.running
        with pytest.raises(ProcessLookupError):
            os.kill(server.pid, 0)
    assert _processes_mentioning(str(tmp_path)) == []
    kafka.stop()  # stopping a stopped server is a no-op


def test_a_busy_port_is_a_clear_error(infra: DevInfra, mongo: Server, tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="already in use"):
        infra.start_ferretdb(tmp_path, port=mongo.port)


def test_a_missing_tool_names_it_and_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingToolError, match="java") as caught:
        DevInfra(tmp_path / "cache").ensure_kafka()
    assert caught.value.tool == "java" and "apt-get install" in caught.value.message
    with pytest.raises(MissingToolError, match="`go`"):
        DevInfra(tmp_path / "cache").ensure_ferretdb()
