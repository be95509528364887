"""checkov (kubernetes framework, offline) over the rendered manifests, with the pod templates of LeaderWorkerSets and
PodCliqueSets lifted out into Pods (checkov skips custom resources; scripts/checkov_lift.py).

checkov runs from its own virtualenv (scripts/checkov.sh creates .venv-checkov): it pins a `packaging` that
conflicts with pulumi-aws. Every failure must be fixed or suppressed next to the code that needs it, with a reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "checkov.sh"
NO_VENV = 3  # scripts/checkov.sh: the checkov virtualenv could not be created
# lws and grove, single-node and multi-node (leader + worker templates), disaggregated and aggregated, EFA and not.
STACKS = ("prod", "grove", "dev", "glm5-wide-ep", "glm5-aggregated", "multinode-grove")


def _lift():
    spec = importlib.util.spec_from_file_location("checkov_lift", ROOT / "scripts" / "checkov_lift.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(dirs, env_extra=None):
    env = {**os.environ, "PYTHON": os.environ.get("CHECKOV_PYTHON", sys.executable), "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", **(env_extra or {})}
    return subprocess.run(["bash", str(SCRIPT), *map(str, dirs)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500)


def test_every_checkov_suppression_states_its_reason(rendered):
    lift = _lift()
    seen = 0
    for stack in STACKS:
        for name, doc in rendered[stack].manifests.items():
            metas = [doc.get("metadata", {})]
            tpl = doc.get("spec", {}).get("template")
            if isinstance(tpl, dict) and "metadata" in tpl:
                metas.append(tpl.get("metadata", {}))
            metas += [m for _, m, _ in lift.templates(doc)]
            for meta in metas:
                for key, value in (meta.get("annotations") or {}).items():
                    if key.startswith("checkov.io/skip"):
                        seen += 1
                        m = re.fullmatch(r"(CKV_K8S_\d+)=(.+)", value)
                        assert m and len(m.group(2).split()) >= 5, f"{stack}/{name}: {key} has no stated reason: {value!r}"
    assert seen, "no suppressions found: the router's and the engine pods' are expected"


def test_lifting_finds_every_pod_template(rendered, tmp_path):
    lift = _lift()
    r = rendered["glm5-wide-ep"]
    assert lift.lift(r.out / "manifests", tmp_path) == 4  # prefill and decode, leader and worker each
    pods = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("*.yaml"))]
    worker = next(p for p in pods if p["metadata"]["name"].endswith("prefill-worker"))
    assert worker["kind"] == "Pod" and worker["metadata"]["namespace"] == "glm5-wide-ep"
    assert worker["spec"]["containers"][0]["name"] == "engine"
    assert any(v.startswith("CKV_K8S_8=") for v in worker["metadata"]["annotations"].values())
    g = rendered["multinode-grove"]
    assert lift.lift(g.out / "manifests", tmp_path / "g") == 5  # two roles x leader/worker cliques + the router clique


def test_checkov_passes_on_every_pod_template_lws_and_grove(rendered):
    proc = _run([rendered[s].out / "manifests" for s in STACKS])
    if proc.returncode == NO_VENV:
        pytest.skip(f"the checkov virtualenv could not be created (no PyPI access?): {proc.stderr[-1500:]}")
    assert "kubernetes scan results" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("lifted ") == len(STACKS)
    assert proc.returncode == 0, f"checkov reports unsuppressed failures:\n{proc.stdout[-6000:]}"
    assert re.search(r"Failed checks: 0\b", proc.stdout), proc.stdout[-3000:]


def test_checkov_sees_a_lifted_template_without_its_suppressions(rendered, tmp_path):
    """Without the lift, checkov would pass an engine pod whatever it did; with it, stripping the reasons fails."""
    src = rendered["prod"].out / "manifests"
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in src.glob("leaderworkerset-*.yaml"):
        doc = yaml.safe_load(p.read_text())
        doc["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["annotations"] = {}
        (bare / p.name).write_text(yaml.safe_dump(doc))
    proc = _run([bare])
    if proc.returncode == NO_VENV:
        pytest.skip("the checkov virtualenv could not be created (no PyPI access?)")
    assert proc.returncode != 0 and "CKV_K8S_25" in proc.stdout, proc.stdout[-3000:]
