"""Choose the store and bus adapters named by the settings' URLs."""

from __future__ import annotations

from libs.bus.kafka import KafkaBus
from libs.bus.memory import MemoryBus
from libs.bus.ports import Bus
from libs.core.errors import SteplineError
from libs.runtime.settings import CommonSettings
from libs.store.mongo import MongoStore
from libs.store.ports import Store
from libs.store.sqlite import SqliteStore


class SettingsError(SteplineError):
    """A setting names an adapter that does not exist: fix the configuration (not retryable)."""

    code = "invalid_settings"


def build_store(settings: CommonSettings) -> Store:
    url = settings.store_url
    if url.startswith(("mongodb://", "mongodb+srv://")):
        return MongoStore(url, database=settings.mongo_database)
    if url == "" or url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteStore(settings.sqlite_path())
    raise SettingsError(f"STEPLINE_STORE_URL must start with sqlite:/// or mongodb://, got {url.split('://')[0]!r}")


def build_bus(settings: CommonSettings, *, client_id: str) -> Bus:
    url = settings.bus_url
    if url == "memory://":
        return MemoryBus(partitions=settings.partitions)
    if url.startswith("kafka://"):
        return KafkaBus(url.removeprefix("kafka://"), partitions=settings.partitions, client_id=client_id,
                        session_timeout=settings.kafka_session_timeout,
                        heartbeat_interval=settings.kafka_heartbeat_interval,
                        rebalance_timeout=settings.kafka_rebalance_timeout,
                        instance_id=settings.instance_id if settings.kafka_static_membership else None)
    raise SettingsError(f"STEPLINE_BUS_URL must be memory:// or kafka://host:port, got {url.split('://')[0]!r}")
