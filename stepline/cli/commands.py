"""The CLI's commands. Each takes the parsed arguments, writes to stdout and returns an exit code;
user errors are raised as `CliError`."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from libs.core.definition import Workflow
from libs.core.instants import parse_instant, to_iso
from stepline.cli.client import ApiClient, ApiError, resolve_api_key, segment
from stepline.cli.errors import EXIT_OK, CliError
from stepline.cli.files import definition_error, load_workflow, validate
from stepline.cli.graph import render
from stepline.cli.inputs import collect_inputs
from stepline.cli.render import log_lines, run_detail, runs_table
from stepline.cli.run import Follower, start

if TYPE_CHECKING:
    from stepline.settings import EmbeddedSettings


def out(line: str = "") -> None:
    print(line, flush=True)


def client_of(args: argparse.Namespace) -> ApiClient:
    return ApiClient(str(args.api), api_key=resolve_api_key(getattr(args, "api_key", None)))


# ---- local --------------------------------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    examples: Path | None = Path(args.examples) if args.examples is not None else None
    if examples is not None and not examples.is_dir():
        raise CliError(f"--examples {examples}: no such directory")
    settings = _embedded_settings(host=args.host, port=args.port, data_dir=args.data_dir)
    if args.distributed:
        return _up_distributed(settings, args, examples)
    if args.kafka or args.mongo:
        raise CliError("--kafka and --mongo only apply with --distributed")
    return _serve(settings, examples)


def _up_distributed(settings: EmbeddedSettings, args: argparse.Namespace, examples: Path | None) -> int:
    """`up --distributed`, which needs `devinfra` from the source checkout (stepline/checkout.py)."""
    from stepline.checkout import NoCheckoutError, devinfra_on_path

    try:
        devinfra_on_path()
    except NoCheckoutError as exc:
        raise CliError(str(exc)) from None
    from devinfra import InfraError
    from stepline.distributed import run as run_distributed

    try:
        return run_distributed(settings, kafka=args.kafka, mongo=args.mongo, examples=examples)
    except (InfraError, RuntimeError) as exc:
        raise CliError(f"distributed mode could not start: {exc}") from None


def _embedded_settings(**flags: Any) -> EmbeddedSettings:
    """`EmbeddedSettings` from the flags that were given; the rest come from `STEPLINE_*` or defaults."""
    from stepline.settings import EmbeddedSettings

    try:
        return EmbeddedSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise CliError("invalid engine settings (flags or STEPLINE_* variables)", lines=problems) from None


def _serve(settings: EmbeddedSettings, examples: Path | None) -> int:
    from stepline.embedded import run

    try:
        run(settings, examples=examples)
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        if exc.code not in (0, None):
            raise CliError(f"the engine could not serve on {settings.host}:{settings.port} (see the error above); "
                           "is another engine already using that port? Pick another with --port") from None
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    path = str(args.file)
    _, workflow = load_workflow(path)
    out(f"{path}: valid ({_count(len(workflow.nodes), 'node')}, {_count(len(workflow.connections), 'connection')})")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_schema(args: argparse.Namespace) -> int:
    from libs.core.format_schema import workflow_json_schema

    out(json.dumps(workflow_json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


# ---- workflows ----------------------------------------------------------------------------------

def cmd_apply(args: argparse.Namespace) -> int:
    path = str(args.file)
    raw, workflow = load_workflow(path)
    with client_of(args) as client:
        try:
            created = _create_or_update(client, raw, workflow)
        except ApiError as exc:
            if exc.details and exc.status == 422:
                raise definition_error(path, exc.details) from None
            raise
    verb, shown = created
    version = shown.get("version")
    out(f"created {workflow.identifier} version {version}" if verb == "created"
        else f"updated {workflow.identifier} to version {version}")
    return EXIT_OK


def _create_or_update(client: ApiClient, raw: Any, workflow: Workflow) -> tuple[str, dict[str, Any]]:
    try:
        return "created", _workflow_of(client.post("/v1/workflows", raw))
    except ApiError as exc:
        if exc.status != 409:
            raise
    return "updated", _workflow_of(client.put(f"/v1/workflows/{segment(workflow.identifier)}", raw))


def _workflow_of(answer: dict[str, Any]) -> dict[str, Any]:
    shown = answer.get("workflow")
    return shown if isinstance(shown, dict) else {}


def cmd_graph(args: argparse.Namespace) -> int:
    target = str(args.target)
    if Path(target).is_file() or target.endswith(".json"):
        _, workflow = load_workflow(target)
    else:
        with client_of(args) as client:
            workflow = validate(_live_definition(client, target), f"workflow {target}")
    out(render(workflow, str(args.format)))
    return EXIT_OK


def _live_definition(client: ApiClient, identifier: str) -> Any:
    """The definition of the workflow's `$LIVE` version, as stored (without the API's metadata)."""
    shown = _workflow_of(client.get(f"/v1/workflows/{segment(identifier)}"))
    answer = client.get(f"/v1/workflows/{segment(identifier)}/versions/{int(shown.get('version') or 1)}")
    version = answer.get("version")
    return version.get("definition") if isinstance(version, dict) else None


# ---- runs ---------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    if args.version is not None and args.tag is not None:
        raise CliError("--version and --tag cannot be used together")
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds")
    inputs = collect_inputs(args.input or [], args.inputs_json)
    with client_of(args) as client:
        run = start(client, str(args.workflow), inputs, version=args.version, tag=args.tag)
        run_id = str(run["identifier"])
        if not args.wait:
            out(run_id)
            return EXIT_OK
        out(f"run {run_id} started: {args.workflow} version {run.get('workflowVersionId', '?')}")
        return Follower(client, run_id, timeout=args.timeout, emit=out).follow()


def cmd_runs(args: argparse.Namespace) -> int:
    params: dict[str, str | int] = {"limit": int(args.limit)}
    for key, value in (("workflowIdentifiers", args.workflow), ("statuses", args.status),
                       ("results", args.result), ("from", args.since), ("createdBy", args.created_by),
                       ("trigger", args.trigger)):
        if value is not None:
            params[key] = str(value)
    with client_of(args) as client:
        answer = client.get("/v1/workflows/runs", params=params)
    runs = [r for r in answer.get("workflowRuns") or [] if isinstance(r, dict)]
    if not runs:
        out("no runs")
        return EXIT_OK
    out(runs_table(runs))
    total = answer.get("total")
    if isinstance(total, int) and total > len(runs):
        out(f"({len(runs)} of {total} runs; use --limit to see more)")
    return EXIT_OK


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_instant(text: str, now: float | None = None) -> str:
    """`runs --since`: a duration back from now (`90s`, `15m`, `6h`, `7d`, `2w`) or an ISO 8601 time,
    as the ISO 8601 time the API's `from` takes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if match:
        return to_iso((time.time() if now is None else now) - float(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        return to_iso(parse_instant(text))
    except (ValueError, OverflowError, OSError):
        raise argparse.ArgumentTypeError(f"{text!r} is neither a duration (15m, 6h, 7d) nor an ISO 8601 time") from None


def _get_run(args: argparse.Namespace) -> dict[str, Any]:
    with client_of(args) as client:
        answer = client.get(f"/v1/workflows/runs/{segment(str(args.run))}")
    run = answer.get("workflowRun")
    if not isinstance(run, dict):
        raise CliError(f"the API answered without a workflowRun for {args.run}")
    return run


def cmd_show(args: argparse.Namespace) -> int:
    run = _get_run(args)
    out(json.dumps(run, indent=2, ensure_ascii=False) if args.json else run_detail(run))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    lines = log_lines(_get_run(args))
    for line in lines:
        out(line)
    if not lines:
        out(f"no logs for run {args.run}")
    return EXIT_OK
