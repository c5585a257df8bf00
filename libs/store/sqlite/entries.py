"""The `EntryStore` port on SQLite: one `entries` table keyed (kind, key), data as JSON text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from libs.store.ports import Entry

Params = Sequence[Any] | Mapping[str, Any]

_COLUMNS = "kind, key, data, rev, updated_at"
GET = f"SELECT {_COLUMNS} FROM entries WHERE kind = ? AND key = ?"
INSERT = f"""INSERT INTO entries (kind, key, data, rev, updated_at) VALUES (?, ?, ?, 1, ?)
ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"""
REPLACE = f"""UPDATE entries SET data = ?, rev = rev + 1, updated_at = ?
WHERE kind = ? AND key = ? AND rev = ? RETURNING {_COLUMNS}"""
PUT = f"""INSERT INTO entries (kind, key, data, rev, updated_at) VALUES (?, ?, ?, 1, ?)
ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, rev = rev + 1, updated_at = excluded.updated_at
RETURNING {_COLUMNS}"""
DELETE = "DELETE FROM entries WHERE kind = ? AND key = ? RETURNING key"
LIST = f"""SELECT {_COLUMNS} FROM entries WHERE kind = ? AND substr(key, 1, ?) = ?
ORDER BY key LIMIT ? OFFSET ?"""


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(kind=row[0], key=row[1], data=json.loads(row[2]), rev=int(row[3]), updated_at=float(row[4]))


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class _Rows(Protocol):
    async def _rows(self, statement: str, params: Params = ()) -> list[Any]: ...


class SqliteEntries:
    """Mixed into `SqliteStore`, whose `_rows` runs one statement."""

    async def get_entry(self: _Rows, kind: str, key: str) -> Entry | None:
        rows = await self._rows(GET, (kind, key))
        return _entry(rows[0]) if rows else None

    async def insert_entry(self: _Rows, kind: str, key: str, data: dict[str, Any], *,
                           now: float) -> tuple[Entry, bool]:
        rows = await self._rows(INSERT, (kind, key, _text(data), now))
        if rows:
            return _entry(rows[0]), True
        existing = await self._rows(GET, (kind, key))
        return _entry(existing[0]), False

    async def replace_entry(self: _Rows, kind: str, key: str, data: dict[str, Any], *, expected_rev: int,
                            now: float) -> Entry | None:
        rows = await self._rows(REPLACE, (_text(data), now, kind, key, expected_rev))
        return _entry(rows[0]) if rows else None

    async def put_entry(self: _Rows, kind: str, key: str, data: dict[str, Any], *, now: float) -> Entry:
        rows = await self._rows(PUT, (kind, key, _text(data), now))
        return _entry(rows[0])

    async def delete_entry(self: _Rows, kind: str, key: str) -> bool:
        return bool(await self._rows(DELETE, (kind, key)))

    async def list_entries(self: _Rows, kind: str, *, prefix: str = "", limit: int = 1000,
                           offset: int = 0) -> list[Entry]:
        rows = await self._rows(LIST, (kind, len(prefix), prefix, limit, offset))
        return [_entry(row) for row in rows]
