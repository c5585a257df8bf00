from __future__ import annotations

import re
from typing import Any

import pytest

from libs.core import templates
from libs.core.errors import TemplateError
from libs.core.templates import (
    apply_variables,
    build_context,
    compile_expression,
    evaluate,
    find_templates,
    first_true,
    is_truthy,
    render,
)


@pytest.fixture
def ctx() -> dict[str, Any]:
    return build_context(
        outputs={
            "trigger": {"service": "payments", "version": "1.2.3", "replicas": 3, "tags": ["a", "b"]},
            "create-ticket": {"response": {"status": 201, "data": {"id": 42, "ok": True, "note": None}}},
        },
        inputs={"service": "payments"},
        secrets={"API_TOKEN": "s3cr3t-value"},
        trigger={"type": "MANUAL", "by": "ana@example.com", "at": 1700000000.0},
        run={"id": "wfr_abcdefghijklmnop", "workflow": "deploy", "version": 4},
    )


# ------------------------------------------------------------------------------- whole-value templates


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .outputs.trigger.replicas }}", 3),
        ("{{ .outputs.trigger.tags }}", ["a", "b"]),
        ('{{ .outputs["create-ticket"].response.data }}', {"id": 42, "ok": True, "note": None}),
        ("{{ .outputs[\"create-ticket\"].response.data.ok }}", True),
        ("{{ .outputs[\"create-ticket\"].response.data.note }}", None),
        ("{{ .outputs.trigger.version }}", "1.2.3"),
        ("{{ .run.version + 1 }}", 5),
        ('{{ if .outputs.trigger.replicas > 2 then "high" else "low" end }}', "high"),
    ],
)
def test_a_string_that_is_exactly_one_template_keeps_the_json_type(
    ctx: dict[str, Any], template: str, expected: Any
) -> None:
    assert render(template, ctx) == expected


def test_whitespace_around_a_whole_value_template_is_allowed(ctx: dict[str, Any]) -> None:
    assert render("  {{.outputs.trigger.replicas}}\n", ctx) == 3


def test_an_expression_without_output_renders_as_null(ctx: dict[str, Any]) -> None:
    assert render("{{ empty }}", ctx) is None
    assert render("{{ .outputs.missing.field }}", ctx) is None


def test_only_the_first_output_of_an_expression_is_used(ctx: dict[str, Any]) -> None:
    assert render("{{ .outputs.trigger.tags[] }}", ctx) == "a"


def test_jq_object_literals_and_strings_containing_braces_are_one_template(ctx: dict[str, Any]) -> None:
    assert render("{{ {svc: {name: .inputs.service}} }}", ctx) == {"svc": {"name": "payments"}}
    assert render('{{ "}}" }}', ctx) == "}}"


# ---------------------------------------------------------------------------------- embedded templates


def test_embedded_templates_render_as_text(ctx: dict[str, Any]) -> None:
    rendered = render(
        "svc={{ .inputs.service }} n={{ .outputs.trigger.replicas }} tags={{ .outputs.trigger.tags }} "
        'none=[{{ null }}] ok={{ .outputs["create-ticket"].response.data.ok }}',
        ctx,
    )
    assert rendered == 'svc=payments n=3 tags=["a","b"] none=[] ok=true'


def test_embedded_object_is_compact_json(ctx: dict[str, Any]) -> None:
    assert render("data: {{ {a: 1, b: [2]} }}", ctx) == 'data: {"a":1,"b":[2]}'


def test_two_templates_side_by_side_are_text_not_a_whole_value(ctx: dict[str, Any]) -> None:
    assert render("{{ .outputs.trigger.replicas }}{{ .outputs.trigger.replicas }}", ctx) == "33"


def test_an_unterminated_template_is_literal_text(ctx: dict[str, Any]) -> None:
    assert render("cost {{ not a template", ctx) == "cost {{ not a template"


# ----------------------------------------------------------------------------------- JSON structures


