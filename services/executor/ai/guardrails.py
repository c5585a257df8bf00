"""Guardrails (Kore.ai's): scanners on what an AI step sends to a model and what it gets back.

- `pii`: emails, card numbers (Luhn-checked), IBANs (mod-97-checked) and phone numbers, redacted as
  `[REDACTED:<kind>]` or blocking the call, on input, output or both.
- `secrets`: a prompt carrying the value of a secret the attempt revealed (in any encoding the
  executor masks) or a well-known key format is blocked; on unless the workspace turns it off.
- `bannedKeywords` / `bannedTopics`: words or phrases (whole words, any case) that block.
- `promptInjection`: markers of injected instructions in tool results (`scan_tool_result`, which the
  tool loop calls on every tool answer before the model sees it).
- The output schema is the AI action's own check (services/executor/actions/ai.py).

A node's `guardrails` add to the workspace's (setting `ai_guardrails`, by workspace, `*` for all):
lists are joined and the stricter choice wins, so a node can never loosen them. Every decision is a
`Decision` the caller writes as a node log line (never quoting what was found); a block raises
`GuardrailBlocked`, a non-retryable node failure naming the scanner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from libs.core.ai_nodes import PII_KINDS
from libs.core.errors import ActionError
from libs.core.redaction import redact_text, secret_values

Where = Literal["input", "output", "tool result"]
_SCAN_ORDER = ("email", "iban", "card", "phone")
"""IBANs before cards: an IBAN's digits may pass the Luhn check."""
_STRICTNESS = {"off": 0, "warn": 1, "redact": 1, "block": 2}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)")
_KEY_FORMATS = re.compile(
    r"\b(?:sk-(?:ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----")
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*(?:previous|prior|above|earlier|system)"
    r"\s+(?:instructions?|prompts?|directions?|rules?)"
    r"|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|jailbreak|DAN|unrestricted)"
    r"|\bnew\s+(?:system\s+)?instructions?\s*:|\breveal\s+(?:your|the)\s+system\s+prompt"
    r"|<\|im_start\|>|\[/?INST\]|<\|system\|>|\bBEGIN\s+SYSTEM\s+PROMPT\b", re.IGNORECASE)


class GuardrailBlocked(ActionError):
    code = "ai_guardrail_blocked"

    def __init__(self, scanner: str, where: Where, detail: str) -> None:
        super().__init__(f"guardrail {scanner} blocked the {where}: {detail}", retryable=False)
        self.scanner = scanner


@dataclass(frozen=True)
class Decision:
    """One scanner's finding, for a node log line; never holds what it found."""

    scanner: str
    action: Literal["redact", "block", "warn"]
    where: Where
    detail: str

    def log_line(self) -> str:
        return f"guardrail {self.scanner} ({self.where}): {self.action} — {self.detail}"


