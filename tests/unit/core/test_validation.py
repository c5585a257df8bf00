from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from port_deploy_example import deploy_service, port_example

from libs.core.definition import Workflow, normalize
from libs.core.errors import DefinitionError, Issue
from libs.core.validation import parse_workflow, validate_definition

Doc = dict[str, Any]


def _issues_at(doc: Any, pointer: str) -> list[Issue]:
    return [i for i in validate_definition(doc) if i.pointer == pointer]


def _node(doc: Doc, identifier: str) -> Doc:
    node: Doc = next(n for n in doc["nodes"] if n["identifier"] == identifier)
    return node


# ------------------------------------------------------------------------------------ valid documents


def test_the_port_deploy_example_with_a_webhook_is_valid() -> None:
    doc = deploy_service()
    assert validate_definition(doc) == []
    workflow = parse_workflow(doc)
    assert isinstance(workflow, Workflow)
    assert [n.identifier for n in workflow.nodes] == [
        "trigger", "check-env", "deploy-prod", "deploy-nonprod", "update-status"
    ]
    assert [t.identifier for t in workflow.triggers()] == ["trigger"]
    branch = workflow.connections[1]
    assert (branch.sourceIdentifier, branch.sourceOptionIdentifier) == ("check-env", "production")
    assert [c.identifier for c in workflow.connections] == ["c0", "c1", "c2", "c3", "c4"]


def test_the_verbatim_port_example_fails_only_on_what_stepline_does_not_support() -> None:
    issues = validate_definition(port_example())
    assert [i.pointer for i in issues] == ["/nodes/4/config/mapping/properties/lastDeployedAt"]
    assert '{{ now | date "2006-01-02T15:04:05Z" }}' in issues[0].message


def test_parse_does_not_modify_the_submitted_document() -> None:
    doc = deploy_service()
    before = copy.deepcopy(doc)
    parse_workflow(doc)
    assert doc == before


def test_stepline_extensions_are_accepted() -> None:
    doc = deploy_service()
    prod = _node(doc, "deploy-prod")
    prod.update(retry={"maxAttempts": 3, "initialIntervalSeconds": 1, "backoffCoefficient": 2},
                timeoutSeconds=30, onFailure="continue", variables={"id": "{{ .response.data.id }}"})
    doc["nodes"].append({"identifier": "on-error", "config": {"type": "NOOP"}})
    doc["nodes"].append({"identifier": "summary", "config": {"type": "TRANSFORM", "expression": ".outputs | keys"}})
    doc["connections"].append({"sourceIdentifier": "deploy-prod", "targetIdentifier": "on-error", "onFailure": True})
    doc["connections"].append({"sourceIdentifier": "update-status", "targetIdentifier": "summary"})
    workflow = parse_workflow(doc)
    assert workflow.node("deploy-prod").max_attempts == 3
    assert workflow.connections[5].onFailure is True


# ------------------------------------------------------------------------------ three condition shapes


def _shape_options() -> Doc:
    return deploy_service()


def _shape_outlets() -> Doc:
    doc = deploy_service()
    config = _node(doc, "check-env")["config"]
    config["outlets"] = config.pop("options")
    for conn in doc["connections"][1:3]:
        conn["sourceOutletIdentifier"] = conn.pop("sourceOptionIdentifier")
    return doc


def _shape_conditions() -> Doc:
    doc = deploy_service()
    config = _node(doc, "check-env")["config"]
    options = config.pop("options")
    config["conditions"] = [
        {"identifier": options[0]["identifier"], "title": "Production", "expression": options[0]["expression"],
         "connectionIdentifier": "to-prod"},
        {"identifier": options[1]["identifier"], "title": "Non-Production",
         "expression": options[1]["expression"], "connectionIdentifier": "to-nonprod"},
    ]
    config["defaultConnectionIdentifier"] = "to-manual"
    doc["connections"][1] = {"identifier": "to-prod", "sourceIdentifier": "check-env", "targetIdentifier": "deploy-prod"}
    doc["connections"][2] = {"identifier": "to-nonprod", "sourceIdentifier": "check-env",
                             "targetIdentifier": "deploy-nonprod"}
    return doc


