"""The store port on MongoDB (or FerretDB): `MongoStore` (store.py) and its parts.

store.py (`MongoStore`), entries.py (the entry store), collections.py (the collection operations,
driver errors translated into the error tree), documents.py (records ⇄ documents), queries.py (the
filters, updates, sorts and indexes, as plain documents).
"""

from libs.store.mongo.store import MongoStore

__all__ = ["MongoStore"]
