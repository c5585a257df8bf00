"""Notifier: run events → the workflow's notification URL (the CloudEvent as JSON) and the run
metrics (libs/telemetry/metrics.py, exported on `/metrics`).

A notification that fails with a network error or a 5xx is retried by redelivery; a 4xx, a URL that
is not http(s) and a destination the egress rules refuse are logged and dropped (retrying cannot help).
"""

from __future__ import annotations

import logging

import httpx

from libs.contracts import v1
from libs.contracts.envelope import Envelope
from libs.core.egress import EgressRefused, url_problem
from libs.core.errors import ActionError
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from libs.telemetry import metrics

log = logging.getLogger("stepline.notifier")
NOTIFIED = (v1.RunStarted, v1.RunCompleted)
READ: frozenset[str] = metrics.OBSERVED_TYPES  # the NOTIFIED types among them
"""The event types the notifier reads; others (node.started, node.waiting) are passed over unparsed."""


class Notifier:
    def __init__(self, store: Store, client: httpx.AsyncClient, *, timeout: float) -> None:
        self.definitions = DefinitionCache(store)
        self.client = client
        self.timeout = timeout

    async def handle(self, envelope: Envelope) -> None:
        """One run event of the types in `READ` (the subscription passes over the others)."""
        event = envelope.message()
        metrics.observe(event)
        if isinstance(event, NOTIFIED):
            workflow = await self.definitions.get(event.workflow_key, event.version)
            if workflow.notificationUrl:
                await self.notify(workflow.notificationUrl, envelope)

    async def notify(self, url: str, envelope: Envelope) -> None:
        """A URL that can never be delivered to (not http(s), refused by the egress rules) is logged
        and dropped: redelivering it could not help."""
        problem = url_problem(url)
        if problem is not None:
            log.warning("notification for run %s dropped: notificationUrl %s", envelope.subject, problem)
            return
        try:
            response = await self.client.post(url, content=envelope.to_bytes(), timeout=self.timeout,
                                              headers={"Content-Type": "application/cloudevents+json"})
        except (EgressRefused, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            log.warning("notification for run %s dropped: %s", envelope.subject, exc)
            return
        except httpx.HTTPError as exc:
            raise ActionError(f"notification to {httpx.URL(url).host} failed: {type(exc).__name__}",
                              retryable=True) from None
        if response.status_code >= 500:
            raise ActionError(f"notification answered HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            log.warning("notification for run %s rejected with HTTP %s", envelope.subject, response.status_code)
