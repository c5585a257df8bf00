"""`stepline cancel | rerun | pause | resume`: run control through the API."""

from __future__ import annotations

import argparse
from typing import Any

from stepline.cli.client import segment
from stepline.cli.commands import client_of, out
from stepline.cli.errors import EXIT_OK, CliError


def _run_of(answer: dict[str, Any]) -> dict[str, Any]:
    run = answer.get("workflowRun")
    if not isinstance(run, dict):
        raise CliError("the API answered without a workflowRun")
    return run


def cmd_cancel(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        run = _run_of(client.post(f"/v1/workflows/runs/{segment(args.run)}/cancel", None))
    state = "cancelled" if run.get("status") == "COMPLETED" else "cancelling (attempts in flight finish first)"
    out(f"run {run.get('identifier')} {state}")
    return EXIT_OK


def cmd_rerun(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        run = _run_of(client.post(f"/v1/workflows/runs/{segment(args.run)}/rerun", {"from": args.from_}))
    out(f"run {run.get('identifier')} started (rerun of {args.run} from {args.from_})")
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        client.post(f"/v1/workflows/{segment(args.workflow)}/pause", None)
    out(f"workflow {args.workflow} paused: it starts no new runs until resumed")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    with client_of(args) as client:
        client.post(f"/v1/workflows/{segment(args.workflow)}/resume", None)
    out(f"workflow {args.workflow} resumed")
    return EXIT_OK


def add_control_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                         api: list[argparse.ArgumentParser]) -> None:
    cancel = commands.add_parser("cancel", parents=api, help="cancel a run (attempts in flight finish first)")
    cancel.add_argument("run", metavar="RUN")
    cancel.set_defaults(handler=cmd_cancel)

    rerun = commands.add_parser("rerun", parents=api, help="start a new run with the inputs of an earlier one")
    rerun.add_argument("run", metavar="RUN")
    rerun.add_argument("--from", dest="from_", choices=("start", "failed"), default="start",
                       help="failed: reuse the outputs of the nodes that succeeded (default: start)")
    rerun.set_defaults(handler=cmd_rerun)

    for name, handler, text in (("pause", cmd_pause, "stop a workflow from starting runs"),
                                ("resume", cmd_resume, "let a paused workflow start runs again")):
        parser = commands.add_parser(name, parents=api, help=text)
        parser.add_argument("workflow", metavar="WORKFLOW")
        parser.set_defaults(handler=handler)
