"""The key store's verification: one scrypt, off the event loop, for a burst of first requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from libs.access import keys
from libs.access.keystore import ApiKeys
from libs.store.sqlite import SqliteStore


async def test_a_burst_of_first_requests_costs_one_scrypt_off_the_loop(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    _, key = await ApiKeys(store).create(name="k", workspace="default", role="viewer", user="u")
    fresh = ApiKeys(store)
    calls: list[Any] = []
    real = keys.matches

    def counted(*args: str) -> bool:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(keys, "matches", counted)
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    principals = await asyncio.gather(*(fresh.verify(key) for _ in range(50)))
    other = key[:-1] + ("b" if key[-1] != "b" else "c")
    wrong = await asyncio.gather(*(fresh.verify(other) for _ in range(20)))
    ticker.cancel()
    assert all(p is not None and p.user == "u" for p in principals)
    assert wrong == [None] * 20
    assert len(calls) == 2, "one scrypt for the key, one for the wrong one"
    assert ticks > 2, "the event loop ran while scrypt did"
    await store.close()