def _with_fallback(doc: Doc, legacy: bool) -> Doc:
    doc["nodes"].append({"identifier": "manual", "config": {"type": "NOOP"}})
    conn: Doc = {"sourceIdentifier": "check-env", "targetIdentifier": "manual"}
    conn.update({"identifier": "to-manual"} if legacy else {"fallback": True})
    doc["connections"].append(conn)
    return doc


def _branches(workflow: Workflow) -> tuple[list[tuple[str, str]], list[tuple[str, str, str | None, bool]]]:
    options = [(o["identifier"], o["expression"]) for o in workflow.node("check-env").config["options"]]
    edges = [(c.sourceIdentifier, c.targetIdentifier, c.sourceOptionIdentifier, c.fallback)
             for c in workflow.connections]
    return options, edges


def test_all_three_condition_shapes_normalise_to_the_same_options_and_edges() -> None:
    canonical = _branches(parse_workflow(_with_fallback(_shape_options(), legacy=False)))
    outlets = _branches(parse_workflow(_with_fallback(_shape_outlets(), legacy=False)))
    conditions = _branches(parse_workflow(_with_fallback(_shape_conditions(), legacy=True)))
    assert canonical == outlets == conditions
    options, edges = canonical
    assert [o[0] for o in options] == ["production", "non-production"]
    assert ("check-env", "deploy-prod", "production", False) in edges
    assert ("check-env", "manual", None, True) in edges


def test_older_conditions_without_identifiers_get_generated_ones() -> None:
    doc = _shape_conditions()
    for cond in _node(doc, "check-env")["config"]["conditions"]:
        del cond["identifier"]
    del _node(doc, "check-env")["config"]["defaultConnectionIdentifier"]
    workflow = parse_workflow(doc)
    assert [o["identifier"] for o in workflow.node("check-env").config["options"]] == ["condition-0", "condition-1"]
    assert workflow.connections[1].sourceOptionIdentifier == "condition-0"


def test_generated_connection_identifiers_never_collide_with_given_ones() -> None:
    doc = deploy_service()
    doc["connections"][0]["identifier"] = "c1"
    workflow = parse_workflow(doc)
    identifiers = [c.identifier for c in workflow.connections]
    assert identifiers[0] == "c1"
    assert len(set(identifiers)) == len(identifiers)


def test_normalize_is_idempotent() -> None:
    once = normalize(_with_fallback(_shape_conditions(), legacy=True))
    assert normalize(once) == once


# ----------------------------------------------------------------------- one rule, one exact pointer

Mutation = Callable[[Doc], Any]


def _set_config(node: str, **fields: Any) -> Mutation:
    return lambda doc: _node(doc, node)["config"].update(fields)


def _add_connection(**conn: Any) -> Mutation:
    return lambda doc: doc["connections"].append(conn)


def _add_node(node: Doc) -> Mutation:
    return lambda doc: doc["nodes"].append(node)


def _set(node: str, **fields: Any) -> Mutation:
    return lambda doc: _node(doc, node).update(fields)


def _replace_option_expression(doc: Doc) -> None:
    _node(doc, "check-env")["config"]["options"][0]["expression"] = ".outputs.trigger.environment =="