def test_render_walks_objects_and_arrays_and_leaves_other_values(ctx: dict[str, Any]) -> None:
    config = {
        "type": "WEBHOOK",
        "url": "https://api.example.com/{{ .inputs.service }}/deploy",
        "body": {
            "replicas": "{{ .outputs.trigger.replicas }}",
            "list": ["{{ .run.id }}", 7, None, False, {"deep": "{{ .trigger.by.user.email }}"}],
            "{{ .not.rendered }}": "key stays",
        },
    }
    assert render(config, ctx) == {
        "type": "WEBHOOK",
        "url": "https://api.example.com/payments/deploy",
        "body": {
            "replicas": 3,
            "list": ["wfr_abcdefghijklmnop", 7, None, False, {"deep": "ana@example.com"}],
            "{{ .not.rendered }}": "key stays",
        },
    }


def test_a_value_without_templates_is_returned_equal_but_not_shared(ctx: dict[str, Any]) -> None:
    value: dict[str, Any] = {"a": ["x", {"b": "plain"}], "n": 1}
    rendered = render(value, ctx)
    assert rendered == value
    rendered["a"][1]["b"] = "changed"
    assert value["a"][1]["b"] == "plain"


def test_plain_strings_are_returned_unchanged(ctx: dict[str, Any]) -> None:
    text = "no templates here { } }}"
    assert render(text, ctx) is text


# ----------------------------------------------------------------------------------------- errors


def test_a_syntax_error_names_the_expression_and_not_the_context(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render({"body": "{{ .foo | }}"}, ctx)
    message = str(caught.value)
    assert "'.foo |'" in message and "syntax error" in message
    assert "payments" not in message and "s3cr3t" not in message


def test_an_empty_template_is_an_error(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="empty"):
        render("{{ }}", ctx)


def test_an_evaluation_error_names_the_failing_expression(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render({"ok": "{{ .run.id }}", "bad": "{{ .outputs.trigger.version + 1 }}"}, ctx)
    assert "'.outputs.trigger.version + 1'" in str(caught.value)
    assert "cannot be added" in str(caught.value)


def test_secret_values_are_redacted_from_evaluation_errors(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ .secrets.API_TOKEN | tonumber }}", ctx)
    assert "s3cr3t-value" not in str(caught.value)
    assert "***" in str(caught.value)


def test_a_context_that_is_not_json_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="not JSON"):
        render("{{ .x }}", {"x": object()})


def test_results_are_the_same_when_expressions_run_one_by_one(
    ctx: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"a": "{{ .outputs.trigger.replicas }}", "b": "v{{ .outputs.trigger.version }}", "c": "{{ empty }}"}
    batched = render(config, ctx)
    monkeypatch.setattr(templates, "_batch_program", lambda expressions: None)
    assert render(config, ctx) == batched == {"a": 3, "b": "v1.2.3", "c": None}
    with pytest.raises(TemplateError, match="'.run.id \\+ 1'"):
        render({"x": "{{ .run.id + 1 }}"}, ctx)


# ---------------------------------------------------------------------------------------- compiling


def test_compiled_programs_are_cached() -> None:
    first = compile_expression(".cache.test.expression")
    assert compile_expression(".cache.test.expression") is first


def test_compile_expression_reports_jq_syntax_errors() -> None:
    with pytest.raises(TemplateError, match=r"invalid jq expression '\.a \|\|'"):
        compile_expression(".a ||")


