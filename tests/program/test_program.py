"""The whole program under the mock runtime: every stack file renders, and the graph has the right shape."""

from __future__ import annotations

import json

import yaml

from tests.conftest import ROOT, leaves, render, stack_file, stack_files


def test_every_stack_file_renders(rendered):
    names = {p.name[len("Pulumi."):-len(".yaml")] for p in stack_files()}
    assert {"dev", "prod"} <= names
    assert set(rendered) == names
    for name, r in rendered.items():
        for f in ("resources.json", "summary.json", "summary.md"):
            assert (r.out / f).is_file(), f"{name}: {f} missing"
        assert r.summary["resource_count"] == len(r.records)


def test_components_are_typed_and_parented_to_the_stack(rendered):
    r = rendered["prod"]
    top = {rec["type"] for rec in r.records if rec["parent"] and rec["parent"].endswith("::disagg-prod")}
    for t in ("disagg:aws:Network", "disagg:aws:Cluster", "disagg:aws:SystemNodePool", "disagg:aws:GpuNodePool", "disagg:platform:Platform", "disagg:serving:Serving"):
        assert t in top, f"{t} is not a top-level component"
    pools = sorted(rec["name"] for rec in r.of_type("disagg:aws:GpuNodePool"))
    assert pools == ["prod-decode", "prod-prefill"]


def test_every_resource_below_a_component(rendered):
    """Only components and providers sit at the stack root; everything else has a component parent."""
    for name, r in rendered.items():
        for rec in r.records:
            if rec["parent"] and rec["parent"].split("::")[-2] == "pulumi:pulumi:Stack":
                assert rec["type"].startswith(("disagg:", "pulumi:providers:")), f"{name}: {rec['type']} {rec['name']} has no component parent"


def test_aws_provider_region_and_required_tags(rendered):
    r = rendered["prod"]
    aws = r.one("pulumi:providers:aws")
    assert aws["inputs"]["region"] == "us-east-1"
    tags = json.loads(aws["inputs"]["defaultTags"])["tags"] if isinstance(aws["inputs"]["defaultTags"], str) else aws["inputs"]["defaultTags"]["tags"]
    assert tags["disagg.io/stack"] == "prod" and tags["disagg.io/deployment"] == "prod" and tags["ManagedBy"] == "pulumi"
    assert tags["environment"] == "prod"


def test_one_kubernetes_provider_with_plain_cluster_identifier(rendered):
    for name, r in rendered.items():
        k8s = r.one("pulumi:providers:kubernetes")
        assert k8s["inputs"]["clusterIdentifier"] == r.summary["cluster_name"], name
        assert k8s["inputs"]["kubeconfig"] in ("[secret]",) or "clusters" in k8s["inputs"]["kubeconfig"]


def test_kubeconfig_output_is_secret(rendered):
    for name, r in rendered.items():
        assert r.outputs.get("kubeconfig") == "[secret]", f"{name}: kubeconfig output must be secret"


def test_no_default_kubernetes_provider(rendered):
    """Pulumi.yaml disables default Kubernetes providers; the render must never have created one."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert "kubernetes" in project["config"]["pulumi:disable-default-providers"]["value"]
    for name, r in rendered.items():
        for rec in r.records:
            assert "default_" not in (rec["provider"] or ""), f"{name}: {rec['type']} {rec['name']} uses a default provider"


def test_prod_summary_matches_the_reference_layout(rendered):
    s = rendered["prod"].summary
    assert s["gpus_provisioned"] == 16 and s["gpus_requested"] == 16 and s["gpu_packing"] == 1.0
    assert s["roles"]["prefill"]["gpus_per_pod"] == 4 and s["roles"]["prefill"]["efa_per_pod"] == 16
    assert s["roles"]["decode"]["gpus_per_pod"] == 2 and s["roles"]["decode"]["efa_per_pod"] == 8
    assert all(p["efa_interfaces_per_node"] == 32 for p in s["gpu_pools"])
    assert s["kv_transfer"]["backend"] == "LIBFABRIC"
    assert 100 < s["hourly_cost_usd"] < 200


def test_dev_is_cheap_and_uses_ucx(rendered):
    s = rendered["dev"].summary
    assert s["kv_transfer"]["backend"] == "UCX"
    assert all(p["efa_interfaces_per_node"] == 0 for p in s["gpu_pools"])
    assert s["hourly_cost_usd"] < 15


def test_plaintext_secret_is_refused(tmp_path):
    from tests.conftest import BASE

    path = stack_file(tmp_path / "Pulumi.pt.yaml", {**BASE, "hfToken": "hf_plaintext"})
    proc = render(["--config", str(path), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2
    assert "disagg:hfToken" in proc.stderr and "--secret" in proc.stderr
    assert "hf_plaintext" not in proc.stderr


def test_render_is_byte_identical(tmp_path, rendered):
    """Same input, same bytes: a second run of prod in a fresh process matches the session's run."""
    proc = render(["--stack", "prod", "--out", str(tmp_path / "again")])
    assert proc.returncode == 0, proc.stderr
    first, second = rendered["prod"].out, tmp_path / "again"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f"{f} differs between runs"