@dataclass(frozen=True)
class Scan:
    text: str
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class Guardrails:
    pii_action: Literal["off", "redact", "block"] = "off"
    pii_kinds: frozenset[str] = frozenset(PII_KINDS)
    pii_scope: Literal["input", "output", "both"] = "both"
    secrets: bool = True
    banned: tuple[str, ...] = ()
    injection: Literal["off", "warn", "block"] = "block"
    _banned_re: re.Pattern[str] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, *workspace: Mapping[str, Any] | None, node: Mapping[str, Any] | None = None) -> Guardrails:
        """The workspace's configs (the first may turn the `secrets` scanner off and choose how prompt
        injection is handled), then the node's, which only adds and tightens."""
        merged = cls()
        for index, config in enumerate(c for c in workspace if c):
            merged = merged._with(config, first=index == 0)
        return merged._with(node, first=False) if node else merged

    def _with(self, config: Mapping[str, Any], *, first: bool) -> Guardrails:
        pii = config.get("pii")
        banned = tuple(dict.fromkeys([*self.banned, *config.get("bannedKeywords", ()), *config.get("bannedTopics", ())]))
        secrets = bool(config.get("secrets", True)) if first else self.secrets or bool(config.get("secrets", False))
        return Guardrails(
            pii_action=_stricter(self.pii_action, pii.get("action", "redact")) if isinstance(pii, dict) else self.pii_action,
            pii_kinds=self._kinds(pii), pii_scope=self._scope(pii), secrets=secrets, banned=banned,
            injection=config.get("promptInjection", "block") if first
            else _stricter(self.injection, config.get("promptInjection", "off")),
            _banned_re=_words(banned))

    def _kinds(self, pii: Any) -> frozenset[str]:
        if not isinstance(pii, dict):
            return self.pii_kinds
        kinds = frozenset(pii.get("kinds", PII_KINDS))
        return kinds if self.pii_action == "off" else self.pii_kinds | kinds

    def _scope(self, pii: Any) -> Literal["input", "output", "both"]:
        if not isinstance(pii, dict):
            return self.pii_scope
        scope = pii.get("scope", "both")
        return scope if self.pii_action == "off" or scope == self.pii_scope else "both"

    def scan_input(self, text: str, revealed: Collection[str] = ()) -> Scan:
        """A prompt about to be sent: secrets, banned words, then PII. GuardrailBlocked on a block."""
        if self.secrets:
            _check_secrets(text, revealed)
        self._check_banned(text, "input")
        return self._pii(text, "input") if self.pii_scope in ("input", "both") else Scan(text)

    def scan_output(self, text: str) -> Scan:
        """A model's answer: banned words, then PII."""
        self._check_banned(text, "output")
        return self._pii(text, "output") if self.pii_scope in ("output", "both") else Scan(text)

    def scan_tool_result(self, text: str) -> Scan:
        """A tool's answer before the model reads it: prompt-injection markers (block or warn)."""
        found = len(_INJECTION.findall(text)) if self.injection != "off" else 0
        if not found:
            return Scan(text)
        detail = f"{found} prompt-injection marker(s) in a tool result"
        if self.injection == "block":
            raise GuardrailBlocked("promptInjection", "tool result", detail)
        return Scan(text, (Decision("promptInjection", "warn", "tool result", detail),))

    def _check_banned(self, text: str, where: Where) -> None:
        match = self._banned_re.search(text) if self._banned_re is not None else None
        if match is not None:
            raise GuardrailBlocked("bannedKeywords", where, f"banned keyword {match.group(0).casefold()!r}")

    def _pii(self, text: str, where: Where) -> Scan:
        if self.pii_action == "off":
            return Scan(text)
        counts: dict[str, int] = {}
        for kind in _SCAN_ORDER:
            if kind in self.pii_kinds:
                text, counts[kind] = _PII_REDACTORS[kind](text)
        found = {k: n for k, n in counts.items() if n}
        if not found:
            return Scan(text)
        detail = ", ".join(f"{n} {k}" for k, n in found.items())
        if self.pii_action == "block":
            raise GuardrailBlocked("pii", where, f"found {detail}")
        return Scan(text, (Decision("pii", "redact", where, f"redacted {detail}"),))


def _stricter(a: str, b: str) -> Any:
    return a if _STRICTNESS.get(a, 0) >= _STRICTNESS.get(b, 0) else b


def _words(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words), re.IGNORECASE)


def _check_secrets(text: str, revealed: Collection[str]) -> None:
    values = secret_values([v for v in revealed if len(v) >= 4])
    if values and redact_text(text, values) != text:
        raise GuardrailBlocked("secrets", "input", "the prompt carries the value of a secret")
    if _KEY_FORMATS.search(text):
        raise GuardrailBlocked("secrets", "input", "the prompt carries what looks like an API key or private key")


def _redactor(pattern: re.Pattern[str], kind: str, valid: Callable[[str], bool]) -> Callable[[str], tuple[str, int]]:
    def redact(text: str) -> tuple[str, int]:
        count = 0

        def one(match: re.Match[str]) -> str:
            nonlocal count
            if not valid(match.group(0)):
                return match.group(0)
            count += 1
            return f"[REDACTED:{kind}]"
        return pattern.sub(one, text), count
    return redact


def luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 9 <= digits <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip())


_PII_REDACTORS: dict[str, Callable[[str], tuple[str, int]]] = {
    "email": _redactor(_EMAIL, "email", lambda _: True),
    "card": _redactor(_CARD, "card", luhn),
    "iban": _redactor(_IBAN, "iban", iban_valid),
    "phone": _redactor(_PHONE, "phone", _phone),
}