def test_go_template_date_is_not_jq_but_jq_todate_works(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render('{{ now | date "2006-01-02" }}', ctx)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", render("{{ now | todate }}", ctx))


# ---------------------------------------------------------------------------------- find_templates


def test_find_templates_gives_the_pointer_of_each_string() -> None:
    value = {
        "url": "https://x/{{ .a }}/{{ .b }}",
        "a/b": {"c~d": ["plain", "{{ .c }}"]},
        "n": 1,
    }
    assert find_templates(value, "/nodes/2/config") == [
        ("/nodes/2/config/url", ".a"),
        ("/nodes/2/config/url", ".b"),
        ("/nodes/2/config/a~1b/c~0d/1", ".c"),
    ]


def test_find_templates_in_a_bare_string_uses_the_given_pointer() -> None:
    assert find_templates("{{ .x }}") == [("", ".x")]
    assert find_templates("no templates") == []


# --------------------------------------------------------------------------------- bare expressions


def test_evaluate_returns_the_first_output_or_none(ctx: dict[str, Any]) -> None:
    assert evaluate('.outputs.trigger.service == "payments"', ctx) is True
    assert evaluate(".outputs.trigger.tags[]", ctx) == "a"
    assert evaluate("empty", ctx) is None


def test_evaluate_accepts_an_expression_written_as_one_template(ctx: dict[str, Any]) -> None:
    assert evaluate("{{ .run.version }}", ctx) == 4


@pytest.mark.parametrize(
    ("value", "truthy"),
    [(None, False), (False, False), (True, True), (0, True), ("", True), ([], True), ({}, True)],
)
def test_jq_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_first_true_picks_the_first_truthy_option_in_order(ctx: dict[str, Any]) -> None:
    options = [".outputs.trigger.replicas > 5", ".outputs.trigger.replicas > 1", "true"]
    assert first_true(options, ctx) == 1
    assert first_true([".outputs.trigger.replicas > 5", "null"], ctx) is None


def test_first_true_raises_for_an_error_before_the_match_but_not_after(ctx: dict[str, Any]) -> None:
    assert first_true(["true", ".run.id + 1"], ctx) == 0
    with pytest.raises(TemplateError, match="'.run.id \\+ 1'"):
        first_true([".run.id + 1", "true"], ctx)


# ---------------------------------------------------------------------------------- context, variables


def test_build_context_exposes_the_five_roots_and_ports(ctx: dict[str, Any]) -> None:
    assert set(ctx) == {"outputs", "inputs", "secrets", "trigger", "run", "workflow", "workflowRun"}
    assert render("{{ .trigger.by.user.email }} {{ .trigger.at }} {{ .workflowRun.identifier }}", ctx) == (
        "ana@example.com 2023-11-14T22:13:20.000Z wfr_abcdefghijklmnop")
    assert ctx["workflow"] == {"identifier": "deploy", "version": 4}
    assert render("{{ .secrets.API_TOKEN }}|{{ .trigger.type }}|{{ .inputs.service }}", ctx) == (
        "s3cr3t-value|MANUAL|payments"
    )


def test_no_variables_keeps_the_raw_output() -> None:
    raw = {"response": {"status": 200, "data": {"id": "abc"}}}
    assert apply_variables({}, raw) is raw


def test_variables_replace_the_output_and_are_rendered_against_the_raw_output() -> None:
    raw = {"response": {"status": 201, "data": {"requestId": "req-9", "items": [1, 2]}}}
    variables = {
        "request_id": "{{ .response.data.requestId }}",
        "count": "{{ .response.data.items | length }}",
        "label": "request {{ .response.data.requestId }}",
        "response": "{{ null }}",
        "fixed": 5,
        "nested": {"status": "{{ .response.status }}"},
    }
    assert apply_variables(variables, raw) == {
        "request_id": "req-9",
        "count": 2,
        "label": "request req-9",
        "response": None,
        "fixed": 5,
        "nested": {"status": 201},
    }


def test_variables_can_keep_the_whole_raw_response() -> None:
    raw = {"response": {"status": 200, "data": [1]}}
    assert apply_variables({"response": "{{ .response }}"}, raw) == raw


def test_variables_against_a_null_output() -> None:
    assert apply_variables({"x": "{{ . }}", "y": "v={{ . }}"}, None) == {"x": None, "y": "v="}


# ------------------------------------------------------------------------------------------- sandbox


def test_templates_cannot_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_TEST_SECRET", "from-the-environment")
    compile_expression.cache_clear()
    templates._batch_program.cache_clear()
    assert render("{{ $ENV.STEPLINE_TEST_SECRET }}", {}) is None
    assert render("{{ env | length }}", {}) == 0
    assert render("{{ def leak: $ENV; leak }}", {}) == {}


@pytest.mark.parametrize("expression", ["halt", '"x" | halt_error', "input"])
def test_interpreter_control_is_a_template_error(expression: str) -> None:
    with pytest.raises(TemplateError, match="not available in templates"):
        render("{{ " + expression + " }}", {"a": 1})


def test_module_directives_are_rejected() -> None:
    with pytest.raises(TemplateError, match="invalid jq expression"):
        compile_expression('import "x" as x; .')