def _whole_floats(value):
    return [p for p, v in leaves(value) if isinstance(v, float) and v.is_integer()]


def test_manifests_are_plain_kubernetes_objects(rendered):
    for name, r in rendered.items():
        for fname, doc in r.manifests.items():
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{name}/{fname}"
            assert doc["metadata"].get("name"), f"{name}/{fname} has no name"
            floats = list(_whole_floats(doc))
            assert not floats, f"{name}/{fname}: whole numbers written as floats at {floats}"


def test_unknown_stack_exits_2():
    proc = render(["--stack", "does-not-exist"])
    assert proc.returncode == 2 and "no such stack file" in proc.stderr


def test_readme_reference_and_schema_are_up_to_date():
    from tooling.docs import main

    assert main(["--check"]) == 0, "run `make docs`"


def test_records_carry_ids_that_references_resolve_to(rendered):
    """resources.json joins like real state: a GPU node group's subnets are recorded private subnets of its zone."""
    r = rendered["prod"]
    subnets = {rec["id"]: rec for rec in r.of_type("aws:ec2/subnet:Subnet")}
    assert subnets and all(sid.startswith("subnet-") for sid in subnets)
    gpu_groups = [rec for rec in r.of_type("aws:eks/nodeGroup:NodeGroup") if rec["inputs"].get("labels", {}).get("disagg.io/role") in ("prefill", "decode")]
    assert len(gpu_groups) == 2
    for ng in gpu_groups:
        for sid in ng["inputs"]["subnetIds"]:
            sn = subnets[sid]
            assert sn["inputs"].get("mapPublicIpOnLaunch") in (None, False), f"{ng['name']} uses a public subnet"
            assert sn["inputs"]["availabilityZone"] == "us-east-1a"


def test_summary_md_tells_people_what_they_pay_and_how_it_packs(rendered):
    prod = (rendered["prod"].out / "summary.md").read_text()
    assert "16 of 16 GPUs requested (100% packing)" in prod
    assert "| prefill | 2 (2) | 4 x 1 | 4 | 1 | 4 | 16 | 2 | 8 / 8 | 100% |" in prod
    assert "```mermaid" in prod and prod.count('("prefill-') == 2 and prod.count('("decode-') == 4
    assert "reserved capacity" not in prod
    reserved = (rendered["capacity-block"].out / "summary.md").read_text()
    assert "reserved capacity" in reserved, "reserved pools must not read as On-Demand spend without a word"


def test_engine_workloads_wait_for_the_gpu_node_groups_and_go_before_them(rendered):
    """The platform waits for the system pool only, so the engine workloads must name the GPU pools themselves: created
    once the nodes exist, deleted before a node group is drained (every workload kind, LWS and Grove)."""
    for stack in ("prod", "grove"):
        r = rendered[stack]
        node_groups = {x["urn"] for x in r.of_type("aws:eks/nodeGroup:NodeGroup") if "GpuNodePool" in x["urn"]}
        assert len(node_groups) == 2, stack
        workloads = [x for x in r.records if x["type"].endswith((":LeaderWorkerSet", ":PodCliqueSet"))]
        assert workloads, stack
        for w in workloads:
            assert node_groups <= set(w["dependencies"]), (stack, w["name"])
