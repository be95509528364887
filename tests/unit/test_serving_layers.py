"""The serving layer's edges: it imports nothing of `stacks` (it takes a ServingSpec), and only the vLLM engine module
knows vLLM (the engine seam a second engine plugs into)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

SERVING = [ROOT / "components" / "serving.py", *sorted((ROOT / "components" / "builders" / "serving").glob("*.py"))]
# vllm.py is the engine; vllm_router.py is its router, imported by vllm.py alone; engine.py's registry imports the
# built-in engine modules so they register.
VLLM_MODULES = {"components.builders.serving.vllm", "components.builders.serving.vllm_router"}
MAY_IMPORT_VLLM = {"vllm.py", "engine.py"}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_the_serving_layer_never_imports_stacks():
    bad = {p.name: sorted(m for m in imports(p) if m == "stacks" or m.startswith("stacks.")) for p in SERVING}
    assert {k: v for k, v in bad.items() if v} == {}


def test_only_the_vllm_engine_module_imports_vllm_specifics():
    bad = {p.name: sorted(imports(p) & VLLM_MODULES) for p in SERVING if p.name not in MAY_IMPORT_VLLM}
    assert {k: v for k, v in bad.items() if v} == {}
    # and the router module is reached only through the engine
    assert "components.builders.serving.vllm_router" in imports(ROOT / "components" / "builders" / "serving" / "vllm.py")


def test_the_checks_see_an_upward_import(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("from stacks.plan import role_plan\nfrom components.builders.serving import vllm\n")
    assert "stacks.plan" in imports(p) and "components.builders.serving.vllm" in imports(p)
