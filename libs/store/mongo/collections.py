"""The few collection operations `MongoStore` uses, each translating driver errors into the error tree.

`StoreUnavailableError` (retryable) for everything after which the same operation may succeed later:
connection failures, server-selection and network timeouts, `AutoReconnect`/`NotPrimaryError`, and
the server error codes PyMongo itself treats as retryable. `DuplicateKeyError` is the answer of an
insert-if-absent (`insert` returns False); anywhere else it is a `ConflictError`. Everything else a
driver raises is a `StoreError`, including a document BSON cannot hold (an integer beyond 64 bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bson.errors import BSONError
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ExecutionTimeout, OperationFailure, PyMongoError, WTimeoutError

from libs.core.errors import ConflictError, SteplineError, StoreError, StoreUnavailableError
from libs.store.mongo.documents import Doc
from libs.store.mongo.queries import Keys
from libs.telemetry import metrics

_RETRYABLE_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
"""HostUnreachable, HostNotFound, MaxTimeMSExpired, NetworkTimeout, ShutdownInProgress,
PrimarySteppedDown, ExceededTimeLimit, SocketException, NotWritablePrimary, InterruptedAtShutdown,
InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary."""
_RETRYABLE_LABELS = ("RetryableWriteError", "TransientTransactionError")


def is_retryable(exc: PyMongoError) -> bool:
    if isinstance(exc, (ConnectionFailure, ExecutionTimeout, WTimeoutError)) or exc.timeout:
        return True
    if isinstance(exc, OperationFailure) and exc.code in _RETRYABLE_CODES:
        return True
    return any(exc.has_error_label(label) for label in _RETRYABLE_LABELS)


def translate(exc: PyMongoError) -> SteplineError:
    if is_retryable(exc):
        return StoreUnavailableError(f"MongoDB store unavailable: {exc}")
    if isinstance(exc, DuplicateKeyError):
        return ConflictError(f"MongoDB duplicate key: {exc}")
    return StoreError(f"MongoDB store error: {exc}")


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except PyMongoError as exc:
        raise translate(exc) from exc
    except (BSONError, OverflowError) as exc:
        raise StoreError(f"MongoDB cannot store this document: {exc}") from exc


class Collections:
    """One database's collections, by name; every method is one server round trip."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._db = db

    def raw(self, collection: str) -> AsyncCollection[Doc]:
        """The driver's collection, for the rare operation not wrapped here (wrap calls in `translated`)."""
        return self._db[collection]

    async def command(self, name: str) -> Doc:
        with translated():
            return await self._db.command(name)

    async def create_indexes(self, indexes: tuple[tuple[str, Keys, Doc], ...]) -> None:
        with translated():
            for collection, keys, options in indexes:
                await self._db[collection].create_index(keys, **options)

    async def insert(self, collection: str, doc: Doc) -> bool:
        """Insert-if-absent: False when a unique index (or `_id`) already holds the key."""
        with translated(), metrics.store_call("mongo", "insert", collection):
            try:
                await self._db[collection].insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    async def find_one(self, collection: str, flt: Doc, *, projection: Doc | None = None,
                       sort: Keys | None = None) -> Doc | None:
        with translated(), metrics.store_call("mongo", "find_one", collection):
            return await self._db[collection].find_one(flt, projection, sort=sort)

    async def find(self, collection: str, flt: Doc, *, sort: Keys, projection: Doc | None = None,
                   skip: int = 0, limit: int = 0) -> list[Doc]:
        """`limit` 0 means no limit (MongoDB's convention)."""
        with translated(), metrics.store_call("mongo", "find", collection):
            cursor = self._db[collection].find(flt, projection, sort=sort, skip=skip, limit=limit)
            return await cursor.to_list(None)

    async def count(self, collection: str, flt: Doc) -> int:
        with translated(), metrics.store_call("mongo", "count", collection):
            return await self._db[collection].count_documents(flt)

    async def modify(self, collection: str, flt: Doc, update: Doc) -> Doc | None:
        """One conditional update of one document; the document after it, or None if none matched."""
        with translated(), metrics.store_call("mongo", "modify", collection):
            return await self._db[collection].find_one_and_update(
                flt, update, return_document=ReturnDocument.AFTER)

    async def update(self, collection: str, flt: Doc, update: Doc) -> bool:
        """One conditional update of one document; whether one matched (even if unchanged)."""
        with translated(), metrics.store_call("mongo", "update", collection):
            result = await self._db[collection].update_one(flt, update)
        return result.matched_count > 0

    async def delete(self, collection: str, flt: Doc) -> None:
        with translated(), metrics.store_call("mongo", "delete", collection):
            await self._db[collection].delete_one(flt)
