"""Email over SMTP (aiosmtplib) for NOTIFY: the server and credentials come from ExecutorSettings.

A refusal carries the server's reply; 4xx replies and connection trouble are retryable, 5xx replies
are not. A message refused for some recipients but accepted for others fails without a retry (a
retry would send it twice to those who got it); its output names who got it.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from libs.core.errors import ActionError
from services.executor.settings import ExecutorSettings

_ADDRESS = re.compile(r"[^\s@<>,;\"]+@[^\s@<>,;\"]+")


@dataclass(frozen=True)
class Mail:
    recipients: list[str]
    subject: str
    text: str
    message_id: str
    """Also written as `X-Stepline-Node-Run`, so a receiver can spot a duplicate from a retried send."""


def recipients(value: Any) -> list[str]:
    """`to` as a list of plain addresses: a string (commas separate several) or a list of strings."""
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ActionError(f"config.to must be an address or a list of addresses, got {type(item).__name__}")
        found += [part.strip() for part in item.split(",") if part.strip()]
    if not found:
        raise ActionError("config.to names no recipient")
    for address in found:
        if not _ADDRESS.fullmatch(address):
            raise ActionError(f"config.to: {address[:80]!r} is not an email address")
    return found


class SmtpMailer:
    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    async def send(self, mail: Mail) -> dict[str, Any]:
        s = self.settings
        if not s.smtp_host:
            raise ActionError("email notifications need an SMTP server: set STEPLINE_SMTP_HOST")
        message = self._message(mail)
        try:
            refused, _ = await aiosmtplib.send(
                message, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() or None, use_tls=s.smtp_use_tls,
                start_tls=s.smtp_starttls, timeout=s.smtp_timeout_seconds)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reasons = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise ActionError(f"the SMTP server refused every recipient ({reasons})",
                              retryable=all(400 <= r.code < 500 for r in exc.recipients)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ActionError(f"the SMTP server {s.smtp_host}:{s.smtp_port} answered {exc.code} {exc.message}",
                              retryable=400 <= exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ActionError(f"sending email through {s.smtp_host}:{s.smtp_port} failed: "
                              f"{type(exc).__name__}: {exc}", retryable=True) from None
        delivered = [r for r in mail.recipients if r not in refused]
        if refused:
            reasons = "; ".join(f"{r}: {reply.code} {reply.message}" for r, reply in refused.items())
            raise ActionError(f"the SMTP server refused some recipients ({reasons})",
                              output={"channel": "email", "delivered": False, "recipients": delivered,
                                      "refused": sorted(refused)})
        return {"channel": "email", "delivered": True, "recipients": delivered}

    def _message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = ", ".join(mail.recipients)
        message["Subject"] = " ".join(mail.subject.split())
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = f"<{mail.message_id}@stepline>"
        message["X-Stepline-Node-Run"] = mail.message_id
        message.set_content(mail.text)
        return message
