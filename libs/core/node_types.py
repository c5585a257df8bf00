"""The JSON Schema (draft 2020-12, Stepline dialect) of each node type's `config`.

The registry of node types, which refers to these, is `node_kinds.KINDS`. Port's own types allow fields we do
not implement (Port keeps adding them); Stepline's own types are closed. Condition configs are checked
after `definition.normalize` has folded the older `conditions` and later `outlets` shapes into `options`.
"""

from __future__ import annotations

from typing import Any

from libs.core.identifiers import IDENTIFIER_PATTERN, MAX_IDENTIFIER_LENGTH
from libs.core.permission_policy import POLICY
from libs.core.secrets import MAX_SECRET_NAME_LENGTH, SECRET_NAME_PATTERN
from libs.core.webhook_signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_TOLERANCE_SECONDS,
    SCHEMES,
    TIMESTAMPED_SCHEMES,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
GITHUB_PROVIDERS = ("GITHUB", "github-ocean")
"""INTEGRATION_ACTION providers Stepline runs itself; any other waits for an integration worker."""

IDENTIFIER: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDENTIFIER_LENGTH,
    "pattern": IDENTIFIER_PATTERN,
}
JQ_QUERY: dict[str, Any] = {
    "type": "object",
    "required": ["jqQuery"],
    "properties": {"jqQuery": {"type": "string"}},
}
_BUTTON_TEXT: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 15,
    "pattern": r"^\S(.*\S)?$",
    "description": "1–15 characters, no leading or trailing whitespace.",
    "errorMessage": "must be 1–15 characters with no leading or trailing whitespace",
}
_VISIBLE: dict[str, Any] = {"anyOf": [{"type": "boolean"}, JQ_QUERY]}


def _config(node_type: str, description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "title": f"{node_type} config",
        "description": description,
        "type": "object",
        "required": ["type", *extra.pop("required", [])],
        "properties": {"type": {"const": node_type}, **properties},
        **extra,
    }


_INPUT = {
    "type": "object",
    "description": "One input, as a JSON Schema with Port's extras (format entity/user/team..., "
    "blueprint, dataset, visible, dependsOn...).",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["string", "number", "integer", "boolean", "array", "object"]},
        "title": {"type": "string", "maxLength": 140},
        "description": {"type": "string", "maxLength": 1000},
        "visible": _VISIBLE,
        "dependsOn": {"type": "array", "items": {"type": "string"}},
    },
}

USER_INPUTS: dict[str, Any] = {
    "type": "object",
    "description": "The form of a self-service trigger: the inputs a run takes.",
    "required": ["properties"],
    "properties": {
        "properties": {"type": "object", "additionalProperties": _INPUT},
        "required": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, JQ_QUERY],
            "errorMessage": 'must be a list of input names or {"jqQuery": "..."}',
        },
        "order": {"type": "array", "items": {"type": "string"}},
        "titles": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 140},
                    "description": {"type": "string", "maxLength": 1000},
                    "visible": _VISIBLE,
                },
            },
        },
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 25},
                    "order": {"type": "array", "items": {"type": "string"}},
                    "visible": _VISIBLE,
                },
            },
        },
    },
}

SELF_SERVE_TRIGGER = _config(
    "SELF_SERVE_TRIGGER",
    "Started by a person or an API call with inputs; its output is the validated inputs.",
    {
        "userInputs": USER_INPUTS,
        "actionCardButtonText": _BUTTON_TEXT,
        "executeActionButtonText": _BUTTON_TEXT,
        "permissions": {
            "type": "object",
            "description": "Who may start it (Port's shape): API keys whose `user` is in `users` or whose "
                           "role is in `roles`; owners and admins always may. Absent: every role that may start runs.",
            "properties": {"users": {"type": "array", "items": {"type": "string"}},
                           "roles": {"type": "array", "items": {"type": "string"}},
                           "policy": POLICY},
        },
        "allowAnyoneToViewRuns": {
            "type": "boolean", "default": True,
            "description": "false: a run is readable only by whoever started it, editors, admins and owners.",
        },
    },
)

