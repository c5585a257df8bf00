"""The quota and egress settings every service shares (STEPLINE_ prefix through CommonSettings).
What each limit means is in libs/core/limits.py and libs/core/egress.py."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from libs.core.egress import EgressPolicy, Rules
from libs.core.limits import MIB, Limits


class LimitSettings(BaseModel):
    max_nodes_per_definition: int = Field(default=500, ge=1)
    max_definition_bytes: int = Field(default=MIB, ge=1)
    max_foreach_items: int = Field(default=10_000, ge=1)
    max_foreach_concurrency: int = Field(default=100, ge=1)
    max_child_runs_per_run: int = Field(default=10_000, ge=1)
    """Child runs one run's SUB_WORKFLOW and FOREACH nodes may start, all nodes together."""
    max_child_runs_per_root_run: int = Field(default=10_000, ge=1)
    """Child runs in the whole tree under one top-level run (a workflow that starts itself)."""
    max_run_depth: int = Field(default=10, ge=1, le=100)
    """How deep child runs (SUB_WORKFLOW, FOREACH of a workflow) may nest under a top-level run."""
    max_output_bytes: int = Field(default=MIB, ge=1)
    max_run_variables_bytes: int = Field(default=16 * MIB, ge=1)
    """A run's inputs, trigger output and node outputs together, as node templates see them."""
    max_log_entries_per_node_run: int = Field(default=1_000, ge=1)
    max_log_bytes_per_node_run: int = Field(default=MIB, ge=1)
    kafka_topics_allow: str = "*"
    """Comma-separated glob patterns of the topics KAFKA nodes may write and QUEUE_TRIGGERs read
    (Stepline's own `stepline.` topics are refused whatever the patterns say)."""
    egress_deny: str = ""
    """CIDRs and host names requests may not reach, beyond link-local, metadata and unspecified."""
    egress_allow: str = ""
    """CIDRs and host names requests may reach even though denied (by default or EGRESS_DENY)."""

    @field_validator("egress_deny", "egress_allow")
    @classmethod
    def _rules_parse(cls, value: str, info: ValidationInfo) -> str:
        Rules.parse(value, setting=f"STEPLINE_{str(info.field_name).upper()}")  # a start-up error naming it
        return value

    def limits(self) -> Limits:
        topics = tuple(p.strip() for p in self.kafka_topics_allow.split(",") if p.strip())
        return Limits(
            max_nodes_per_definition=self.max_nodes_per_definition, max_definition_bytes=self.max_definition_bytes,
            max_foreach_items=self.max_foreach_items, max_foreach_concurrency=self.max_foreach_concurrency,
            max_child_runs_per_run=self.max_child_runs_per_run,
            max_child_runs_per_root_run=self.max_child_runs_per_root_run, max_run_depth=self.max_run_depth,
            max_output_bytes=self.max_output_bytes, max_run_variables_bytes=self.max_run_variables_bytes,
            max_log_entries_per_node_run=self.max_log_entries_per_node_run,
            max_log_bytes_per_node_run=self.max_log_bytes_per_node_run, kafka_topics_allow=topics)

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.of(self.egress_deny, self.egress_allow)
