"""`python -m services.notifier`: run events → notification URLs and live stats."""

import logging

from libs.runtime import event_loop
from libs.runtime.egress import guarded_client
from libs.runtime.runner import run_service
from services.notifier.app import build_notifier
from services.notifier.settings import NotifierSettings


async def serve(settings: NotifierSettings) -> None:
    async with guarded_client(settings.egress_policy()) as client:
        await run_service("notifier", settings,
                          lambda store, bus: [build_notifier(settings, store, bus, client)[0]])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    event_loop.run(serve(NotifierSettings()))


main()
