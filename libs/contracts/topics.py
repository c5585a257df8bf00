"""Topic names. Every topic is keyed by run id, so one run's messages stay ordered in one partition."""

RUN_COMMANDS = "stepline.run-commands.v1"
NODE_DISPATCH = "stepline.node-dispatch.v1"
NODE_RESULTS = "stepline.node-results.v1"
RUN_EVENTS = "stepline.run-events.v1"
CATALOG_EVENTS = "stepline.catalog-events.v1"
DEAD_LETTERS = "stepline.dead-letters.v1"
AUDIT = "stepline.audit.v1"
"""The audit log's records (libs/audit), keyed by one constant: all in one partition (order them by `seq`)."""
WORKFLOW_STATS = "stepline.workflow-stats.v1"
"""Per workflow and hour, the statistics the notifier folded from the run events (docs/events.md);
created compacted by the notifier's stream app, keyed `<workflow>@<hour>`, so not in ALL."""

ALL = (RUN_COMMANDS, NODE_DISPATCH, NODE_RESULTS, RUN_EVENTS, CATALOG_EVENTS, DEAD_LETTERS, AUDIT)
