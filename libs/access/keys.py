"""API key material: `stl_<id><secret>` (12 + 40 characters of base32), shown once; the store keeps
only a salted scrypt hash of the whole key. Pure apart from randomness."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "stl_"
ID_LENGTH: Final = 12
SECRET_LENGTH: Final = 40
_KEY = re.compile(rf"^{PREFIX}[a-z2-7]{{{ID_LENGTH + SECRET_LENGTH}}}$")
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class NewKey:
    id: str
    key: str


def _random_base32(length: int) -> str:
    return base64.b32encode(secrets.token_bytes(length)).decode("ascii").lower().rstrip("=")[:length]


def generate() -> NewKey:
    key_id = "k" + _random_base32(ID_LENGTH - 1)
    return NewKey(id=key_id, key=PREFIX + key_id + _random_base32(SECRET_LENGTH))


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, or None for anything else."""
    if not _KEY.match(key):
        return None
    return key[len(PREFIX):len(PREFIX) + ID_LENGTH]


def hash_key(key: str, salt: bytes | None = None) -> str:
    """`scrypt$<salt hex>$<hash hex>`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode("ascii"), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def matches(key: str, stored: str) -> bool:
    try:
        scheme, salt, _ = stored.split("$")
        expected = hash_key(key, bytes.fromhex(salt))
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(expected, stored)


def fingerprint(key: str) -> str:
    """A fast digest to cache verified keys by (never stored)."""
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()
