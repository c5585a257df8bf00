"""The 32 workflow definitions Port published (read from `shared/reference/port-examples/` in a parent
directory of the checkout, or `STEPLINE_PORT_EXAMPLES`; never copied), what each is expected to do in
Stepline, and the loopback echo server their edited copies call.

`VALIDATION` names every example that does not validate unchanged, with the pointers of its issues and
the reason; every other example must validate with no issue at all. `CASES` says how each edited copy
is started (inputs, or a catalog event) and what its run must end as. docs/port-compatibility.md shows
the same table, and tests/service/test_port_examples.py checks that it does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

WHERE = Path("shared") / "reference" / "port-examples"
CONFIGURED = os.environ.get("STEPLINE_PORT_EXAMPLES", "")


def find_examples() -> Path:
    """`STEPLINE_PORT_EXAMPLES` when set; else the first `shared/reference/port-examples` in a parent
    directory of the checkout (`../shared` next to it, or higher up); else where that would be."""
    if CONFIGURED:
        return Path(CONFIGURED)
    parents = Path(__file__).resolve().parents[2].parents
    return next((p / WHERE for p in parents if (p / WHERE).is_dir()), parents[0] / WHERE)


EXAMPLES = find_examples()
EDITED = EXAMPLES / "edited"
SKIP_REASON = (f"Port's examples are not at {EXAMPLES} nor in any parent directory's {WHERE} (set "
               "STEPLINE_PORT_EXAMPLES); skipped also under STEPLINE_REQUIRE_INFRA=1: they are reference data, "
               "not infrastructure")


def example_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in EXAMPLES.glob("[0-9][0-9]-*.json"))


def edited_names() -> list[str]:
    return sorted(p.name.removesuffix(".edited.json") for p in EDITED.glob("[0-9][0-9]-*.edited.json"))


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return raw


def load_edited(name: str, echo_url: str) -> dict[str, Any]:
    text = (EDITED / f"{name}.edited.json").read_text()
    port = echo_url.rsplit(":", 1)[1]
    raw: dict[str, Any] = json.loads(text.replace("{ECHO_PORT}", port))
    return raw


@dataclass(frozen=True)
class Refusal:
    """Why an example does not validate unchanged: the pointers of its issues and the reason."""

    pointers: frozenset[str]
    why: str
    kind: str
    """`not-port` (Port refuses it too), `fragment` (a doc snippet with
    no identifier or trigger: validated for everything else), `not-yet` (a Port feature still missing)."""
    message: str = ""
    """A text every issue's message contains."""


def _refused(kind: str, why: str, *pointers: str, message: str = "") -> Refusal:
    return Refusal(frozenset(pointers), why, kind, message)


_GO = "Go-template helpers (`now | date`, `lower`, `replace`, `add_duration`) are not jq, in Port as here"
_FRAGMENT = "a docs snippet without a workflow identifier (Port's API requires one)"

VALIDATION: dict[str, Refusal] = {
    "08-A-dataflow-variables-chain": _refused("fragment", _FRAGMENT, "/identifier"),
    "09-A-action-chaining-outputs": _refused("fragment", _FRAGMENT, "/identifier"),
    "10-A-upsert-create-env-workflow": _refused(
        "not-port", _GO, "/nodes/1/config/mapping/identifier", "/nodes/1/config/mapping/properties/createdAt",
        "/nodes/1/config/mapping/properties/expiresAt", message="templates are jq"),
    "11-A-upsert-from-webhook": _refused("fragment", _FRAGMENT + ", and no trigger node", "/identifier", "/nodes"),
    "12-A-github-deploy-with-github": _refused(
        "not-port", _GO, "/nodes/2/config/mapping/properties/lastDeployedAt", message="templates are jq"),
    "13-A-examples-scaffold-service": _refused(
        "not-port", _GO, "/nodes/2/config/mapping/properties/createdAt", message="templates are jq"),
    "14-A-examples-deploy-service-condition": _refused(
        "not-port", _GO, "/nodes/4/config/mapping/properties/lastDeployedAt", message="templates are jq"),
    "25-O-ocean-readme-trigger-claude-agent": _refused("fragment", _FRAGMENT, "/identifier"),
    "26-O-ocean-readme-sync-port-skill": _refused("fragment", _FRAGMENT, "/identifier"),
    "27-O-ocean-readme-create-claude-agent": _refused("fragment", _FRAGMENT, "/identifier"),
}


