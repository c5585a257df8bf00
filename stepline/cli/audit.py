"""`stepline audit [filters] [--json]` and `stepline audit verify [--store-url URL] [--json]`.

Both read the API (`GET /v1/audit`, `/v1/audit/verify`); `verify --store-url` instead reads the store
itself, so a log can be checked with no service running (or when the API is not to be trusted)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from libs.audit.chain import AUDIT_ACTIONS
from stepline.cli.commands import client_of, out
from stepline.cli.errors import EXIT_FAILED, EXIT_OK, CliError
from stepline.cli.render import short_time, summary, table, text

if TYPE_CHECKING:
    from libs.store.ports import Store

COLUMNS = ("ID", "AT", "ACTOR", "ROLE", "WORKSPACE", "ACTION", "TARGET", "DETAILS")
FILTERS = ("action", "actor", "target", "since", "until", "workspace")


def cmd_audit(args: argparse.Namespace) -> int:
    params: dict[str, str | int] = {"limit": int(args.limit)}
    params.update({name: str(getattr(args, name)) for name in FILTERS if getattr(args, name) is not None})
    with client_of(args) as client:
        records = [r for r in client.get("/v1/audit", params=params).get("records") or [] if isinstance(r, dict)]
    if args.json:
        out(json.dumps(records, indent=2, ensure_ascii=False))
    elif not records:
        out("no audit records")
    else:
        out(table(COLUMNS, [_row(r) for r in reversed(records)]))
    return EXIT_OK


def _row(record: Mapping[str, Any]) -> list[str]:
    return [text(record.get("id")), short_time(record.get("at")), text(record.get("actor")),
            text(record.get("role")), text(record.get("workspace")), text(record.get("action")),
            text(record.get("target")), summary(record.get("details") or None)]


def cmd_audit_verify(args: argparse.Namespace) -> int:
    if args.store_url:
        report = asyncio.run(_verify_offline(str(args.store_url)))
    else:
        with client_of(args) as client:
            report = client.get("/v1/audit/verify")
    if args.json:
        out(json.dumps({k: v for k, v in report.items() if k != "ok"}, indent=2, ensure_ascii=False))
    else:
        for line in verify_lines(report):
            out(line)
    return EXIT_OK if report.get("intact") is True else EXIT_FAILED


async def _verify_offline(store_url: str) -> dict[str, Any]:
    from libs.audit.log import AuditLog
    from libs.core.errors import StoreError

    store = _offline_store(store_url)
    try:
        await store.open()
        return (await AuditLog(store).verify()).as_json()
    except StoreError as exc:
        raise CliError(f"--store-url: the store could not be read: {exc}", exit_code=EXIT_FAILED) from None
    finally:
        await store.close()


def _offline_store(store_url: str) -> Store:
    """The store `store_url` names; a SQLite file must exist (verifying must not create one)."""
    from libs.runtime.adapters import SettingsError, build_store
    from libs.runtime.settings import CommonSettings

    database = Path(store_url.removeprefix("sqlite:///")) if store_url.startswith("sqlite:///") else None
    if database is not None and not database.is_file():
        raise CliError(f"--store-url: no SQLite database at {database}")
    try:
        return build_store(CommonSettings(store_url=store_url, data_dir=database.parent if database else Path(".")))
    except SettingsError as exc:
        raise CliError(f"--store-url: {exc}") from None


def verify_lines(report: Mapping[str, Any]) -> list[str]:
    """`{intact, count, lastSeq, broken}` (as `/v1/audit/verify` answers) in words."""
    broken = report.get("broken")
    if report.get("intact") is True or not isinstance(broken, dict):
        return [f"audit log OK: {report.get('count')} records, chain intact"]
    where = f"record {text(broken.get('id'))} (sequence number {text(broken.get('seq'))})"
    return [f"audit log BROKEN at {where}, the {_ordinal(broken.get('index'))} record read:",
            f"  {broken.get('reason')}",
            f"  records 1..{report.get('lastSeq')} before it are intact"]


def _ordinal(index: Any) -> str:
    return f"#{index + 1}" if isinstance(index, int) else "?"


def add_audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                       api: Sequence[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", parents=list(api), help="read the audit log (newest last)")
    audit.add_argument("--action", choices=AUDIT_ACTIONS, metavar="ACTION", help="e.g. secret.written")
    audit.add_argument("--actor", metavar="USER")
    audit.add_argument("--target", metavar="TARGET")
    audit.add_argument("--since", metavar="ISO_TIME", help="e.g. 2026-01-02T03:04:05Z (UTC without a zone)")
    audit.add_argument("--until", metavar="ISO_TIME")
    audit.add_argument("--workspace", metavar="W", help="owners: only this workspace")
    audit.add_argument("--limit", type=int, default=100, metavar="N", help="the newest N records (default 100)")
    audit.add_argument("--json", action="store_true", help="print the records as JSON (newest first)")
    audit.set_defaults(handler=cmd_audit)
    actions = audit.add_subparsers(dest="audit_command", metavar="[verify]", required=False)
    verify = actions.add_parser("verify", parents=list(api), help="check the hash chain (exit 1 if broken)")
    verify.add_argument("--store-url", dest="store_url", metavar="URL",
                        help="read this store directly (sqlite:///path or mongodb://...) instead of the API")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=cmd_audit_verify)
