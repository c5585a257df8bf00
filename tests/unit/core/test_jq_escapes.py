"""Backslashes that start no jq escape are literal (Port's `[\\s\\S]`); valid programs are untouched."""

from __future__ import annotations

import jq
import pytest

from libs.core.jq_escapes import lenient
from libs.core.templates import run_text, syntax_error


@pytest.mark.parametrize("program", [
    '"a\\\\b"', '"x\\(.a | tostring)y"', '"\\u00e9\\t\\n\\"\\/"', '. # a comment with " and \\s', '.a | test("b")', "",
])
def test_what_jq_accepts_is_left_alone(program: str) -> None:
    assert lenient(program) == program


def test_an_unknown_escape_becomes_a_literal_backslash_also_inside_interpolations() -> None:
    assert lenient('"[\\s\\S]"') == '"[\\\\s\\\\S]"'
    assert lenient('"\\(.a) \\d \\("in\\w")"') == '"\\(.a) \\\\d \\("in\\\\w")"'
    assert jq.compile(lenient('"\\(.a) \\d"')).input_value({"a": 1}).first() == "1 \\d"


def test_ports_published_capture_runs_as_its_author_meant() -> None:
    expression = '.response | capture("DESCRIPTION:\\n(?<desc>[\\s\\S]+)") | .desc // .response'
    assert syntax_error(expression) is None
    [found] = run_text([expression], '{"response": "TITLE: x\\nDESCRIPTION:\\nline one\\nline two"}')
    assert found == "line one\nline two"
