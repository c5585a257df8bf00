"""Bounded evaluation of user jq expressions: a deadline and a memory cap for every evaluation.

Expressions in the cheap subset of `libs.core.jq_bounds` over a small context run in the calling
process; every other one runs in a small pool of worker processes (`pool.py`), each with an
address-space limit, killed and replaced when it misses the deadline. Services evaluate templates
and expressions only through `evaluate.py`; see docs/architecture.md, "Bounded expressions".
"""