RULES: list[tuple[str, Mutation, str, str]] = [
    # structure (pydantic)
    ("nodes missing", lambda d: d.pop("nodes"), "/nodes", "nodes is required"),
    ("node config missing", lambda d: d["nodes"][1].pop("config"), "/nodes/1/config", "is required"),
    ("retry attempts", _set("deploy-prod", retry={"maxAttempts": 0}), "/nodes/2/retry/maxAttempts",
     "greater than or equal to 1"),
    ("retry field", _set("deploy-prod", retry={"attempts": 2}), "/nodes/2/retry/attempts", "not an allowed field"),
    ("timeout", _set("deploy-prod", timeoutSeconds=-1), "/nodes/2/timeoutSeconds", "greater than 0"),
    ("onFailure", _set("deploy-prod", onFailure="explode"), "/nodes/2/onFailure", "'terminate' or 'continue'"),
    ("unknown node field", _set("deploy-prod", colour="red"), "/nodes/2/colour", "not an allowed field"),
    ("connection end missing", lambda d: d["connections"][0].pop("targetIdentifier"),
     "/connections/0/targetIdentifier", "is required"),
    ("connections not a list", lambda d: d.update(connections={"a": 1}), "/connections", "must be an array"),
    ("variables not an object", _set("deploy-prod", variables=["x"]), "/nodes/2/variables", "must be an object"),
    # identifiers
    ("workflow identifier chars", lambda d: d.update(identifier="deploy service"), "/identifier",
     "letters, digits and @ _ : -"),
    ("workflow identifier length", lambda d: d.update(identifier="x" * 61), "/identifier", "at most 60"),
    ("node identifier chars", _set("deploy-nonprod", identifier="deploy/nonprod"), "/nodes/3/identifier",
     "letters, digits"),
    ("duplicate node identifier", _set("deploy-nonprod", identifier="deploy-prod"), "/nodes/3/identifier",
     "duplicate node identifier 'deploy-prod' (also at /nodes/2)"),
    ("duplicate connection identifier", lambda d: [c.update(identifier="same") for c in d["connections"][:2]],
     "/connections/1/identifier", "duplicate connection identifier 'same'"),
    # triggers
    ("no trigger", lambda d: d["nodes"][0]["config"].update(type="NOOP") or d["nodes"][0]["config"].pop("userInputs"),
     "/nodes", "at least one trigger"),
    ("trigger with incoming", _add_connection(sourceIdentifier="deploy-prod", targetIdentifier="trigger"),
     "/connections/5/targetIdentifier", "trigger node 'trigger' cannot have incoming connections"),
    # connection ends, loops, cycles
    ("unknown target", lambda d: d["connections"][3].update(targetIdentifier="nowhere"),
     "/connections/3/targetIdentifier", "there is no node 'nowhere'"),
    ("unknown source", lambda d: d["connections"][3].update(sourceIdentifier="nowhere"),
     "/connections/3/sourceIdentifier", "there is no node 'nowhere'"),
    ("self-loop", _add_connection(sourceIdentifier="update-status", targetIdentifier="update-status"),
     "/connections/5/targetIdentifier", "to itself"),
    ("cycle", _add_connection(sourceIdentifier="update-status", targetIdentifier="deploy-prod"),
     "/connections/5", "cycle: deploy-prod → update-status → deploy-prod"),
    # branches
    ("condition edge without option", lambda d: d["connections"][1].pop("sourceOptionIdentifier"),
     "/connections/1", "must name one of its options in sourceOptionIdentifier (production, non-production)"),
    ("unknown option", lambda d: d["connections"][1].update(sourceOptionIdentifier="prod"),
     "/connections/1/sourceOptionIdentifier", "CONDITION node 'check-env' has no option 'prod'"),
    ("second fallback", lambda d: d["connections"].extend([
        {"sourceIdentifier": "check-env", "targetIdentifier": "deploy-prod", "fallback": True},
        {"sourceIdentifier": "check-env", "targetIdentifier": "deploy-nonprod", "fallback": True}]),
     "/connections/6/fallback", "already has a fallback connection (/connections/5)"),
    ("option and fallback", lambda d: d["connections"][1].update(fallback=True), "/connections/1/fallback",
     "both name an option and be the fallback"),
    ("error branch naming an option", lambda d: d["connections"][1].update(onFailure=True),
     "/connections/1/onFailure", "cannot also name an option"),
    ("option on a plain node", lambda d: d["connections"][3].update(sourceOptionIdentifier="production"),
     "/connections/3/sourceOptionIdentifier", "node 'deploy-prod' is a WEBHOOK node, not a CONDITION"),
    ("fallback on a plain node", lambda d: d["connections"][3].update(fallback=True), "/connections/3/fallback",
     "only connections leaving a CONDITION node can be a fallback"),
    ("duplicate option", lambda d: _node(d, "check-env")["config"]["options"][1].update(identifier="production"),
     "/nodes/1/config/options/1/identifier", "duplicate option identifier 'production'"),
    ("option identifier chars", lambda d: _node(d, "check-env")["config"]["options"][1].update(identifier="non prod"),
     "/nodes/1/config/options/1/identifier", "must be an identifier"),
    # configs against their type's schema
    ("webhook url missing", lambda d: _node(d, "deploy-prod")["config"].pop("url"), "/nodes/2/config/url",
     "config.url is required"),
    ("webhook method", _set_config("deploy-prod", method="FETCH"), "/nodes/2/config/method",
     "config.method must be one of GET, POST, PUT, PATCH, DELETE"),
    ("webhook header", _set_config("deploy-prod", headers={"X-Count": 3}), "/nodes/2/config/headers/X-Count",
     "must be a string"),
    ("webhook synchronized", _set_config("deploy-prod", synchronized="yes"), "/nodes/2/config/synchronized",
     "must be a boolean"),
    ("unknown type", _set_config("deploy-prod", type="SEND_FAX"), "/nodes/2/config/type",
     "unknown node type 'SEND_FAX'; known: "),
    ("type missing", lambda d: _node(d, "deploy-prod")["config"].pop("type"), "/nodes/2/config/type",
     "config.type is required"),
    ("condition without options", _set_config("check-env", options=[]), "/nodes/1/config/options",
     "at least 1 item"),
    ("closed type with extra field", _add_node({"identifier": "n", "config": {"type": "NOOP", "x": 1}}),
     "/nodes/5/config/x", "not an allowed field"),
    ("button text", _set_config("trigger", executeActionButtonText="Deploy it right now"),
     "/nodes/0/config/executeActionButtonText", "1–15 characters"),
    ("required input undeclared", lambda d: d["nodes"][0]["config"]["userInputs"]["required"].append("region"),
     "/nodes/0/config/userInputs/required/3", "undeclared input 'region'"),
    ("input type", lambda d: d["nodes"][0]["config"]["userInputs"]["properties"]["version"].update(type="text"),
     "/nodes/0/config/userInputs/properties/version/type", "must be one of string, number"),
    ("transform needs one of", _add_node({"identifier": "t", "config": {"type": "TRANSFORM"}}),
     "/nodes/5/config", "exactly one of `expression` and `output`"),
    # jq
    ("bad template", _set_config("deploy-prod", body={"service": "{{ .foo | }}"}),
     "/nodes/2/config/body/service", "invalid jq in template {{ .foo | }}: syntax error"),
    ("bad template in url", _set_config("deploy-prod", url="https://x/{{ .a[ }}"), "/nodes/2/config/url",
     "invalid jq in template"),
    ("bad template in variables", _set("deploy-prod", variables={"id": "{{ .response.data. | }}"}),
     "/nodes/2/variables/id", "invalid jq in template"),
    ("bad option expression", _replace_option_expression, "/nodes/1/config/options/0/expression",
     "invalid jq expression: syntax error"),
    ("bad transform expression", _add_node({"identifier": "t", "config": {"type": "TRANSFORM", "expression": "map("}}),
     "/nodes/5/config/expression", "invalid jq expression"),
]


