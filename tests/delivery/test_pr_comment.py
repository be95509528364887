"""The PR comment built from head and base render directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ops import pr_comment
from ops.__main__ import main as ops_main

LT = "aws:ec2/launchTemplate:LaunchTemplate"
TAGS = {"tags": {"disagg.io/stack": "dev", "disagg.io/deployment": "dev", "ManagedBy": "pulumi"}}


def record(rtype: str, name: str, inputs: dict, stack: str = "dev") -> dict:
    return {
        "type": rtype, "name": name, "urn": f"urn:pulumi:{stack}::disagg::{rtype}::{name}", "parent": None,
        "provider": None, "custom": True, "remote": False, "dependencies": [], "inputs": inputs,
    }


def write_render(d: Path, stack: str, records: list[dict], manifests: dict[str, dict], summary: str = "") -> Path:
    (d / "manifests").mkdir(parents=True)
    (d / "resources.json").write_text(json.dumps({"project": "disagg", "stack": stack, "resources": records, "outputs": {}}))
    for name, doc in manifests.items():
        (d / "manifests" / name).write_text(yaml.safe_dump(doc, sort_keys=True))
    (d / "summary.md").write_text(summary or f"# disagg stack `{stack}`\n\n**2 of 2 GPUs requested**, about **$4.27/h**\n")
    return d


def lws(replicas: int, image: str = "vllm/vllm-openai:v0.11.0") -> dict:
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "decode"},
            "spec": {"replicas": replicas, "leaderWorkerTemplate": {"workerTemplate": {"spec": {"containers": [{"name": "vllm", "image": image}]}}}}}


def two_renders(tmp_path: Path) -> tuple[Path, Path]:
    head, base = tmp_path / "head", tmp_path / "base"
    ok_lt = {"metadataOptions": {"httpTokens": "required"}, **TAGS}
    write_render(base / "dev", "dev", [record(LT, "gpu", ok_lt), record("aws:ec2/vpc:Vpc", "gone", {"cidrBlock": "10.0.0.0/16", **TAGS})],
                 {"leaderworkerset-serving-decode.yaml": lws(1), "configmap-serving-old.yaml": {"kind": "ConfigMap", "data": {"a": "1"}}})
    write_render(head / "dev", "dev", [record(LT, "gpu", {"metadataOptions": {"httpTokens": "optional"}, **TAGS}), record("aws:ec2/vpc:Vpc", "new", {"cidrBlock": "10.1.0.0/16", **TAGS})],
                 {"leaderworkerset-serving-decode.yaml": lws(2), "service-serving-router.yaml": {"kind": "Service", "spec": {"type": "ClusterIP"}}})
    (head / "prod").mkdir(parents=True)
    (head / "prod" / "render.log").write_text("loading\nerror: disagg:gpuPools[0].nodes: must be at least 1 (got 0)\n")
    return head, base


def test_comment_has_marker_table_summary_policy_and_diff(tmp_path):
    head, base = two_renders(tmp_path)
    body = pr_comment.build(head, base, sha="a" * 40, base_sha="b" * 40, run_url="https://example.invalid/run/1")
    assert body.startswith(pr_comment.MARKER + "\n")
    assert "head `aaaaaaaaaaaa`" in body and "base `bbbbbbbbbbbb`" in body
    # Table: dev rendered with one policy violation and 3 manifest files changed; prod failed.
    assert "| `dev` | ✅ | ❌ 1 | 3 | +1 -1 ~1 |" in body
    assert "| `prod` | ❌ failed |" in body
    assert "**2 of 2 GPUs requested**" in body
    assert "launch-template-imdsv2" in body and "httpTokens" in body
    # The manifest diff: changed, added and removed files, as a unified diff.
    assert "-  replicas: 1\n+  replicas: 2" in body
    assert "--- /dev/null\n+++ b/manifests/service-serving-router.yaml" in body
    assert "--- a/manifests/configmap-serving-old.yaml\n+++ /dev/null" in body
    assert "added `aws:ec2/vpc:Vpc` new" in body and "removed `aws:ec2/vpc:Vpc` gone" in body
    assert "changed `aws:ec2/launchTemplate:LaunchTemplate` gpu (metadataOptions)" in body
    # The failed render shows its error.
    assert "The render failed" in body and "must be at least 1 (got 0)" in body


def test_no_base_render_diffs_against_nothing(tmp_path):
    head, _ = two_renders(tmp_path)
    body = pr_comment.build(head, None)
    assert "| `dev` | ✅ | ❌ 1 | 2 (no base) | +2 -0 ~0 |" in body
    assert "+++ b/manifests/leaderworkerset-serving-decode.yaml" in body


def test_identical_renders_say_so(tmp_path):
    head, base = two_renders(tmp_path)
    shutil.rmtree(base / "dev")
    shutil.copytree(head / "dev", base / "dev")
    body = pr_comment.build(head, base)
    assert "Manifests: no change against base." in body
    assert "| `dev` | ✅ | ❌ 1 | 0 | +0 -0 ~0 |" in body


def test_long_diffs_are_cut_but_the_summary_stays(tmp_path):
    head, base = two_renders(tmp_path)
    big = {"kind": "ConfigMap", "data": {f"k{i}": "x" * 80 for i in range(3000)}}
    (head / "dev" / "manifests" / "configmap-big.yaml").write_text(yaml.safe_dump(big))
    body = pr_comment.build(head, base, max_chars=8000)
    assert len(body) <= 8000
    assert "**2 of 2 GPUs requested**" in body and "Diff truncated" in body


def test_backticks_in_manifests_cannot_close_the_code_block(tmp_path):
    head, base = two_renders(tmp_path)
    (head / "dev" / "manifests" / "configmap-script.yaml").write_text("data:\n  readme: |\n    ```\n    </details>\n    ```\n")
    body = pr_comment.build(head, base)
    assert "````diff" in body


def test_cli_writes_the_body(tmp_path, capsys):
    head, base = two_renders(tmp_path)
    out = tmp_path / "comment" / "body.md"
    assert ops_main(["comment", "--head", str(head), "--base", str(base), "--out", str(out), "--sha", "c" * 40]) == 0
    assert out.read_text().startswith(pr_comment.MARKER)
    assert "head `cccccccccccc`" in out.read_text()


def test_comment_over_a_real_render(rendered, tmp_path):
    """The comment of the real dev render against itself with one manifest changed."""
    dev = rendered["dev"].out
    head, base = tmp_path / "head" / "dev", tmp_path / "base" / "dev"
    shutil.copytree(dev, head)
    shutil.copytree(dev, base)
    (head / "manifests" / "configmap-extra-probe.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: extra-probe\n")
    body = pr_comment.build(head.parent, base.parent)
    assert (dev / "summary.md").read_text().strip().splitlines()[0] in body
    assert "+++ b/manifests/configmap-extra-probe.yaml" in body
    assert "| `dev` | ✅ |" in body
