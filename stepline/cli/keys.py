"""`stepline keys create | list | revoke`: the API key routes; `keys create --store-url URL` writes the
first key straight into a store (operators who start the services themselves)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from libs.access.principal import ROLES
from stepline.cli.client import segment
from stepline.cli.commands import client_of, out
from stepline.cli.errors import EXIT_OK, CliError


def _key_line(key: dict[str, Any]) -> str:
    expires = key.get("expiresAt") or "never"
    return f"{key['id']}  {key['workspace']:<12} {key['role']:<7} {key['user']:<24} {key['name']}  (expires {expires})"


def cmd_keys_create(args: argparse.Namespace) -> int:
    if args.store_url:
        out(asyncio.run(_create_offline(args)))
        return EXIT_OK
    body = {"name": args.name, "workspace": args.workspace, "role": args.role, "user": args.user}
    if args.expires_at:
        body["expiresAt"] = args.expires_at
    with client_of(args) as client:
        answer = client.post("/v1/api-keys", body)
    out(str(answer["key"]))
    return EXIT_OK


async def _create_offline(args: argparse.Namespace) -> str:
    from libs.access.keystore import ApiKeys, Workspaces
    from libs.runtime.adapters import build_store
    from libs.runtime.settings import CommonSettings

    if args.expires_at:
        raise CliError("--expires-at is not available with --store-url; create such keys through the API")
    store = build_store(CommonSettings(store_url=args.store_url))
    await store.open()
    try:
        await Workspaces(store).create(args.workspace, args.workspace, by=args.user)
        _, key = await ApiKeys(store).create(name=args.name, workspace=args.workspace, role=args.role,
                                             user=args.user)
    finally:
        await store.close()
    return key


def cmd_keys_list(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        keys = client.get("/v1/api-keys")["apiKeys"]
    for key in keys:
        out(_key_line(key))
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        client.delete(f"/v1/api-keys/{segment(args.id)}")
    out(f"API key {args.id} revoked")
    return EXIT_OK


def add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                     api: list[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=api, help="create a key and print it (shown once)")
    create.add_argument("--workspace", default="default")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--user", required=True, help="who the key acts as (e.g. ops@example.com)")
    create.add_argument("--name", default="cli", help="a label for the key")
    create.add_argument("--expires-at", dest="expires_at", metavar="ISO_TIME", help="e.g. 2027-01-01T00:00:00Z")
    create.add_argument("--store-url", dest="store_url", metavar="URL",
                        help="write the key straight into this store (no API needed): the first key")
    create.set_defaults(handler=cmd_keys_create)
    listing = actions.add_parser("list", parents=api, help="keys you may manage (never the keys themselves)")
    listing.set_defaults(handler=cmd_keys_list)
    revoke = actions.add_parser("revoke", parents=api, help="revoke a key by its id")
    revoke.add_argument("id", metavar="ID")
    revoke.set_defaults(handler=cmd_keys_revoke)
