"""Records ⇄ MongoDB documents for `MongoStore`.

Each record is stored as its `model_dump(mode="json")` with `_id` = its key, so a document reads like
the record (BSON doubles keep every float exactly). Arbitrary JSON (definitions, inputs, outputs, log
tags, timer payloads) passes through `encode`, a reversible mapping onto what every MongoDB-protocol
server stores, FerretDB 1.x included (docs.ferretdb.io/v1.24/diff):

- keys may not start with `$` or contain `.` (and BSON keys cannot hold NUL): `%`, `$`, `.` and NUL
  in a key become `%XX` (upper-case hex), and the empty key becomes `%`. This also makes the workflow
  tag `$LIVE` the field `tags.%24LIVE`, which `$set` can address;
- FerretDB stores no array directly inside an array: such an inner array becomes `{"%list": [...]}`;
- FerretDB stores no NUL in strings: such a string becomes `{"%nul": [its NUL-separated parts]}`.

Escaped keys always have two hex digits after each `%`, so the markers `%list` and `%nul` (and the
lone `%`) never collide with an escaped user key. The fields that queries and conditional updates
use (ids, status, seq, lease, due times) are plain strings and numbers, which `encode` leaves as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from libs.core.run import LogEntry, NodeRun, Run
from libs.core.versioning import VersionRecord, WorkflowRecord
from libs.store.ports import Timer

Doc = dict[str, Any]
M = TypeVar("M", bound=BaseModel)

HELPER_FIELDS = ("_id", "idem")
"""Fields that exist only in documents, dropped before validating a record."""
EMPTY_KEY = "%"
NESTED_LIST = "%list"
NUL_STRING = "%nul"

_KEY_SPECIAL = re.compile("[%$.\x00]")
_KEY_ESCAPED = re.compile("%([0-9A-F]{2})")
_TIMER = TypeAdapter(Timer)


# -- the reversible encoding ----------------------------------------------------------------------

def escape_key(key: str) -> str:
    if not key:
        return EMPTY_KEY
    if _KEY_SPECIAL.search(key) is None:
        return key
    return _KEY_SPECIAL.sub(lambda m: f"%{ord(m.group()):02X}", key)


def unescape_key(key: str) -> str:
    if "%" not in key:
        return key
    if key == EMPTY_KEY:
        return ""
    return _KEY_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), key)


def encode(value: Any) -> Any:
    """JSON-compatible `value` in a shape every MongoDB-protocol server stores (see module doc)."""
    if isinstance(value, dict):
        return {escape_key(k): encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [{NESTED_LIST: encode(v)} if isinstance(v, list) else encode(v) for v in value]
    if isinstance(value, str) and "\x00" in value:
        return {NUL_STRING: value.split("\x00")}
    return value


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, inner = next(iter(value.items()))
            if key == NESTED_LIST:
                return decode(inner)
            if key == NUL_STRING:
                return "\x00".join(inner)
        return {unescape_key(k): decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _document(record: BaseModel, _id: str) -> Doc:
    return {"_id": _id, **encode(record.model_dump(mode="json"))}


def _record(model: type[M], doc: Doc) -> M:
    return model.model_validate(decode({k: v for k, v in doc.items() if k not in HELPER_FIELDS}))


# -- workflows and versions -------------------------------------------------------------------------

def tag_field(tag: str) -> str:
    """The dotted path of a tag inside a workflow document."""
    return "tags." + escape_key(tag)


def workflow_document(record: WorkflowRecord) -> Doc:
    return _document(record, record.identifier)


def workflow_from(doc: Doc) -> WorkflowRecord:
    return _record(WorkflowRecord, doc)


def version_id(workflow: str, version: int) -> str:
    """`{workflow}/{version}`: unambiguous, as the version number contains no `/`."""
    return f"{workflow}/{version}"


def version_document(record: VersionRecord) -> Doc:
    return _document(record, version_id(record.workflow, record.version))


def version_from(doc: Doc) -> VersionRecord:
    return _record(VersionRecord, doc)


# -- runs ---------------------------------------------------------------------------------------

def idempotency_value(run: Run) -> str:
    """The value of the unique `idem` field.

    FerretDB 1.x has neither partial nor sparse indexes, so a unique index on (workflow, key) would
    also make two runs *without* a key collide. Instead every run gets an `idem` that is unique by
    construction: `key:["<workflow>","<key>"]` when an idempotency key is set, else `run:"<id>"`.
    """
    if run.idempotency_key is None:
        return "run:" + json.dumps(run.id)
    return "key:" + json.dumps([run.workflow, run.idempotency_key])


def idempotency_lookup(workflow: str, key: str) -> str:
    return "key:" + json.dumps([workflow, key])


def run_document(run: Run) -> Doc:
    return {**_document(run, run.id), "idem": idempotency_value(run)}


def run_fields(run: Run) -> Doc:
    """Every field of the run for a `$set` that replaces it (`_id` and `idem` are immutable)."""
    fields: Doc = encode(run.model_dump(mode="json"))
    return fields


def run_from(doc: Doc) -> Run:
    return _record(Run, doc)


# -- node runs and timers -------------------------------------------------------------------------

def node_run_document(node_run: NodeRun) -> Doc:
    return _document(node_run, node_run.key)


def node_run_from(doc: Doc) -> NodeRun:
    return _record(NodeRun, doc)


def log_documents(logs: Sequence[LogEntry]) -> list[Doc]:
    return [encode(log.model_dump(mode="json")) for log in logs]


def timer_document(timer: Timer) -> Doc:
    return {"_id": timer.id, **encode(_TIMER.dump_python(timer, mode="json"))}


def timer_from(doc: Doc) -> Timer:
    return _TIMER.validate_python(decode({k: v for k, v in doc.items() if k not in HELPER_FIELDS}))
