"""The `EntryStore` port on MongoDB: one `entries` collection, `_id` = `{kind}:{key}`, data as JSON
text (so user keys need no escaping and the SQLite adapter stores the same bytes)."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from pymongo import ReturnDocument

from libs.store.mongo.collections import Collections, translated
from libs.store.mongo.documents import Doc
from libs.store.mongo.queries import ENTRIES
from libs.store.ports import Entry

_KEY_ORDER = [("key", 1)]


def _id(kind: str, key: str) -> str:
    return f"{kind}:{key}"


def _entry(doc: Doc) -> Entry:
    return Entry(kind=doc["kind"], key=doc["key"], data=json.loads(doc["data"]), rev=int(doc["rev"]),
                 updated_at=float(doc["updated_at"]))


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class _Db(Protocol):
    @property
    def _db(self) -> Collections: ...


class MongoEntries:
    """Mixed into `MongoStore`, whose `_db` holds the collections."""

    async def get_entry(self: _Db, kind: str, key: str) -> Entry | None:
        doc = await self._db.find_one(ENTRIES, {"_id": _id(kind, key)})
        return _entry(doc) if doc is not None else None

    async def insert_entry(self: _Db, kind: str, key: str, data: dict[str, Any], *,
                           now: float) -> tuple[Entry, bool]:
        doc = {"_id": _id(kind, key), "kind": kind, "key": key, "data": _text(data), "rev": 1, "updated_at": now}
        if await self._db.insert(ENTRIES, doc):
            return _entry(doc), True
        existing = await self._db.find_one(ENTRIES, {"_id": _id(kind, key)})
        if existing is None:  # deleted in between: try once more
            return await MongoEntries.insert_entry(self, kind, key, data, now=now)
        return _entry(existing), False

    async def replace_entry(self: _Db, kind: str, key: str, data: dict[str, Any], *, expected_rev: int,
                            now: float) -> Entry | None:
        doc = await self._db.modify(ENTRIES, {"_id": _id(kind, key), "rev": expected_rev},
                                    {"$set": {"data": _text(data), "updated_at": now}, "$inc": {"rev": 1}})
        return _entry(doc) if doc is not None else None

    async def put_entry(self: _Db, kind: str, key: str, data: dict[str, Any], *, now: float) -> Entry:
        with translated():
            doc = await self._db.raw(ENTRIES).find_one_and_update(
                {"_id": _id(kind, key)},
                {"$set": {"kind": kind, "key": key, "data": _text(data), "updated_at": now}, "$inc": {"rev": 1}},
                upsert=True, return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert always returns the document after it
        return _entry(doc)

    async def delete_entry(self: _Db, kind: str, key: str) -> bool:
        with translated():
            result = await self._db.raw(ENTRIES).delete_one({"_id": _id(kind, key)})
        return result.deleted_count > 0

    async def list_entries(self: _Db, kind: str, *, prefix: str = "", limit: int = 1000,
                           offset: int = 0) -> list[Entry]:
        flt: Doc = {"kind": kind}
        if prefix:
            flt["key"] = {"$regex": "^" + re.escape(prefix)}
        docs = await self._db.find(ENTRIES, flt, sort=_KEY_ORDER, skip=offset, limit=limit)
        return [_entry(doc) for doc in docs]