WEBHOOK = _config(
    "WEBHOOK",
    "An HTTP request; output `{response: {status, data}}`. With `synchronized: false` the node waits "
    "for an external completion (PATCH of the node run).",
    {
        "url": {"type": "string", "minLength": 1, "description": "The URL; may hold templates."},
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "POST"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"description": "Any JSON; strings may hold templates."},
        "synchronized": {"type": "boolean", "default": True},
        "agent": {"type": "boolean", "default": False},
    },
    required=["url"],
)

_OPTION = {
    "type": "object",
    "required": ["identifier", "expression"],
    "properties": {
        "identifier": IDENTIFIER,
        "title": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "expression": {"type": "string", "minLength": 1, "description": "jq, without {{ }}."},
        "statusLabel": {"type": ["string", "null"]},
        "workflowStatusLabel": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}

CONDITION = _config(
    "CONDITION",
    "Options are tried in order; the first whose jq expression is true picks the connections naming "
    "it (`sourceOptionIdentifier`); if none is, the `fallback: true` connection is taken.",
    {"options": {"type": "array", "minItems": 1, "items": _OPTION}},
    required=["options"],
    additionalProperties=False,
)

TRANSFORM = _config(
    "TRANSFORM",
    "Stepline extension: computes a value. `expression` is jq (without {{ }}) over the template "
    "context; `output` is any JSON whose strings are rendered as templates. Exactly one of the two.",
    {"expression": {"type": "string", "minLength": 1}, "output": {}},
    additionalProperties=False,
    allOf=[
        {
            "oneOf": [{"required": ["expression"]}, {"required": ["output"]}],
            "errorMessage": "needs exactly one of `expression` and `output`",
        }
    ],
)

NOOP = _config("NOOP", "Does nothing. Useful to join branches.", {}, additionalProperties=False)

_SECRET_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_NAME_LENGTH,
                                "pattern": SECRET_NAME_PATTERN}
_SIGNATURE: dict[str, Any] = {
    "type": "object",
    "description": "How deliveries are signed (docs/api.md, Webhooks). `stepline`: `X-Stepline-Signature: "
    "t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">`; `github`: `X-Hub-Signature-256`, de-duplicated "
    "by `X-GitHub-Delivery`; `slack`: `X-Slack-Signature` over `v0:<ts>:<raw body>`; `hmac-sha256`: "
    "`X-Stepline-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.",
    "required": ["scheme", "secretName"],
    "properties": {
        "scheme": {"enum": list(SCHEMES)},
        "secretName": {**_SECRET_NAME, "description": "The secret (PUT /v1/secrets/{name}) whose value keys the HMAC."},
        "toleranceSeconds": {"type": "integer", "minimum": 1, "maximum": MAX_TOLERANCE_SECONDS,
                             "default": DEFAULT_TOLERANCE_SECONDS,
                             "description": "Timestamped schemes: deliveries signed further from now are refused."},
    },
    "additionalProperties": False,
    "allOf": [{
        "if": {"required": ["scheme"],
               "properties": {"scheme": {"enum": [n for n in SCHEMES if n not in TIMESTAMPED_SCHEMES]}}},
        "then": {"properties": {"toleranceSeconds": {
            "not": {}, "errorMessage": "applies only to the schemes " + " and ".join(TIMESTAMPED_SCHEMES)}}},
    }],
}

WEBHOOK_TRIGGER = _config(
    "WEBHOOK_TRIGGER",
    "Starts a run for every signed `POST /v1/hooks/{workflow}`; the body (a JSON object, or form fields) "
    "is its output. `signature` says how deliveries are signed; the older top-level `secretName` alone "
    "means scheme `hmac-sha256`.",
    {
        "signature": _SIGNATURE,
        "secretName": {**_SECRET_NAME, "description": "Older form of `signature: {scheme: \"hmac-sha256\", "
                       "secretName}`."},
    },
    additionalProperties=False,
    allOf=[{
        "if": {"required": ["secretName"]},
        "then": {"properties": {"signature": {
            "not": {}, "errorMessage": "cannot be given with the older top-level `secretName`; keep only `signature`"}}},
        "else": {"required": ["signature"]},
    }],
)

