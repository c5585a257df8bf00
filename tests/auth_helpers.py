"""API keys for tests: the bootstrap owner key of an engine or a data directory, as request headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from libs.access.bootstrap import KEY_FILE, read_key_file


def key_of(data_dir: Path) -> str:
    key = read_key_file(Path(data_dir) / KEY_FILE)
    assert key is not None, f"no bootstrap key in {data_dir}"
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def auth_headers(engine: Any) -> dict[str, str]:
    """The owner key of an embedded `Engine` (after `start()`), as headers."""
    return bearer(key_of(engine.settings.data_dir))


async def new_key(store: Any, *, user: str = "alice@example.com", role: str = "owner",
                  workspace: str = "default") -> dict[str, str]:
    """Create a key of `role` for `user` directly in `store` (workspace created if needed); headers."""
    from libs.access.keystore import ApiKeys, Workspaces

    await Workspaces(store).create(workspace, workspace.title(), by=None)
    _, key = await ApiKeys(store).create(name=f"test-{role}", workspace=workspace, role=role,  # type: ignore[arg-type]
                                         user=user)
    return bearer(key)


def engine_client(engine: Any) -> Any:
    """An httpx client on an embedded engine's app, with its owner key."""
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=engine.app), base_url="http://127.0.0.1",
                             headers=auth_headers(engine))


async def user_headers(api: Any, user: str, *, role: str = "viewer", workspace: str = "default") -> dict[str, str]:
    """A new key for `user`, created through the API with the client's (owner) key; as headers."""
    answer = await api.post("/v1/api-keys", json={"name": f"test-{user}", "workspace": workspace,
                                                  "role": role, "user": user})
    assert answer.status_code == 201, answer.text
    return bearer(answer.json()["key"])


async def key_in_store(store_url: str, database: str = "stepline", *, role: str = "owner",
                       user: str = "e2e@example.com") -> dict[str, str]:
    """Create a key offline in a store that services share (as `stepline keys create --store-url`)."""
    from libs.runtime.adapters import build_store
    from libs.runtime.settings import CommonSettings

    store = build_store(CommonSettings(store_url=store_url, mongo_database=database))
    await store.open()
    try:
        return await new_key(store, role=role, user=user)
    finally:
        await store.close()
