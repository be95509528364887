"""The PR comment built from head and base render directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ops import pr_comment
from ops.__main__ import main as ops_main
from facts.catalog import instance_type
from tests.conftest import ROOT, render

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


def test_comment_has_marker_summary_policy_and_diff(tmp_path):
    head, base = two_renders(tmp_path)
    body = pr_comment.build(head, base, sha="a" * 40, base_sha="b" * 40, run_url="https://example.invalid/run/1")
    assert body.startswith(pr_comment.MARKER + "\n")
    assert "head `aaaaaaaaaaaa`" in body and "base `bbbbbbbbbbbb`" in body
    # dev rendered with one policy violation and 3 manifest files changed; prod failed.
    assert "Resources +1 -1 ~1, 3 manifest(s) changed, policy ❌ 1." in body
    assert "| `prod` | ❌ render failed |" in body
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
    assert "No base render: everything is new, resources +2 -0 ~0, 2 manifest(s) changed" in body
    assert "+++ b/manifests/leaderworkerset-serving-decode.yaml" in body


def test_identical_renders_collapse_to_one_line(tmp_path, rendered):
    dev = rendered["dev"].out
    for side in ("head", "base"):
        shutil.copytree(dev, tmp_path / side / "dev")
    body = pr_comment.build(tmp_path / "head", tmp_path / "base")
    fig = rendered["dev"].summary
    assert f"- `dev`: no change against base (${fig['hourly_cost_usd']:,.2f}/h, {fig['gpus_provisioned']} GPUs on" in body
    assert "### `dev`" not in body and "What it costs" not in body and "Manifest diff" not in body


def test_long_diffs_are_cut_but_the_cost_table_stays(tmp_path, rendered):
    shutil.copytree(rendered["dev"].out, tmp_path / "base" / "dev")
    shutil.copytree(rendered["prod"].out, tmp_path / "head" / "dev")  # every figure and manifest differs
    big = {"kind": "ConfigMap", "data": {f"k{i}": "x" * 80 for i in range(3000)}}
    (tmp_path / "head" / "dev" / "manifests" / "configmap-big.yaml").write_text(yaml.safe_dump(big))
    body = pr_comment.build(tmp_path / "head", tmp_path / "base", max_chars=12000)
    assert len(body) <= 12000
    assert "| `dev` | $" in body and "Diff truncated" in body
    assert "Stack summaries left out" in body and "Summary of the head render" not in body
    roomy = pr_comment.build(tmp_path / "head", tmp_path / "base", max_chars=pr_comment.MAX_CHARS)
    assert len(roomy) <= pr_comment.MAX_CHARS and "Summary of the head render" in roomy


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
    assert "### `dev`" in body and "Cost unchanged ($" in body, "a manifest change without a cost change is not collapsed"
    assert "What it costs" not in body


# ---- "prod decode replicas 4 -> 6", from real renders ----------------------------------------------------------


def prod_with_more_decode(path: Path) -> Path:
    """Pulumi.prod.yaml as a PR would change it: two more decode replicas, and the decode pool a node larger to hold them."""
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    config = doc["config"]
    decode = config["disagg:serving"]["decode"]
    assert decode["replicas"] == 4, "the fixture starts from prod's 4 decode replicas"
    decode["replicas"] = 6
    (pool,) = [p for p in config["disagg:gpuPools"] if p["role"] == "decode"]
    pool["nodes"] += 1
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def decode_change(tmp_path: Path, rendered) -> tuple[Path, Path]:
    """Base: prod and dev as committed. Head: prod with decode replicas 4 -> 6, dev untouched. All real renders."""
    base, head = tmp_path / "base", tmp_path / "head"
    for name in ("prod", "dev"):
        shutil.copytree(rendered[name].out, base / name)
    shutil.copytree(rendered["dev"].out, head / "dev")
    proc = render(["--config", str(prod_with_more_decode(tmp_path / "Pulumi.prod.yaml")), "--out", str(head / "prod")])
    assert proc.returncode == 0, proc.stderr
    return head, base


def test_decode_replicas_4_to_6_shows_the_cost_the_gpus_and_the_packing_warning(tmp_path, rendered):
    head, base = decode_change(tmp_path, rendered)
    body = pr_comment.build(head, base, sha="a" * 40, base_sha="b" * 40)
    (tmp_path / "comment.md").write_text(body)
    p5 = instance_type("p5.48xlarge").on_demand_usd_per_hour  # one more p5 node: the catalog's price, not a typed figure
    rise = f"+${p5:,.2f}"
    assert rise == "+$55.04", "the issue's figure; if the catalog price moved, this test moves with it"
    before, after = rendered["prod"].summary, json.loads((head / "prod" / "summary.json").read_text())
    assert round(after["hourly_cost_usd"] - before["hourly_cost_usd"], 2) == p5

    row = next(line for line in body.splitlines() if line.startswith("| `prod` |"))
    assert f"${before['hourly_cost_usd']:,.2f} → **${after['hourly_cost_usd']:,.2f}** ({rise})" in row
    assert f"({'+' if p5 >= 0 else ''}${p5 * 24:,.2f})" in row, "the $/day delta"
    assert "16 → **24** (+8)" in row, "the GPU delta: one more 8-GPU node"
    assert "5 → **6** (+1)" in row, "the node delta: 2 GPU + 3 system nodes before"
    assert "100% → **83%** (-17 pts)" in row

    assert f"⚠️ `prod` cost rises by **{rise}/h**" in body
    packing = next(line for line in body.splitlines() if "GPU packing drops" in line)
    assert "`prod`" in packing and "to **83%**, below 95%" in packing and "decode uses 12 of 16 GPUs (75%)" in packing
    assert f"4 of 24 GPUs idle (about ${4 * p5 / 8:,.2f}/h)" in packing

    # dev is untouched: one line, no table row, no section.
    assert "- `dev`: no change against base ($4.27/h, 2 GPUs on 4 nodes, 100% packing, policy ✅)." in body
    assert "| `dev` |" not in body and "### `dev`" not in body
    # The resource and manifest diff of prod follow.
    assert "changed `aws:eks/nodeGroup:NodeGroup` prod-decode-ng (scalingConfig)" in body
    assert "-  replicas: 4\n+  replicas: 6" in body
    assert len(body) < pr_comment.MAX_CHARS


def test_no_warning_when_the_change_saves_money_and_keeps_packing(tmp_path, rendered):
    head, base = decode_change(tmp_path, rendered)
    body = pr_comment.build(base, head)  # the same change reverted: 6 -> 4 replicas, one node fewer
    row = next(line for line in body.splitlines() if line.startswith("| `prod` |"))
    assert "(-$55.04)" in row and "83% → **100%** (+17 pts)" in row
    assert "[!WARNING]" not in body and "⚠️" not in body


def test_figures_read_from_summary_json_and_missing_figures_are_said(tmp_path, rendered):
    fig = pr_comment.figures(rendered["prod"].out)
    s = rendered["prod"].summary
    assert fig.hourly == s["hourly_cost_usd"] and fig.gpus == s["gpus_provisioned"] and fig.packing == s["gpu_packing"]
    assert fig.nodes == sum(p["nodes"] for p in s["gpu_pools"]) + s["system_pool"]["nodes"]
    assert fig.hourly_at_max == s["hourly_cost_at_max_usd"]
    (tmp_path / "summary.json").write_text("{}")
    assert pr_comment.figures(tmp_path) is None and pr_comment.figures(None) is None


def test_a_higher_autoscaling_ceiling_is_a_warning_of_its_own(tmp_path, rendered):
    base = tmp_path / "base" / "prod"
    shutil.copytree(rendered["prod"].out, base)
    head = tmp_path / "head" / "prod"
    shutil.copytree(base, head)
    s = json.loads((head / "summary.json").read_text())
    s["hourly_cost_at_max_usd"] += 110.08  # e.g. decode maxNodes +2 under karpenter: nothing more runs now, the ceiling moves
    (head / "summary.json").write_text(json.dumps(s))
    body = pr_comment.build(head.parent, base.parent)
    assert "cost at full scale-out (every GPU pool at maxNodes) rises by **+$110.08/h**" in body
    assert "cost rises by" not in body
