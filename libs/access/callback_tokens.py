"""Callback tokens: what an asynchronous WEBHOOK sends (`X-Stepline-Callback-Token`) so that the
system it calls can complete that one node run by PATCH without an API key. A token is an HMAC of
the node run's key under a key derived from the secrets key, so every service that holds the
secrets key can issue and check it without storing anything; it is bound to one node run and is
spent when that node run completes (a completed node run takes no further completion)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from libs.secrets.cipher import parse_key

HEADER = "X-Stepline-Callback-Token"
PREFIX = "cbt_"
_PURPOSE = b"stepline callback token v1"


class CallbackTokens:
    def __init__(self, secrets_key: bytes) -> None:
        self._key = hmac.new(secrets_key, _PURPOSE, hashlib.sha256).digest()

    @classmethod
    def from_setting(cls, secrets_key: str) -> CallbackTokens | None:
        """From `STEPLINE_SECRETS_KEY` (base64); None without one (then no token is issued or accepted)."""
        return cls(parse_key(secrets_key)) if secrets_key else None

    def token(self, node_run_key: str) -> str:
        digest = hmac.new(self._key, node_run_key.encode("utf-8"), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def matches(self, node_run_key: str, token: str) -> bool:
        return hmac.compare_digest(self.token(node_run_key).encode(), token.strip().encode("utf-8", "replace"))
