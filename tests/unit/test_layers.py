"""The layers import one way, and the conventions are defined once.

    facts       the instance catalog, versions table, LLM model catalog, conventions: imports nothing of ours
    components  ComponentResources and pure builders: imports facts only
    stacks      the stack (typed config, rules, plan, preflight, composition): imports components and facts
    tooling     offline render, harness, fakes, summary, docs, sizing planner: may import everything below
    ops         the operator CLI (verify, preflight, teardown, PR comment): may import everything below, and the
                CrossGuard policy pack (policy/) it runs

`__main__.py` (the Pulumi program) imports stacks only, and nothing it loads reaches tooling or ops. Every import
counts, function-level ones included: a late import that dodges a cycle is still an upward edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from facts import conventions

ROOT = Path(__file__).resolve().parents[2]
OURS = ("facts", "components", "stacks", "tooling", "ops", "tests", "policy", "scripts", "benchmarks")
# What each layer may import of ours (itself included).
ALLOWED = {
    "facts": {"facts"},
    "components": {"facts", "components"},
    "stacks": {"facts", "components", "stacks"},
    "tooling": {"facts", "components", "stacks", "tooling"},
    "ops": {"facts", "components", "stacks", "tooling", "ops", "policy"},  # policy: the CrossGuard pack it runs
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports (top-level and late), as (line, dotted name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, module in imports_of(path):
                top = module.split(".")[0]
                if top in OURS and top not in allowed:
                    bad.append(f"{path.relative_to(root)}:{line} imports {module} ({layer} may import {', '.join(sorted(allowed))})")
    return bad


def test_every_layer_imports_only_below_itself():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    # The rule is only worth something if it fails: one late import of stacks in a builder is caught.
    for layer in ALLOWED:
        (tmp_path / layer).mkdir()
    (tmp_path / "components" / "leak.py").write_text("def f():\n    from stacks.plan import role_plan\n    return role_plan\n")
    (tmp_path / "facts" / "leak.py").write_text("import components.builders\n")
    assert upward_imports(tmp_path) == [
        "facts/leak.py:1 imports components.builders (facts may import facts)",
        "components/leak.py:2 imports stacks.plan (components may import components, facts)",
    ]


def test_the_pulumi_program_never_loads_tooling_or_ops():
    # Loading the program's imports (not running it: that needs the engine) pulls in nothing beside the stack.
    code = (
        "import ast, importlib, json, sys; "
        "tree = ast.parse(open('__main__.py').read()); "
        "[importlib.import_module(n.module) for n in tree.body if isinstance(n, ast.ImportFrom)]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tooling', 'ops'))))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


CONVENTION_VALUES = {
    value: name
    for name, value in vars(conventions).items()
    if name.isupper() and isinstance(value, str) and ("/" in value or "." in value)
}


@pytest.mark.parametrize("layer", ["components", "stacks", "tooling", "ops"])
def test_conventions_are_defined_once(layer):
    # A module-level constant spelling a convention's value is a second definition that can drift.
    copies = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in CONVENTION_VALUES:
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno} repeats facts.conventions.{CONVENTION_VALUES[node.value.value]}")
    assert copies == []