@dataclass(frozen=True)
class Case:
    """How an edited copy is started and what its run ends as."""

    inputs: dict[str, Any] | None = None
    event: dict[str, Any] | None = None
    result: str = "SUCCESS"
    skipped: frozenset[str] = frozenset()
    """Nodes on a branch not taken; every other node must have succeeded (SUCCESS runs)."""
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Echo path → fields its JSON body must hold."""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node → fields its output must hold."""
    error: str = ""
    """For a FAILED run: a text the run's error contains."""


def entity(identifier: str, title: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, "title": title, "properties": properties, **extra}


def event(blueprint: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    action = "CREATE" if before is None else "DELETE" if after is None else "UPDATE"
    identifier = (after or before or {})["identifier"]
    return {"action": action, "diff": {"before": before, "after": after},
            "context": {"blueprintIdentifier": blueprint, "entityIdentifier": identifier}}


_PAYMENTS_OK = entity("payments", "Payments", {"tier": "critical", "status": "ok", "healthStatus": "healthy"})
_PAYMENTS_DOWN = entity("payments", "Payments", {"tier": "critical", "status": "down", "healthStatus": "degraded"})
_ENV = entity("env-1", "Env One", {"status": "active", "cloudProvider": "aws", "ttl": "2026-01-01T00:00:00Z"},
              relations={"owner": "alice"})
_DEPLOY_BEFORE = entity("dep-1", "Dep 1", {"version": "1"}, relations={"service": "payments", "environment": "prod"})
_DEPLOY_AFTER = entity("dep-1", "Dep 1", {"version": "2"}, relations={"service": "payments", "environment": "prod"})
_JIRA_BEFORE = entity("PROJ-1", "Fix the login bug", {"status": "To Do", "labels": ["copilot"]})
_JIRA_AFTER = entity("PROJ-1", "Fix the login bug", {"status": "In Progress", "labels": ["copilot"]})
_SCORED = {"scorecardsStats": 0.5}

CASES: dict[str, Case] = {
    "01-A-quickstart-my-first-workflow": Case(inputs={"message": "hi"},
                                              requests={"/send-webhook": {"message": "hi"}}),
    "02-A-concepts-my-workflow": Case(inputs={}, requests={"/action1": {"message": "Workflow executed"}}),
    "03-A-sst-config-deploy-service": Case(
        inputs={"service": "web", "version": "1.2", "environment": "staging"},
        requests={"/deploy-action": {"service": "web", "version": "1.2", "environment": "staging"}}),
    "04-A-event-notify-critical-status": Case(
        event=event("service", _PAYMENTS_OK, _PAYMENTS_DOWN),
        requests={"/send-notification": {"text": "Critical service Payments status changed from ok to down"}}),
    "05-A-event-cleanup-environment": Case(event=event("environment", _ENV, None),
                                           requests={"/cleanup": {"environmentId": "env-1"}}),
    "06-A-event-expire-environment": Case(
        event=event("environment", _ENV, _ENV), requests={"/notify": {"message": "Environment Env One has expired"}},
        outputs={"update-status": {"response": {"data": {"identifier": "env-1"}}}}),
    "07-A-dataflow-notify-on-deployment": Case(event=event("deployment", _DEPLOY_BEFORE, _DEPLOY_AFTER)),
    "08-A-dataflow-variables-chain": Case(event=event("deployment", _DEPLOY_BEFORE, _DEPLOY_AFTER),
                                          requests={"/notify": {"deployment": "dep-1"}}),
    "09-A-action-chaining-outputs": Case(inputs={"resourceName": "bucket"},
                                         requests={"/create_resource": {"name": "bucket"}}),
    "10-A-upsert-create-env-workflow": Case(
        inputs={"name": "My Env", "type": "staging", "ttlDays": 2},
        outputs={"create-entity": {"response": {"data": {"identifier": "my-env", "title": "My Env"}}}}),
    "12-A-github-deploy-with-github": Case(
        inputs={"service": "web", "environment": "staging", "version": "1.2"},
        requests={"/gh/repos/my-org/web/actions/workflows/deploy.yml/dispatches": {
            "ref": "main", "inputs": {"environment": "staging", "version": "1.2"}}},
        outputs={"trigger-deploy": {"dispatched": True, "repo": "my-org/web"}}),
    "13-A-examples-scaffold-service": Case(
        inputs={"serviceName": "svc", "language": "go", "team": "core"},
        requests={"/gh/repos/my-org/platform-templates/actions/workflows/scaffold-service.yml/dispatches": {
            "inputs": {"service_name": "svc", "language": "go"}}}),
    "14-A-examples-deploy-service-condition": Case(
        inputs={"service": "web", "version": "1.2", "environment": "production"},
        skipped=frozenset({"deploy-nonprod"}), requests={"/deploy/production": {"requiresApproval": True}}),
    "15-A-examples-auto-assign-team": Case(
        event=event("service", None, entity("web", "Web", {}, team=[])),
        outputs={"assign-team": {"response": {"data": {"team": ["platform-team"]}}}}),
    "16-A-examples-notify-degradation": Case(event=event("service", _PAYMENTS_OK, _PAYMENTS_DOWN),
                                             requests={"/create-incident": {"routing_key": "pd-key"}}),
    "17-A-examples-cleanup-expired-env": Case(event=event("environment", _ENV, _ENV),
                                              requests={"/trigger-cleanup": {"environmentId": "env-1"}}),
    "18-B-define-notify-on-demand": Case(inputs={"message": "hi"}, outputs={"send_webhook": {"request_id": "req-123"}}),
    "20-B-wip-notify-on-demand-conn-identifier": Case(inputs={"message": "hi"},
                                                      outputs={"send_webhook": {"request_id": "req-123"}}),
    "21-S-skills-self-service-deploy": Case(
        inputs={"service": "web", "version": "1.2", "environment": "production"},
        skipped=frozenset({"deploy_other"}), requests={"/deploy_prod": {"environment": "production"}}),
    "23-S-skills-event-ai-incident": Case(event=event("service", _PAYMENTS_OK, _PAYMENTS_DOWN)),
    "24-O-ocean-sync-port-skill-to-claude": Case(
        inputs={"portSkillId": "skill-1"}, outputs={"sync_skill": {"worker": "done", "invocation": {
            "installationId": "claude-managed-agents", "integrationInvocationType": "sync_skill",
            "integrationActionExecutionProperties": {"portSkillId": "skill-1"}}}}),
    "28-D-docs-guide-promote-to-production": Case(
        inputs={"service": "web", "version": "1.2", "skip_health_check": True},
        skipped=frozenset({"health_check", "evaluate_health", "notify_health_failed", "notify_success"}),
        requests={"/gh/repos/YOUR_GITHUB_ORGANIZATION/web/actions/workflows/deploy.yml/dispatches": {
            "inputs": {"version": "1.2", "environment": "production"}}}),
    "29-D-docs-guide-self-heal-scorecard": Case(
        event=event("service", {**_PAYMENTS_OK, "scorecardsStats": 0.9}, {**_PAYMENTS_OK, **_SCORED}),
        outputs={"analyze_degradation": {"task_title": "Add missing CODEOWNERS"}}),
    "30-D-docs-guide-ticket-resolution-coding-agents": Case(
        event=event("jiraIssue", _JIRA_BEFORE, _JIRA_AFTER), skipped=frozenset({"comment_on_jira_ai_failure"}),
        requests={"/jira/rest/api/3/issue/PROJ-1/comment": {}},  # `jira_key`: the trigger's variables
        outputs={"trigger": {"jira_key": "PROJ-1", "jira_title": "Fix the login bug"}}),
    "31-D-docs-ai-node-analyze-and-notify": Case(
        inputs={"service": "payments"}, requests={"/slack": {"text": "AI Analysis for payments:\n"
                                                             "payments is healthy; no open incidents."}}),
    "32-D-docs-ai-node-incident-summary": Case(event=event("service", _PAYMENTS_OK, _PAYMENTS_DOWN)),
}
"""Every edited copy (`edited/EDITS.md`), keyed by the example's name."""

SECRETS = {"github-token": "ghp_offline0123456789", "GITHUB_TOKEN": "ghp_offline0123456789",
           "pagerduty-key": "pd-key", "_JIRA_ATLASSIAN_USER_EMAIL": "bot@example.com",
           "_JIRA_ATLASSIAN_USER_TOKEN": "jira-token"}
"""The secrets EDITS.md sets up (`slack-webhook-url` is added with the echo server's URL)."""


@dataclass
class Echo:
    """The loopback stand-in for `edited/echo.py`: answers 200 with the same fields, records requests."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def anything(path: str, request: Request) -> JSONResponse:
            raw = await request.body()
            body = json.loads(raw) if raw else None
            self.requests.append({"path": "/" + path, "method": request.method, "body": body})
            return JSONResponse(echo_answer("/" + path, request.method, body))

        return app

    def bodies(self, path: str) -> list[Any]:
        return [r["body"] for r in self.requests if r["path"] == path]


def echo_answer(path: str, method: str, body: Any) -> dict[str, Any]:
    return {"ok": True, "path": path, "method": method, "received": body, "requestId": "req-123",
            "id": "res-456", "resourceId": "abc123", "html_url": "https://github.example/issues/7", "number": 7,
            "url": "https://svc.example/deployed", "status": "healthy"}