SCHEDULE_TRIGGER = _config(
    "SCHEDULE_TRIGGER",
    "Stepline extension: starts a run on every tick, once per tick however many trigger replicas run; "
    "output `{scheduledAt, tick}`. Exactly one of `cron` and `intervalSeconds`.",
    {
        "cron": {"type": "string", "minLength": 1,
                 "description": "Five fields (minute hour day-of-month month day-of-week) or a macro such "
                 "as @daily, read in `timezone`."},
        "intervalSeconds": {"type": "integer", "minimum": 1,
                            "description": "Ticks at the multiples of this many seconds since the Unix epoch."},
        "timezone": {"type": "string", "minLength": 1, "default": "UTC", "description": "An IANA time zone name."},
        "missedTicks": {"enum": ["skip", "once"], "default": "skip",
                        "description": "Ticks missed while no trigger ran: `skip` them, or fire `once` for all."},
    },
    additionalProperties=False,
    allOf=[
        {
            "oneOf": [{"required": ["cron"]}, {"required": ["intervalSeconds"]}],
            "errorMessage": "needs exactly one of `cron` and `intervalSeconds`",
        }
    ],
)

QUEUE_TRIGGER = _config(
    "QUEUE_TRIGGER",
    "Stepline extension: starts a run for every message on a bus topic (Kafka in distributed mode); the "
    "output is the message (a Stepline KAFKA message's data, or the JSON value written to the topic).",
    {
        "topic": {
            "type": "string",
            "minLength": 1,
            "maxLength": 249,
            "allOf": [
                {"pattern": r"^(?!\.\.?$)[A-Za-z0-9._-]+$",
                 "errorMessage": "must be a Kafka topic name: letters, digits, '.', '_' and '-' (not '.' or '..')"},
                {"not": {"pattern": r"^stepline\."},
                 "errorMessage": "must not start with 'stepline.', which Stepline's own topics use"},
            ],
        },
    },
    required=["topic"],
    additionalProperties=False,
)

_TEMPLATE: dict[str, Any] = {"type": "string", "pattern": r"\{\{", "description": "A {{ template }}."}


def _exactly_one(first: str, second: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [first]}, {"required": [second]}],
            "errorMessage": f"needs exactly one of `{first}` and `{second}`"}


DELAY = _config(
    "DELAY",
    "Stepline extension: waits durably (a stored timer), then succeeds with `{waitedUntil}`. Exactly "
    "one of `seconds` (> 0) and `until` (an ISO 8601 timestamp; one in the past completes at once).",
    {
        "seconds": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, _TEMPLATE],
                    "errorMessage": "must be a number > 0 or a {{ template }}"},
        "until": {"type": "string", "minLength": 1,
                  "description": "An ISO 8601 timestamp, e.g. 2030-01-01T09:00:00Z; may be a template."},
    },
    additionalProperties=False,
    allOf=[_exactly_one("seconds", "until")],
)

