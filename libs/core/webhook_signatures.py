"""Signed webhook deliveries: the signature schemes a WEBHOOK_TRIGGER may require, as one table.

| scheme        | signature header                          | signed bytes         | replay guard                               |
|---------------|-------------------------------------------|----------------------|--------------------------------------------|
| `stepline`    | `X-Stepline-Signature: t=<unix>,v1=<hex>` | `<t>.<raw body>`     | ±tolerance; the signature                  |
| `github`      | `X-Hub-Signature-256: sha256=<hex>`       | the raw body         | `X-GitHub-Delivery` (required)             |
| `slack`       | `X-Slack-Signature: v0=<hex>`             | `v0:<ts>:<raw body>` | ±tolerance on `X-Slack-Request-Timestamp`; |
|               |                                           |                      | the signature                              |
| `hmac-sha256` | `X-Stepline-Signature: sha256=<hex>`      | the raw body         | `X-Stepline-Delivery`, if sent             |

Every `<hex>` is HMAC-SHA256 keyed by the value of the secret the trigger names, compared in constant
time. A verdict carries the delivery's idempotency key, so a repeated delivery starts no second run,
and a reason for the log; reasons never contain the secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_TOLERANCE_SECONDS = 300
MAX_TOLERANCE_SECONDS = 86_400
MAX_DELIVERY_ID_LENGTH = 200
LEGACY_SCHEME = "hmac-sha256"

Headers = Mapping[str, str]
"""Request headers looked up by lower-case name (Starlette's `Headers` is such a mapping)."""


@dataclass(frozen=True)
class Signing:
    """What a WEBHOOK_TRIGGER requires of a delivery."""

    scheme: str
    secret_name: str
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    """Why, for the engine's log: never the secret or the signature it expected."""
    delivery: str | None = None
    """The idempotency key of an accepted delivery (None: every delivery starts a run)."""


def refused(reason: str) -> Verdict:
    return Verdict(False, reason)


class Scheme(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def header(self) -> str:
        """The header that carries the signature."""
        ...

    @property
    def timestamped(self) -> bool:
        """The signed bytes include a timestamp, refused outside ±tolerance."""
        ...

    def sign(self, secret: str, body: bytes, now: int, delivery: str = "") -> dict[str, str]:
        """The headers a sender puts on `body` at unix time `now`."""
        ...

    def verify(self, secret: str, body: bytes, headers: Headers, now: float, tolerance: int) -> Verdict: ...


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", errors="replace"))


def _stale(timestamp: str, now: float, tolerance: int) -> str | None:
    """Why `timestamp` (unix seconds) is refused, or None when it is within ±tolerance of `now`."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return "the timestamp is not a number of unix seconds"
    if abs(now - int(timestamp)) > tolerance:
        return f"the timestamp is more than {tolerance} s away from now (stale or replayed)"
    return None


def _delivery_id(headers: Headers, name: str) -> str | None:
    value = headers.get(name.lower())
    return value if value and len(value) <= MAX_DELIVERY_ID_LENGTH else None


@dataclass(frozen=True)
class BodyHmac:
    """`<header>: sha256=<hex HMAC of the raw body>`, with a delivery id header as the replay guard."""

    name: str
    header: str
    delivery_header: str
    delivery_required: bool
    key_prefix: str
    timestamped: bool = False

    def sign(self, secret: str, body: bytes, now: int, delivery: str = "") -> dict[str, str]:
        signed = {self.header: "sha256=" + hex_hmac(secret, body)}
        return {**signed, self.delivery_header: delivery} if delivery else signed

    def verify(self, secret: str, body: bytes, headers: Headers, now: float, tolerance: int) -> Verdict:
        given = headers.get(self.header.lower())
        if given is None:
            return refused(f"the {self.header} header is missing")
        if not _same("sha256=" + hex_hmac(secret, body), given):
            return refused(f"the {self.header} header does not match the body")
        delivery = _delivery_id(headers, self.delivery_header)
        if delivery is None and self.delivery_required:
            return refused(f"the {self.delivery_header} header is missing or longer than "
                           f"{MAX_DELIVERY_ID_LENGTH} characters")
        return Verdict(True, "signed", f"{self.key_prefix}{delivery}" if delivery else None)


def _fields(value: str) -> list[tuple[str, str]]:
    """`t=1,v1=ab,v1=cd` → [(t, 1), (v1, ab), (v1, cd)]."""
    return [(k.strip(), v.strip()) for k, _, v in (part.partition("=") for part in value.split(","))]


@dataclass(frozen=True)
class SteplineScheme:
    """`X-Stepline-Signature: t=<unix>,v1=<hex HMAC of "<t>.<raw body>">`; several `v1` may be given
    (while a sender rotates its secret) and one must match."""

    name: str = "stepline"
    header: str = "X-Stepline-Signature"
    timestamped: bool = True

    def sign(self, secret: str, body: bytes, now: int, delivery: str = "") -> dict[str, str]:
        return {self.header: f"t={now},v1={hex_hmac(secret, f'{now}.'.encode() + body)}"}

    def verify(self, secret: str, body: bytes, headers: Headers, now: float, tolerance: int) -> Verdict:
        given = headers.get(self.header.lower())
        if given is None:
            return refused(f"the {self.header} header is missing")
        fields = _fields(given)
        stamps = [v for k, v in fields if k == "t"]
        if len(stamps) != 1 or not stamps[0].isdigit():
            return refused(f"the {self.header} header is not t=<unix seconds>,v1=<hex>")
        expected = hex_hmac(secret, f"{stamps[0]}.".encode() + body)
        if not any(_same(expected, v) for k, v in fields if k == "v1"):
            return refused(f"the {self.header} header does not match the body")
        stale = _stale(stamps[0], now, tolerance)
        return refused(stale) if stale else Verdict(True, "signed", f"stepline:{expected}")


@dataclass(frozen=True)
class SlackScheme:
    """Slack's request signing: `X-Slack-Signature: v0=<hex HMAC of "v0:<ts>:<raw body>">` with
    `X-Slack-Request-Timestamp: <ts>`."""

    name: str = "slack"
    header: str = "X-Slack-Signature"
    timestamp_header: str = "X-Slack-Request-Timestamp"
    timestamped: bool = True

    def sign(self, secret: str, body: bytes, now: int, delivery: str = "") -> dict[str, str]:
        signature = "v0=" + hex_hmac(secret, f"v0:{now}:".encode() + body)
        return {self.header: signature, self.timestamp_header: str(now)}

    def verify(self, secret: str, body: bytes, headers: Headers, now: float, tolerance: int) -> Verdict:
        given, stamp = headers.get(self.header.lower()), headers.get(self.timestamp_header.lower())
        if given is None or stamp is None:
            return refused(f"the {self.header} or {self.timestamp_header} header is missing")
        expected = "v0=" + hex_hmac(secret, f"v0:{stamp}:".encode("utf-8", errors="replace") + body)
        if not _same(expected, given):
            return refused(f"the {self.header} header does not match the timestamp and body")
        stale = _stale(stamp, now, tolerance)
        return refused(stale) if stale else Verdict(True, "signed", f"slack:{expected}")


SCHEMES: dict[str, Scheme] = {scheme.name: scheme for scheme in (
    SteplineScheme(),
    BodyHmac("github", "X-Hub-Signature-256", "X-GitHub-Delivery", delivery_required=True, key_prefix="github:"),
    SlackScheme(),
    BodyHmac(LEGACY_SCHEME, "X-Stepline-Signature", "X-Stepline-Delivery", delivery_required=False,
             key_prefix="delivery:"),
)}
TIMESTAMPED_SCHEMES = tuple(name for name, scheme in SCHEMES.items() if scheme.timestamped)


def signing_of(config: Mapping[str, Any]) -> Signing:
    """The signing a (validated) WEBHOOK_TRIGGER config requires: its `signature`, or for older
    definitions the top-level `secretName` with the `hmac-sha256` scheme."""
    signature = config.get("signature")
    if not isinstance(signature, Mapping):
        return Signing(LEGACY_SCHEME, str(config.get("secretName", "")))
    tolerance = signature.get("toleranceSeconds", DEFAULT_TOLERANCE_SECONDS)
    return Signing(str(signature.get("scheme", "")), str(signature.get("secretName", "")),
                   tolerance if isinstance(tolerance, int) else DEFAULT_TOLERANCE_SECONDS)


def verify(signing: Signing, secret: str, body: bytes, headers: Headers, now: float) -> Verdict:
    scheme = SCHEMES.get(signing.scheme)
    if scheme is None:
        return refused(f"unknown signature scheme {signing.scheme!r}")
    return scheme.verify(secret, body, headers, now, signing.tolerance_seconds)


def sign(secret: str, body: bytes) -> str:
    """The `hmac-sha256` header value a sender puts on `body` (`sha256=<hex>`)."""
    return "sha256=" + hex_hmac(secret, body)
