"""Every evaluation of a user expression in the services goes through libs.expressions: nothing
outside libs/core and libs/expressions imports jq or the in-process (unbounded) evaluators."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
UNBOUNDED = {
    "libs.core.templates": {"render", "evaluate", "first_true", "apply_variables", "compile_expression", "run_text"},
    "libs.core.waiting_nodes": {"render_config"},
}


def offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name == "jq"]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "jq" or (node.module == "libs.core" and any(a.name == "templates" for a in node.names)):
                found.append(f"from {node.module} import …")
            found += [f"{node.module}.{a.name}" for a in node.names if a.name in UNBOUNDED.get(node.module, ())]
    return found


def test_services_evaluate_only_through_the_bounded_evaluator() -> None:
    sources = [p for folder in ("services", "stepline", "libs") for p in (ROOT / folder).rglob("*.py")]
    allowed = (ROOT / "libs" / "core", ROOT / "libs" / "expressions")
    checked = [p for p in sources if not any(p.is_relative_to(a) for a in allowed)]
    assert len(checked) > 50
    bad = {str(p.relative_to(ROOT)): o for p in checked if (o := offences(p))}
    assert bad == {}