APPROVAL = _config(
    "APPROVAL",
    "Stepline extension: waits for a person's decision (`POST /v1/workflows/runs/{run}/nodes/{node}/approval`). "
    "Approve succeeds and reject fails the node; output `{decision, by, comment, payload}`. After "
    "`slaSeconds`, `onTimeout` fails the node or continues with decision `timeout`.",
    {
        "assignees": {"anyOf": [{"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                                _TEMPLATE],
                      "errorMessage": "must be a non-empty list of user names or a {{ template }}"},
        "message": {"type": "string", "minLength": 1, "maxLength": 10_000},
        "slaSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 31_536_000},
        "onTimeout": {"enum": ["fail", "continue"], "default": "fail"},
        "allowSelfApproval": {"type": "boolean", "default": False,
                              "description": "true: whoever started the run may decide it too (if an assignee)."},
    },
    required=["assignees", "message"],
    additionalProperties=False,
)

SUB_WORKFLOW = _config(
    "SUB_WORKFLOW",
    "Stepline extension: starts a run of another workflow (inputs validated against its "
    "SELF_SERVE_TRIGGER) and waits for it; output `{runId, result, outputs}`, FAILED if the child fails.",
    {
        "workflowIdentifier": {"type": "string", "minLength": 1},
        "version": {"anyOf": [{"type": "integer", "minimum": 1}, _TEMPLATE],
                    "errorMessage": "must be an integer >= 1 or a {{ template }}"},
        "tag": {"type": "string", "minLength": 1},
        "inputs": {"anyOf": [{"type": "object"}, _TEMPLATE],
                   "errorMessage": "must be an object or a {{ template }}", "default": {}},
    },
    required=["workflowIdentifier"],
    additionalProperties=False,
    allOf=[{"not": {"required": ["version", "tag"]}, "errorMessage": "must give either `version` or `tag`, not both"}],
)

FOREACH = _config(
    "FOREACH",
    "Stepline extension: maps an array. `items` renders to an array; for each item either the inline "
    "`node` config runs (its templates also see `.item` and `.index`) or a run of `workflowIdentifier` "
    "starts with the item as its inputs; at most `concurrency` at once. Output `{results}` in item order.",
    {
        "items": {"anyOf": [{"type": "array"}, _TEMPLATE],
                  "errorMessage": "must be an array or a {{ template }} that renders to one"},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
        "node": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}},
                 "description": "An inline node config of any action type that completes within one attempt."},
        "workflowIdentifier": {"type": "string", "minLength": 1},
        "version": {"anyOf": [{"type": "integer", "minimum": 1}, _TEMPLATE],
                    "errorMessage": "must be an integer >= 1 or a {{ template }}"},
        "tag": {"type": "string", "minLength": 1},
    },
    required=["items"],
    additionalProperties=False,
    allOf=[_exactly_one("node", "workflowIdentifier")],
)

_HAS_TEMPLATE = r"\{\{"

KAFKA = _config(
    "KAFKA",
    "Publishes `payload` (any JSON; strings may hold templates) to a bus topic as a "
    "`dev.stepline.kafka.message.v1` CloudEvent keyed by `key` (default: the run id); output "
    "`{topic, key, messageId}`. With `waitForCompletion: true` the node waits for a PATCH of its "
    "node run. Stepline's own topics are refused.",
    {
        "topic": {
            "type": "string",
            "description": "A Kafka topic name, or a template that renders to one; default (Port's nodes "
            "have none): the executor's runs topic, `STEPLINE_KAFKA_RUNS_TOPIC`.",
            "allOf": [
                {"anyOf": [{"pattern": r"^[A-Za-z0-9._-]{1,249}$"}, {"pattern": _HAS_TEMPLATE}],
                 "errorMessage": "must be a Kafka topic name: 1–249 characters of A-Z a-z 0-9 . _ -"},
                {"not": {"pattern": r"^stepline\."},
                 "errorMessage": "must not start with 'stepline.', which Stepline's own topics use"},
            ],
        },
        "key": {"type": "string", "description": "The message key (partitioning); default: the run id."},
        "payload": {"description": "Any JSON; strings may hold templates."},
        "waitForCompletion": {"type": "boolean", "default": False},
    },
    required=["payload"],
)

NOTIFY = _config(
    "NOTIFY",
    "Stepline extension: sends `text` to a Slack incoming webhook (`url`), to any webhook (`url`, JSON "
    "`{text, subject, run, node}`) or by email (`to`, `subject`; the SMTP server is the executor's "
    "setting). Output `{channel, delivered, status}` or `{channel, delivered, recipients}`.",
    {
        "channel": {"enum": ["slack", "webhook", "email"]},
        "url": {"type": "string", "minLength": 1, "description": "slack and webhook: where to POST."},
        "to": {
            "anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}],
            "errorMessage": "must be an email address or a list of them",
            "description": "email: the recipients (commas may separate several in one string).",
        },
        "subject": {"type": "string"},
        "text": {"type": "string", "minLength": 1},
    },
    required=["channel", "text"],
    additionalProperties=False,
    allOf=[
        {"if": {"properties": {"channel": {"enum": ["slack", "webhook"]}}, "required": ["channel"]},
         "then": {"required": ["url"]}},
        {"if": {"properties": {"channel": {"const": "email"}}, "required": ["channel"]},
         "then": {"required": ["to"]}},
    ],
)

