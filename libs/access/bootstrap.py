"""First start: with no API key in the store, create workspace `default` and an `owner` key, and
write the key to `<data_dir>/admin.key` (mode 0600). The store decides who bootstraps (an
insert-if-absent on one marker entry), so concurrent first starts create one key."""

from __future__ import annotations

import os
from pathlib import Path

from libs.access.keystore import ApiKeys, Workspaces
from libs.core.workspaces import DEFAULT_WORKSPACE
from libs.store.ports import EntryStore

KEY_FILE = "admin.key"
BOOTSTRAP_USER = "admin"


async def bootstrap(store: EntryStore, data_dir: Path, *, now: float) -> Path | None:
    """Create the first owner key when the store has none. Returns the key file's path when this
    call wrote it, else None (keys exist already)."""
    await Workspaces(store).ensure_default()
    keys = ApiKeys(store)
    if await keys.any_exist():
        return None
    _, first = await store.insert_entry("access", "bootstrap", {"at": now}, now=now)
    if not first:
        return None
    _, key = await keys.create(name="bootstrap", workspace=DEFAULT_WORKSPACE, role="owner", user=BOOTSTRAP_USER)
    return write_key_file(data_dir / KEY_FILE, key)


def write_key_file(path: Path, key: str) -> Path:
    """Write `key` to `path`, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    os.replace(temporary, path)
    return path


def read_key_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
