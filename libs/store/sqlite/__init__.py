"""The store port on SQLite: `SqliteStore` (store.py) and its parts.

store.py (`SqliteStore`), entries.py (the entry store), schema.py (the tables, one per MongoDB
collection, shaped like documents), sql.py (the statements, constant strings).
"""

from libs.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
