"""The mock harness stays shallow on large stacks, so renders are green every time, not most times."""

from __future__ import annotations

import copy
import subprocess
import sys

from tests.conftest import BASE, ROOT, stack_file

# With the stock monitor's way of answering (pumping the event loop from inside a registration), registrations
# nest and a 32-pool stack needed ~1000 frames in some runs (1 in 6 hit RecursionError at the default limit).
# At this limit that design fails every time; the harness must not come near it.
SHALLOW_LIMIT = 300


def test_large_stack_renders_within_a_shallow_stack(tmp_path):
    cfg = copy.deepcopy(BASE)
    cfg["gpuPools"] = [
        {"name": f"{role}-{i}", "role": role, "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]}
        for role in ("prefill", "decode")
        for i in range(16)
    ]
    cfg["serving"]["prefill"]["replicas"] = 32
    cfg["serving"]["decode"]["replicas"] = 64
    path = stack_file(tmp_path / "Pulumi.big.yaml", cfg)
    code = (
        f"import sys, runpy; sys.setrecursionlimit({SHALLOW_LIMIT}); "
        f"sys.argv = ['render', '--config', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]; "
        "runpy.run_module('stacks.render', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RecursionError" not in proc.stderr
    assert (tmp_path / "out" / "summary.json").is_file()
