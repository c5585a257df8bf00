"""A userInputs `pattern` is the definition author's regex, matched in the API against run inputs:
its input is capped and the match has a deadline, so a catastrophic pattern fails only that value."""

from __future__ import annotations

import pytest

from libs.core.errors import InputError
from libs.core.inputs import validate_inputs
from libs.core.schema_dialect import MAX_PATTERN_INPUT


def inputs_with(pattern: str) -> dict[str, object]:
    return {"properties": {"name": {"type": "string", "pattern": pattern}}}


def test_a_pattern_still_matches_and_refuses() -> None:
    assert validate_inputs(inputs_with("^[a-z]+$"), {"name": "abc"}) == {"name": "abc"}
    with pytest.raises(InputError, match="must match the pattern"):
        validate_inputs(inputs_with("^[a-z]+$"), {"name": "ABC"})


def test_a_catastrophic_pattern_fails_the_value_instead_of_stalling() -> None:
    with pytest.raises(InputError) as caught:
        validate_inputs(inputs_with("^(a|aa)+$"), {"name": "a" * 60 + "!"})
    [issue] = caught.value.issues
    assert issue.pointer == "/inputs/name" and "could not be matched against the pattern ^(a|aa)+$ within 50 ms" in issue.message


def test_a_long_input_is_not_matched_at_all() -> None:
    with pytest.raises(InputError) as caught:
        validate_inputs(inputs_with("^a+$"), {"name": "a" * (MAX_PATTERN_INPUT + 1)})
    [issue] = caught.value.issues
    assert f"must be at most {MAX_PATTERN_INPUT} characters long" in issue.message
    assert len(issue.message) < 200, "the value is not quoted back"


def test_pattern_properties_are_matched_with_the_same_bounds() -> None:
    schema = {"properties": {"labels": {"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "string"}},
                                        "additionalProperties": False}}}
    assert validate_inputs(schema, {"labels": {"aaa": "x"}}) == {"labels": {"aaa": "x"}}
    with pytest.raises(InputError) as caught:
        validate_inputs(schema, {"labels": {"a" * 60 + "!": "x", "aa": 1}})
    long_key = "a" * 60 + "!"
    assert sorted(i.pointer for i in caught.value.issues) == ["/inputs/labels/aa", f"/inputs/labels/{long_key}"]
