"""The audit log: an append-only, hash-chained record of every change and decision (issue 8)."""
