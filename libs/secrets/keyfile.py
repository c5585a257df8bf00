"""Where a single-machine installation keeps its secrets key when none is configured:
`<data_dir>/secrets.key`, created once (mode 0600) and reused. Embedded mode reads it, and
`stepline up --distributed` hands the same key to every service it starts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from libs.secrets.cipher import generate_key, parse_key

KEY_FILE = "secrets.key"


def configured_or_stored_key(configured: str, data_dir: Path) -> str:
    """The configured key when there is one (checked), else the one in `<data_dir>/secrets.key`."""
    if configured:
        parse_key(configured)
        return configured
    return load_or_create_key(data_dir / KEY_FILE)


def load_or_create_key(path: Path) -> str:
    """The key stored at `path`, creating it first if absent. Creation is atomic (a complete file is
    linked into place), so concurrent starts agree on one key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(generate_key() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    text = path.read_text().strip()
    try:
        parse_key(text)
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return text
