"""`stepline`: the command line of the Stepline workflow engine.

    stepline up [--host H] [--port P] [--data-dir D] [--examples [DIR]] [--distributed [--kafka K] [--mongo M]]
    stepline validate FILE | apply FILE | schema | graph FILE_OR_WORKFLOW [--format mermaid|dot]
    stepline run WORKFLOW [--input k=v ...] [--inputs-json JSON|@file] [--version N | --tag T] [--wait] [--timeout S]
    stepline runs [--workflow W] [--status S] [--result R] [--limit N] | show RUN [--json] | logs RUN
    stepline cancel RUN | rerun RUN [--from start|failed] | pause WORKFLOW | resume WORKFLOW
    stepline keys create --workspace W --role R --user U [--name N] [--expires-at T] [--store-url URL]
    stepline keys list | keys revoke ID
    stepline audit [--action A] [--actor U] [--target T] [--since T] [--until T] [--limit N] [--json]
    stepline audit verify [--store-url URL] [--json]   (exit 1 when the chain is broken)

Every command that talks to the API sends an API key: --api-key, else $STEPLINE_API_KEY, else the
key `stepline up` wrote to ./.stepline/admin.key.

Exit codes: 0 success; 1 the run FAILED or was CANCELLED (or the server failed); 2 a user error (bad
file, flag or definition, a request the API refused, no API to talk to); 3 `run --wait --timeout` elapsed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from stepline.cli.audit import add_audit_commands
from stepline.cli.client import API_ENV, API_KEY_ENV, LOCAL_KEY_FILE, default_api
from stepline.cli.commands import (
    cmd_apply,
    cmd_graph,
    cmd_logs,
    cmd_run,
    cmd_runs,
    cmd_schema,
    cmd_show,
    cmd_up,
    cmd_validate,
    since_instant,
)
from stepline.cli.control import add_control_commands
from stepline.cli.errors import EXIT_FAILED, CliError
from stepline.cli.graph import FORMATS
from stepline.cli.keys import add_key_commands

PROG = "stepline"
KEY_HELP = f"API key (default: ${API_KEY_ENV}, else ./{LOCAL_KEY_FILE})"
INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return metadata.version("stepline")
    except metadata.PackageNotFoundError:
        return "unknown"


def _api_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    return value.rstrip("/")


def _api_parent() -> argparse.ArgumentParser:
    """`--api` accepted after the command too (`stepline runs --api URL`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--api", type=_api_url, default=argparse.SUPPRESS, metavar="URL",
                        help=f"API base URL (default: ${API_ENV} or http://127.0.0.1:8080)")
    parent.add_argument("--api-key", dest="api_key", default=argparse.SUPPRESS, metavar="KEY", help=KEY_HELP)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run Port-format workflows with Stepline.")
    parser.add_argument("--api", type=_api_url, default=default_api(), metavar="URL",
                        help=f"API base URL (default: ${API_ENV} or http://127.0.0.1:8080)")
    parser.add_argument("--api-key", dest="api_key", default=None, metavar="KEY", help=KEY_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    api = [_api_parent()]
    _add_up(commands)
    _add_definition_commands(commands, api)
    _add_run_commands(commands, api)
    add_control_commands(commands, api)
    add_key_commands(commands, api)
    add_audit_commands(commands, api)
    return parser


def _add_up(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("up", help="start the embedded engine and its HTTP API (until Ctrl-C / SIGTERM)")
    up.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8080)")
    up.add_argument("--data-dir", dest="data_dir", metavar="DIR", help="where the SQLite store lives (default .stepline)")
    up.add_argument("--distributed", action="store_true",
                    help="run the four services as separate processes over Kafka and a MongoDB-protocol store")
    up.add_argument("--kafka", metavar="HOST:PORT", help="with --distributed: use this Kafka instead of starting one")
    up.add_argument("--mongo", metavar="URL", help="with --distributed: use this MongoDB URL instead of starting FerretDB")
    up.add_argument("--examples", nargs="?", const="examples", metavar="DIR",
                    help="load the workflows in DIR (default ./examples) that do not exist yet")
    up.set_defaults(handler=cmd_up)


def _add_definition_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                             api: list[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser("validate", help="check a workflow definition file (no server needed)")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(handler=cmd_validate)

    apply = commands.add_parser("apply", parents=api,
                                help="create the workflow, or store a new version and make it $LIVE")
    apply.add_argument("file", metavar="FILE")
    apply.set_defaults(handler=cmd_apply)

    schema = commands.add_parser("schema", help="print the JSON Schema of the definition format")
    schema.set_defaults(handler=cmd_schema)

    graph = commands.add_parser("graph", parents=api, help="draw a workflow (a file or a stored workflow)")
    graph.add_argument("target", metavar="FILE_OR_WORKFLOW")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")
    graph.set_defaults(handler=cmd_graph)


def _add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                      api: list[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", parents=api, help="start a run (and follow it with --wait)")
    run.add_argument("workflow", metavar="WORKFLOW")
    run.add_argument("-i", "--input", action="append", metavar="KEY=VALUE",
                     help="an input; VALUE is parsed as JSON when it is JSON (42, true, {...}), else taken as text")
    run.add_argument("--inputs-json", dest="inputs_json", metavar="JSON|@FILE",
                     help="all inputs as a JSON object, or @file holding one (--input values override it)")
    pin = run.add_mutually_exclusive_group()
    pin.add_argument("--version", type=int, metavar="N", help="run this version (default: $LIVE)")
    pin.add_argument("--tag", metavar="TAG", help="run the version this tag points at (e.g. '$LIVE')")
    run.add_argument("--wait", action="store_true", help="follow the run, a line per node change, until it completes")
    run.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S seconds (exit 3)")
    run.set_defaults(handler=cmd_run)
    _add_run_listing(commands, api)


def _add_run_listing(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                     api: list[argparse.ArgumentParser]) -> None:
    runs = commands.add_parser("runs", parents=api, help="list runs, newest first")
    runs.add_argument("--workflow", metavar="W")
    runs.add_argument("--status", choices=("IN_PROGRESS", "COMPLETED"))
    runs.add_argument("--result", choices=("SUCCESS", "FAILED", "CANCELLED"))
    runs.add_argument("--since", type=since_instant, metavar="WHEN",
                      help="created since: a duration back from now (90s, 15m, 6h, 7d, 2w) or an ISO 8601 time")
    runs.add_argument("--created-by", metavar="USER", help="started with a key of this user")
    runs.add_argument("--trigger", metavar="TYPE", help="started by this trigger type (API, WEBHOOK, SCHEDULE, ...)")
    runs.add_argument("--limit", type=_limit, default=20, metavar="N", help="at most N runs (1..1000, default 20)")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", parents=api, help="a run with its nodes")
    show.add_argument("run", metavar="RUN")
    show.add_argument("--json", action="store_true", help="print the raw workflowRun JSON")
    show.set_defaults(handler=cmd_show)

    logs = commands.add_parser("logs", parents=api, help="every node run's logs in time order")
    logs.add_argument("run", metavar="RUN")
    logs.set_defaults(handler=cmd_logs)


def _limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return number


def report(error: CliError) -> None:
    print(f"{PROG}: error: {error.message}", file=sys.stderr, flush=True)
    for line in error.lines:
        print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except CliError as error:
        report(error)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED


def _silence_stdout() -> None:
    """The reader went away (`stepline runs | head`): stop writing without a second error at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
