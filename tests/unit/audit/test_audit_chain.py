"""The audit hash chain (pure): sealing, canonical JSON, and where `verify` finds a break."""

from __future__ import annotations

import copy
import hashlib
from typing import Any, get_args

import pytest

from libs.audit.chain import (
    AUDIT_ACTIONS,
    GENESIS,
    AuditAction,
    AuditRecord,
    Fields,
    Verifier,
    canonical_json,
    chain_hash,
    iso_at,
    seal,
    seq_key,
    verify,
)


def chain(n: int) -> list[dict[str, Any]]:
    """`n` sealed records, as stored."""
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        fields = Fields(actor=f"user{seq}@example.com", role="admin", workspace="default",
                        action="secret.written", target=f"secret/s{seq}", details={"n": seq, "ü": [1.5, None]})
        record = seal(fields, seq=seq, at=iso_at(1_700_000_000 + seq), prev_hash=prev)
        records.append(record.data())
        prev = record.hash
    return records


def test_an_intact_chain_verifies() -> None:
    assert verify(chain(5)) is None
    assert verify([]) is None


def test_the_hash_is_sha256_of_the_canonical_json_of_every_other_field() -> None:
    record = chain(1)[0]
    body = {k: v for k, v in record.items() if k != "hash"}
    expected = hashlib.sha256(canonical_json(body)).hexdigest()
    assert record["hash"] == expected == chain_hash(record)
    assert record["prevHash"] == GENESIS
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_records_chain_onto_the_previous_hash_and_round_trip() -> None:
    records = chain(3)
    assert [r["prevHash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert [r["id"] for r in records] == ["aud_000000000001", "aud_000000000002", "aud_000000000003"]
    assert AuditRecord.from_data(records[1]).data() == records[1]


@pytest.mark.parametrize("field, value", [
    ("actor", "mallory@example.com"), ("details", {"n": 3, "ü": [1.5, None], "extra": True}),
    ("at", "2023-11-14T22:13:24.000Z"), ("role", None), ("action", "secret.deleted")])
def test_an_edited_record_is_found(field: str, value: Any) -> None:
    records = chain(5)
    records[2][field] = value
    broken = verify(records)
    assert broken is not None
    assert (broken.index, broken.seq, broken.id) == (2, 3, "aud_000000000003")
    assert "edited" in broken.reason


def test_an_added_field_is_an_edit() -> None:
    records = chain(3)
    records[1]["note"] = "harmless?"
    broken = verify(records)
    assert broken is not None and broken.index == 1 and "edited" in broken.reason


def test_an_edit_with_a_recomputed_hash_breaks_the_next_record() -> None:
    records = chain(4)
    records[1]["actor"] = "mallory@example.com"
    records[1]["hash"] = chain_hash(records[1])
    broken = verify(records)
    assert broken is not None
    assert (broken.index, broken.seq) == (2, 3)
    assert "prevHash" in broken.reason


def test_a_removed_record_is_found() -> None:
    records = chain(5)
    del records[3]
    broken = verify(records)
    assert broken is not None
    assert (broken.index, broken.seq) == (3, 5)
    assert "expected sequence number 4" in broken.reason


def test_a_removed_and_renumbered_record_is_found_by_the_chain() -> None:
    """Renumbering the records after a removal (and resealing each one alone) still breaks prevHash."""
    records = chain(4)
    del records[1]
    for seq, record in enumerate(records[1:], start=2):
        record.update(seq=seq, id=f"aud_{seq_key(seq)}")
        record["hash"] = chain_hash(record)
    broken = verify(records)
    assert broken is not None and broken.index == 1 and "prevHash" in broken.reason


def test_reordered_records_are_found() -> None:
    records = chain(4)
    records[1], records[2] = records[2], records[1]
    broken = verify(records)
    assert broken is not None
    assert (broken.index, broken.seq) == (1, 3)


def test_a_removed_first_record_is_found() -> None:
    broken = verify(chain(3)[1:])
    assert broken is not None and broken.index == 0 and "expected sequence number 1" in broken.reason


def test_a_truncated_end_is_found_against_the_head() -> None:
    records = chain(5)
    verifier = Verifier(head_seq=5, head_hash=records[4]["hash"])
    assert all(verifier.check(r) is None for r in records[:3])
    broken = verifier.finish()
    assert broken is not None
    assert broken.seq == 5 and "ends at sequence number 3" in broken.reason


def test_a_head_that_lags_is_fine_but_a_rewritten_head_record_is_not() -> None:
    records = chain(4)
    lagging = Verifier(head_seq=2, head_hash=records[1]["hash"])
    assert all(lagging.check(r) is None for r in records) and lagging.finish() is None
    resealed = copy.deepcopy(records)
    resealed[3]["target"] = "secret/other"
    resealed[3]["hash"] = chain_hash(resealed[3])
    verifier = Verifier(head_seq=4, head_hash=records[3]["hash"])
    found = [verifier.check(r) for r in resealed]
    assert found[:3] == [None, None, None]
    assert found[3] is not None and "head" in found[3].reason


def test_a_record_stored_under_another_key_is_found() -> None:
    verifier = Verifier()
    record = chain(1)[0]
    broken = verifier.check(record, key="000000000007")
    assert broken is not None and "key" in broken.reason


def test_non_json_contents_are_a_break_not_a_crash() -> None:
    records = chain(2)
    records[1]["details"] = {"x": float("nan")}
    broken = verify(records)
    assert broken is not None and broken.index == 1 and "canonical JSON" in broken.reason


def test_the_actions_are_those_of_the_issue() -> None:
    assert set(AUDIT_ACTIONS) == set(get_args(AuditAction)) == {
        "workflow.created", "workflow.published", "workflow.deleted", "tag.moved", "run.started",
        "run.cancelled", "run.rerun", "workflow.paused", "workflow.resumed", "node.completed_externally",
        "approval.decided", "secret.written", "secret.deleted", "apikey.created", "apikey.revoked",
        "workspace.created", "auth.denied", "agent.written", "agent.deleted", "mcp_server.written",
        "mcp_server.deleted"}


def test_times_are_fixed_width_iso() -> None:
    assert iso_at(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert iso_at(1_700_000_000) < iso_at(1_700_000_000.001) < iso_at(1_700_000_010)


def test_details_are_sealed_as_the_json_that_is_stored() -> None:
    fields = Fields(actor="a", role=None, workspace="default", action="tag.moved", target="workflow/w",
                    details={"tags": ("$LIVE", "beta"), "versions": {1: 2}})
    record = seal(fields, seq=1, at=iso_at(0), prev_hash=GENESIS)
    assert record.details == {"tags": ["$LIVE", "beta"], "versions": {"1": 2}}
    assert verify([record.data()]) is None
    with pytest.raises(ValueError):
        seal(Fields("a", None, "default", "tag.moved", "t", {"x": float("inf")}), seq=1, at="", prev_hash=GENESIS)