_REPO_OR_TEMPLATE = {"type": "string", "pattern": r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|.*\{\{.*)$",
                     "errorMessage": "must be owner/name (or a template)"}
_NAME_OR_TEMPLATE = {"type": "string", "pattern": r"^([A-Za-z0-9_.-]+|.*\{\{.*)$",
                     "errorMessage": "must be a GitHub name (letters, digits and _ . -) or a template"}
_GITHUB_STEPLINE = {
    "type": "object",
    "title": "Stepline's shape",
    "required": ["repo", "workflowId"],
    "properties": {
        "repo": _REPO_OR_TEMPLATE,
        "workflowId": {"type": ["string", "integer"], "minLength": 1,
                       "description": "The workflow file name (deploy.yml) or its numeric id."},
        "ref": {"type": "string", "minLength": 1, "default": "main"},
        "inputs": {"type": "object", "description": "The workflow's inputs (GitHub expects strings)."},
        "reportStatus": {"type": "boolean", "default": False,
                         "description": "Follow the run until it completes; FAILED unless it concludes success."},
    },
}
_GITHUB_PORT = {
    "type": "object",
    "title": "Port's shape",
    "required": ["org", "repo", "workflow"],
    "properties": {
        "org": _NAME_OR_TEMPLATE,
        "repo": _NAME_OR_TEMPLATE,
        "workflow": {"type": ["string", "integer"], "minLength": 1, "description": "The workflow file name or id."},
        "ref": {"type": "string", "minLength": 1, "default": "main"},
        "workflowInputs": {"type": "object", "description": "The workflow's inputs."},
        "reportWorkflowStatus": {"type": "boolean", "default": False},
    },
}
_GITHUB_DISPATCH = {
    "description": "The workflow to dispatch and how to follow it: Port's `{org, repo, workflow, workflowInputs, "
    "reportWorkflowStatus}` (when `org` or `workflow` is given) or Stepline's `{repo: owner/name, workflowId, "
    "inputs, reportStatus}`.",
    "type": "object",
    "if": {"anyOf": [{"required": ["org"]}, {"required": ["workflow"]}]},
    "then": _GITHUB_PORT,
    "else": _GITHUB_STEPLINE,
}

INTEGRATION_ACTION = _config(
    "INTEGRATION_ACTION",
    "Runs an integration's action. `GITHUB` (or `github-ocean`): dispatches a GitHub Actions workflow with "
    "the token in the secret `tokenSecret` (default: the executor's configured GitHub token secret); output "
    "`{dispatched, repo, workflowId, ref}`, or with `reportWorkflowStatus` `{runId, htmlUrl, status, "
    "conclusion}` once the run completes. Any other provider is an Ocean integration: the node waits for an "
    "integration worker of its `installationId` to claim it (Port's worker API) and complete it by PATCH.",
    {
        "integrationProvider": {"type": "string", "minLength": 1},
        "integrationActionExecutionProperties": {"type": "object"},
        "tokenSecret": {"type": "string", "minLength": 1,
                        "description": "Stepline extension: the name of the secret holding the token."},
        "installationId": {"type": "string", "minLength": 1,
                           "description": "The integration installation (whose workers claim the node's runs)."},
        "integrationIdentifier": {"type": "string"},
        "integrationInvocationType": {"type": "string", "description": "e.g. `dispatch_workflow`, `sync_skill`."},
    },
    required=["integrationProvider", "integrationActionExecutionProperties"],
    allOf=[{"if": {"properties": {"integrationProvider": {"enum": list(GITHUB_PROVIDERS)}},
                   "required": ["integrationProvider"]},
            "then": {"properties": {"integrationActionExecutionProperties": _GITHUB_DISPATCH}},
            "else": {"required": ["installationId"]}}],
)
