"""The secret vault: named values kept encrypted in the entry store (kind `secret`).

An entry's data is `{nonce, ciphertext, createdAt}`: the value is sealed with AES-GCM (cipher.py)
under the secret's name, so the store, its backups and its logs never hold a plaintext. `SecretVault`
is the `SecretReader` the executor's actions use, and what the secrets API writes through.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from libs.core.errors import SecretError
from libs.core.secrets import MAX_SECRET_NAME_LENGTH, SECRET_NAME_PATTERN
from libs.secrets.cipher import Cipher, Sealed
from libs.store.ports import Entry, EntryStore

KIND = "secret"
NAME_PATTERN = SECRET_NAME_PATTERN
MAX_NAME_LENGTH = MAX_SECRET_NAME_LENGTH
MAX_VALUE_BYTES = 64 * 1024
NO_KEY_MESSAGE = ("secrets are not available: this service has no secrets key "
                  "(set STEPLINE_SECRETS_KEY to the base64 of 32 random bytes)")


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    created_at: float
    updated_at: float


class SecretVault:
    def __init__(self, store: EntryStore, cipher: Cipher) -> None:
        self._store = store
        self._cipher = cipher

    async def reveal(self, name: str) -> str | None:
        """The plaintext of `name`, None if there is no such secret; `SecretError` if it does not
        decrypt with this vault's key."""
        entry = await self._store.get_entry(KIND, name)
        if entry is None:
            return None
        try:
            sealed = Sealed(str(entry.data["nonce"]), str(entry.data["ciphertext"]))
        except KeyError:
            raise SecretError(f"secret {name!r} is stored in an unknown shape") from None
        return self._cipher.decrypt(sealed, name=name)

    async def put(self, name: str, value: str, *, now: float) -> tuple[SecretInfo, bool]:
        """Create or replace; returns the secret and whether it was created."""
        data: dict[str, object] = {**self._cipher.encrypt(value, name=name).as_dict(), "createdAt": now}
        entry, created = await self._store.insert_entry(KIND, name, data, now=now)
        if not created:
            data["createdAt"] = entry.data.get("createdAt", entry.updated_at)
            entry = await self._store.put_entry(KIND, name, data, now=now)
        return _info(entry), created

    async def list(self) -> builtins.list[SecretInfo]:
        """Every secret, in name order (names and times only)."""
        found: builtins.list[SecretInfo] = []
        while True:
            page = await self._store.list_entries(KIND, limit=1000, offset=len(found))
            found.extend(_info(e) for e in page)
            if len(page) < 1000:
                return found

    async def names(self) -> builtins.list[str]:
        return [info.name for info in await self.list()]

    async def delete(self, name: str) -> bool:
        """True if it existed."""
        return await self._store.delete_entry(KIND, name)


class KeylessSecrets:
    """The `SecretReader` of a service started without a secrets key: every use fails clearly."""

    async def reveal(self, name: str) -> str | None:
        raise SecretError(f"secret {name!r} cannot be read: {NO_KEY_MESSAGE}")

    async def names(self) -> builtins.list[str]:
        raise SecretError(NO_KEY_MESSAGE)


def _info(entry: Entry) -> SecretInfo:
    created = entry.data.get("createdAt")
    return SecretInfo(entry.key, float(created) if isinstance(created, (int, float)) else entry.updated_at,
                      entry.updated_at)


def open_vault(store: EntryStore, key: str) -> SecretVault | None:
    """The vault for a configured key (`SecretsKeyError` if it is malformed), None without one."""
    return SecretVault(store, Cipher.from_text(key)) if key else None