@pytest.mark.parametrize(("name", "mutate", "pointer", "message"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_reports_an_issue_at_the_exact_pointer(
    name: str, mutate: Mutation, pointer: str, message: str
) -> None:
    doc = deploy_service()
    mutate(doc)
    issues = validate_definition(doc)
    matching = [i for i in issues if i.pointer == pointer]
    assert matching, f"no issue at {pointer}; got {issues}"
    assert any(message in i.message for i in matching), matching
    with pytest.raises(DefinitionError):
        parse_workflow(doc)


def test_a_definition_must_be_an_object() -> None:
    assert validate_definition(["not", "an", "object"]) == [Issue("", "a workflow definition must be a JSON object")]
    with pytest.raises(DefinitionError):
        parse_workflow("text")


def test_an_error_branch_from_a_condition_needs_no_option() -> None:
    doc = deploy_service()
    doc["nodes"].append({"identifier": "alert", "config": {"type": "NOOP"}})
    doc["connections"].append({"sourceIdentifier": "check-env", "targetIdentifier": "alert", "onFailure": True})
    assert validate_definition(doc) == []


def test_a_longer_cycle_reports_its_whole_path() -> None:
    doc = deploy_service()
    doc["nodes"] += [{"identifier": n, "config": {"type": "NOOP"}} for n in ("a", "b", "c")]
    doc["connections"] += [
        {"sourceIdentifier": "update-status", "targetIdentifier": "a"},
        {"sourceIdentifier": "a", "targetIdentifier": "b"},
        {"sourceIdentifier": "b", "targetIdentifier": "c"},
        {"sourceIdentifier": "c", "targetIdentifier": "a"},
    ]
    assert [(i.pointer, i.message) for i in validate_definition(doc)] == [
        ("/connections/8", "connections form a cycle: a → b → c → a")
    ]


# ------------------------------------------------------------------ pointers into the submitted shape


def test_issues_in_later_outlets_point_at_outlets() -> None:
    doc = _shape_outlets()
    _node(doc, "check-env")["config"]["outlets"][0]["expression"] = ".x |"
    doc["connections"][2]["sourceOutletIdentifier"] = "staging"
    pointers = {i.pointer for i in validate_definition(doc)}
    assert pointers == {"/nodes/1/config/outlets/0/expression", "/connections/2/sourceOutletIdentifier"}


def test_issues_in_older_conditions_point_at_conditions() -> None:
    doc = _with_fallback(_shape_conditions(), legacy=True)
    conditions = _node(doc, "check-env")["config"]["conditions"]
    conditions[0]["expression"] = ".x |"
    conditions[1]["connectionIdentifier"] = "no-such-connection"
    _node(doc, "check-env")["config"]["defaultConnectionIdentifier"] = "c0"
    issues = {i.pointer: i.message for i in validate_definition(doc)}
    assert issues["/nodes/1/config/conditions/0/expression"].startswith("invalid jq expression")
    assert issues["/nodes/1/config/conditions/1/connectionIdentifier"] == "there is no connection 'no-such-connection'"
    assert issues["/nodes/1/config/defaultConnectionIdentifier"] == "connection 'c0' does not leave node 'check-env'"


def test_every_problem_is_reported_at_once() -> None:
    doc = deploy_service()
    doc["identifier"] = "bad id"
    _node(doc, "deploy-prod")["config"]["method"] = "FETCH"
    _node(doc, "deploy-nonprod")["config"]["body"]["service"] = "{{ .foo | }}"
    _node(doc, "update-status")["retry"] = {"maxAttempts": 0}
    doc["connections"][1]["sourceOptionIdentifier"] = "prod"
    doc["connections"].append({"sourceIdentifier": "update-status", "targetIdentifier": "ghost"})
    with pytest.raises(DefinitionError) as caught:
        parse_workflow(doc)
    pointers = [i.pointer for i in caught.value.issues]
    assert sorted(pointers) == sorted([
        "/identifier",
        "/nodes/2/config/method",
        "/nodes/3/config/body/service",
        "/nodes/4/retry/maxAttempts",
        "/connections/1/sourceOptionIdentifier",
        "/connections/5/targetIdentifier",
    ])
    assert "6 problems" in caught.value.message
    assert caught.value.details()[0].keys() == {"pointer", "message"}


def test_graph_rules_still_run_when_a_node_is_malformed() -> None:
    doc = deploy_service()
    doc["nodes"][2]["retry"] = "often"
    doc["connections"][3]["targetIdentifier"] = "ghost"
    pointers = {i.pointer for i in validate_definition(doc)}
    assert pointers == {"/nodes/2/retry", "/connections/3/targetIdentifier"}


def test_a_node_that_is_not_an_object_is_reported_once() -> None:
    doc = deploy_service()
    doc["nodes"].append("oops")
    assert [(i.pointer, i.message) for i in validate_definition(doc)] == [("/nodes/5", "nodes[5] must be an object")]


def test_issues_for_identical_documents_are_deterministic() -> None:
    doc = port_example()
    assert validate_definition(doc) == validate_definition(copy.deepcopy(doc))


def test_a_definition_without_nodes_reports_just_that() -> None:
    doc = deploy_service()
    del doc["nodes"]
    assert validate_definition(doc) == [Issue("/nodes", "nodes is required")]
