"""The "Deploy with condition based on environment" example of Port's docs (reference/port-workflows.md
§1), verbatim, and the variant Stepline runs today (its UPSERT_ENTITY node replaced by a WEBHOOK)."""

from __future__ import annotations

import copy
from typing import Any

_PORT_EXAMPLE: dict[str, Any] = {
    "identifier": "deploy-service",
    "title": "Deploy Service",
    "icon": "Deployment",
    "nodes": [
        {
            "identifier": "trigger",
            "title": "Deployment Request",
            "config": {
                "type": "SELF_SERVE_TRIGGER",
                "userInputs": {
                    "properties": {
                        "service": {"type": "string", "format": "entity", "blueprint": "service", "title": "Service"},
                        "version": {"type": "string", "title": "Version"},
                        "environment": {
                            "type": "string",
                            "title": "Environment",
                            "enum": ["development", "staging", "production"],
                        },
                    },
                    "required": ["service", "version", "environment"],
                },
            },
        },
        {
            "identifier": "check-env",
            "title": "Check Environment",
            "config": {
                "type": "CONDITION",
                "options": [
                    {
                        "identifier": "production",
                        "title": "Production",
                        "expression": '.outputs.trigger.environment == "production"',
                    },
                    {
                        "identifier": "non-production",
                        "title": "Non-Production",
                        "expression": '.outputs.trigger.environment != "production"',
                    },
                ],
            },
        },
        {
            "identifier": "deploy-prod",
            "title": "Deploy to Production",
            "config": {
                "type": "WEBHOOK",
                "url": "https://api.example.com/deploy/production",
                "method": "POST",
                "body": {
                    "service": "{{ .outputs.trigger.service }}",
                    "version": "{{ .outputs.trigger.version }}",
                    "requiresApproval": True,
                },
            },
        },
        {
            "identifier": "deploy-nonprod",
            "title": "Deploy to Non-Production",
            "config": {
                "type": "WEBHOOK",
                "url": "https://api.example.com/deploy",
                "method": "POST",
                "body": {
                    "service": "{{ .outputs.trigger.service }}",
                    "version": "{{ .outputs.trigger.version }}",
                    "environment": "{{ .outputs.trigger.environment }}",
                },
            },
        },
        {
            "identifier": "update-status",
            "title": "Update Deployment Status",
            "config": {
                "type": "UPSERT_ENTITY",
                "blueprintIdentifier": "service",
                "mapping": {
                    "identifier": "{{ .outputs.trigger.service }}",
                    "properties": {
                        "lastDeployedVersion": "{{ .outputs.trigger.version }}",
                        "lastDeployedAt": '{{ now | date "2006-01-02T15:04:05Z" }}',
                    },
                },
            },
        },
    ],
    "connections": [
        {"sourceIdentifier": "trigger", "targetIdentifier": "check-env"},
        {"sourceIdentifier": "check-env", "targetIdentifier": "deploy-prod", "sourceOptionIdentifier": "production"},
        {
            "sourceIdentifier": "check-env",
            "targetIdentifier": "deploy-nonprod",
            "sourceOptionIdentifier": "non-production",
        },
        {"sourceIdentifier": "deploy-prod", "targetIdentifier": "update-status"},
        {"sourceIdentifier": "deploy-nonprod", "targetIdentifier": "update-status"},
    ],
}

UPDATE_STATUS_WEBHOOK: dict[str, Any] = {
    "type": "WEBHOOK",
    "url": "https://catalog.example.com/entities/service/{{ .outputs.trigger.service }}",
    "method": "PATCH",
    "headers": {"Authorization": "Bearer {{ .secrets.CATALOG_TOKEN }}"},
    "body": {
        "properties": {
            "lastDeployedVersion": "{{ .outputs.trigger.version }}",
            "lastDeployedAt": "{{ now | todate }}",
        }
    },
}


def port_example() -> dict[str, Any]:
    """Port's example exactly as published (UPSERT_ENTITY, Go-template `date`)."""
    return copy.deepcopy(_PORT_EXAMPLE)


def deploy_service() -> dict[str, Any]:
    """Port's example with `update-status` as a WEBHOOK: a valid Stepline definition."""
    doc = port_example()
    doc["nodes"][4]["config"] = copy.deepcopy(UPDATE_STATUS_WEBHOOK)
    return doc
