"""Real servers for the adapter contract suites, one of each per test session.

MongoDB protocol (`test_mongo_store.py`):

`STEPLINE_TEST_MONGO_URL` points the tests at a running server. Otherwise FerretDB is built (cached in
`<repo>/.cache/infra`) and started by `devinfra`, on a private PostgreSQL when one is
installed and on SQLite otherwise (`STEPLINE_FERRETDB_BACKEND` chooses); if that is impossible (no Go
toolchain, say) the Mongo tests are skipped with the reason — or fail with it when
`STEPLINE_REQUIRE_INFRA=1`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import free_port

CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "infra"


def unavailable(what: str, reason: str, variable: str) -> NoReturn:
    """Skip with a clear notice, or fail when CI demands real infrastructure."""
    if os.environ.get("STEPLINE_REQUIRE_INFRA") == "1":
        pytest.fail(f"STEPLINE_REQUIRE_INFRA=1 but {reason}", pytrace=False)
    pytest.skip(f"no {what} ({reason}); set {variable} to use a running one")


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The `devinfra.Server` of the FerretDB this session started (fault tests restart it),
    or None when `STEPLINE_TEST_MONGO_URL` points at a running server."""
    if os.environ.get("STEPLINE_TEST_MONGO_URL"):
        yield None
        return
    from devinfra import DevInfra, InfraError

    try:
        server = DevInfra(CACHE_DIR).start_ferretdb(tmp_path_factory.mktemp("ferretdb"), port=free_port())
    except InfraError as exc:  # Go missing or too old, the build or the start failed
        unavailable("MongoDB-protocol server", f"FerretDB could not be built or started: {exc.message}",
                    "STEPLINE_TEST_MONGO_URL")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_url(mongo_server: Any) -> str:
    return os.environ.get("STEPLINE_TEST_MONGO_URL") or str(mongo_server.url)


# ---- Kafka (test_kafka_bus.py) ---------------------------------------------------------------------
# `STEPLINE_TEST_KAFKA_BOOTSTRAP` points the tests at a running broker (then the broker-restart test
# is skipped: it needs to own the broker). Otherwise `devinfra` fetches Kafka's jars with
# Maven (cached in `<repo>/.cache/infra`) and starts a single-node KRaft broker for the session on
# free loopback ports, with its data under pytest's temporary directory. Without Java 17 or Maven
# the Kafka tests are skipped with the reason, or fail with it when `STEPLINE_REQUIRE_INFRA=1`.


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    server: Any = None
    """The `devinfra.Server` when this session started the broker, else None."""


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    bootstrap = os.environ.get("STEPLINE_TEST_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield KafkaBroker(bootstrap)
        return
    from devinfra import DevInfra, InfraError

    try:
        server = DevInfra(CACHE_DIR).start_kafka(
            tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    except InfraError as exc:  # Java or Maven missing, the fetch or the start failed
        unavailable("Kafka broker", f"Kafka could not be fetched or started: {exc.message}",
                    "STEPLINE_TEST_KAFKA_BOOTSTRAP")
    try:
        yield KafkaBroker(server.url, server)
    finally:
        server.stop()


# ---- The local language model (test_ai_local_model.py) ---------------------------------------------
# `STEPLINE_TEST_MODEL_URL` (an OpenAI-compatible base URL ending in /v1, with `STEPLINE_TEST_MODEL`
# the model id) points the tests at a running server. Otherwise `devinfra` builds
# llama-cpp-python (cached in `<repo>/.cache/infra/model`; the first build takes minutes) and serves
# SmolLM2-135M-Instruct on a free loopback port for the session. If that is impossible the model tests
# are skipped with the reason, or fail with it when `STEPLINE_REQUIRE_INFRA=1`.


@dataclass(frozen=True)
class LocalModel:
    base_url: str
    """OpenAI-compatible base URL (`http://127.0.0.1:<port>/v1`): a provider's `baseUrl`."""
    model: str
    server: Any = None
    """The `devinfra.Server` when this session started the model, else None."""


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    url = os.environ.get("STEPLINE_TEST_MODEL_URL")
    from devinfra import DevInfra, InfraError
    from devinfra.model import MODEL_NAME

    if url:
        yield LocalModel(url.rstrip("/"), os.environ.get("STEPLINE_TEST_MODEL", MODEL_NAME))
        return
    try:
        server = DevInfra(CACHE_DIR).start_model(tmp_path_factory.mktemp("model"), port=free_port())
    except InfraError as exc:  # no compiler or cmake, the build, the download or the start failed
        unavailable("local language model", f"the model server could not be built or started: {exc.message}",
                    "STEPLINE_TEST_MODEL_URL")
    try:
        yield LocalModel(server.url, MODEL_NAME, server)
    finally:
        server.stop()
