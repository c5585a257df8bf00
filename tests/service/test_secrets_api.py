"""The secrets API of an embedded engine: values go in, never come out, and are sealed at rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus.memory import MemoryBus
from libs.store.sqlite import SqliteStore
from services.trigger.app import build_app
from services.trigger.settings import TriggerSettings
from tests.auth_helpers import new_key

VALUE = "plaintext-Zq8vJm2-do-not-store"


async def test_put_list_replace_delete(api: httpx.AsyncClient) -> None:
    created = await api.put("/v1/secrets/deploy-token", json={"value": VALUE})
    assert created.status_code == 201, created.text
    assert created.json()["secret"]["name"] == "deploy-token"
    assert VALUE not in created.text

    replaced = await api.put("/v1/secrets/deploy-token", json={"value": VALUE + "-2"})
    assert replaced.status_code == 200
    assert replaced.json()["secret"]["createdAt"] == created.json()["secret"]["createdAt"]
    await api.put("/v1/secrets/a.b@c:d_e-f", json={"value": "x"})

    listed = await api.get("/v1/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["secrets"]] == ["a.b@c:d_e-f", "deploy-token"]
    assert set(listed.json()["secrets"][0]) == {"name", "createdAt", "updatedAt"}
    assert VALUE not in listed.text

    assert (await api.delete("/v1/secrets/deploy-token")).json() == {"ok": True}
    missing = await api.delete("/v1/secrets/deploy-token")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found" and "deploy-token" in missing.json()["message"]
    assert [s["name"] for s in (await api.get("/v1/secrets")).json()["secrets"]] == ["a.b@c:d_e-f"]


@pytest.mark.parametrize("name, body, pointer", [
    ("has space", {"value": "v"}, "/path/name"),
    ("x" * 61, {"value": "v"}, "/path/name"),
    ("ok", {"value": ""}, "/value"),
    ("ok", {"value": 42}, "/value"),
    ("ok", {}, "/value"),
    ("ok", {"value": "v", "extra": 1}, "/extra"),
    ("ok", {"value": "é" * 40000}, "/value"),
])
async def test_bad_input_is_a_422_naming_the_field(api: httpx.AsyncClient, name: str, body: dict[str, Any],
                                                   pointer: str) -> None:
    response = await api.put(f"/v1/secrets/{name}", json=body)
    assert response.status_code == 422, response.text
    assert pointer in [d["pointer"] for d in response.json()["details"]]
    assert response.json()["ok"] is False


async def test_the_largest_value_is_accepted(api: httpx.AsyncClient) -> None:
    assert (await api.put("/v1/secrets/big", json={"value": "v" * 65536})).status_code == 201


async def test_the_store_holds_no_plaintext(engine: Any, api: httpx.AsyncClient) -> None:
    await api.put("/v1/secrets/deploy-token", json={"value": VALUE})
    entry = await engine.store.get_entry("secret", "deploy-token")
    assert set(entry.data) == {"nonce", "ciphertext", "createdAt"}
    db = Path(engine.settings.sqlite_path())
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            assert VALUE.encode() not in path.read_bytes()
    assert (engine.settings.data_dir / "secrets.key").exists()


@pytest.fixture
async def keyless_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    app = build_app(TriggerSettings(data_dir=tmp_path, secrets_key=""), store, MemoryBus(partitions=1))
    headers = await new_key(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 headers=headers) as client:
        yield client
    await store.close()


async def test_without_a_key_the_api_answers_409(keyless_api: httpx.AsyncClient) -> None:
    for response in (await keyless_api.put("/v1/secrets/x", json={"value": "v"}),
                     await keyless_api.get("/v1/secrets"), await keyless_api.delete("/v1/secrets/x")):
        assert response.status_code == 409, response.text
        assert "STEPLINE_SECRETS_KEY" in response.json()["message"]


async def test_an_embedded_engine_reuses_its_generated_key(tmp_path: Path) -> None:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    settings = EmbeddedSettings(data_dir=tmp_path / "data", secrets_key="")
    first = Engine(settings)
    await first.start()
    try:
        vault = first.app.state.secrets
        await vault.put("kept", "across-restarts", now=1.0)
    finally:
        await first.stop()
    key_file = tmp_path / "data" / "secrets.key"
    key = key_file.read_text().strip()
    second = Engine(settings)
    await second.start()
    try:
        assert second.settings.secrets_key == key
        assert await second.app.state.secrets.reveal("kept") == "across-restarts"
    finally:
        await second.stop()


def test_up_distributed_gives_every_service_the_same_persisted_key(tmp_path: Path) -> None:
    from stepline.distributed import service_env
    from stepline.settings import EmbeddedSettings

    settings = EmbeddedSettings(data_dir=tmp_path, secrets_key="")
    first = service_env(settings, "127.0.0.1:9092", "mongodb://127.0.0.1:27017/")["STEPLINE_SECRETS_KEY"]
    again = service_env(settings, "127.0.0.1:9092", "mongodb://127.0.0.1:27017/")["STEPLINE_SECRETS_KEY"]
    assert first == again == (tmp_path / "secrets.key").read_text().strip()
