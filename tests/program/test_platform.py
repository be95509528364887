"""The platform in whole rendered stacks: pinned releases, their order, and custom resources after their CRDs."""

from __future__ import annotations

import pytest

from stacks.versions import pin

RELEASE = "kubernetes:helm.sh/v3:Release"
CR_PREFIX = "kubernetes:"
PLATFORM = "disagg:platform:Platform"
# Which add-on's release installs the CRD of each custom resource kind.
CRD_RELEASE = {
    ("scheduling.run.ai/v2", "Queue"): "kai-scheduler",
    ("kai.scheduler/v1alpha1", "Topology"): "kai-scheduler",
    ("grove.io/v1alpha1", "ClusterTopologyBinding"): "grove",
    ("mellanox.com/v1alpha1", "NicClusterPolicy"): "network-operator",
}


def releases(r) -> dict[str, dict]:
    """Helm release name -> record."""
    out = {rec["inputs"]["name"]: rec for rec in r.of_type(RELEASE)}
    assert len(out) == len(r.of_type(RELEASE)), "two releases share a Helm release name"
    return out


def manifests_of_kind(r, kind: str) -> list[dict]:
    return [m for m in r.manifests.values() if m.get("kind") == kind]


@pytest.mark.parametrize(
    "stack,required",
    [
        ("prod", ["gpu-operator", "aws-efa-k8s-device-plugin", "kai-scheduler", "lws", "grove"]),
        ("grove", ["gpu-operator", "aws-efa-k8s-device-plugin", "kai-scheduler", "grove"]),
        ("network-operator", ["gpu-operator", "network-operator", "kai-scheduler", "lws"]),
    ],
)
def test_one_pinned_release_per_required_addon(rendered, stack, required):
    rel = releases(rendered[stack])
    for key in required:
        assert key in rel, f"{stack}: no release {key}"
        inputs, p = rel[key]["inputs"], pin(key)
        assert (inputs["chart"], inputs["version"]) == (p.chart, p.version), key
        if p.repository:
            assert inputs["repositoryOpts"]["repo"] == p.repository
        else:
            assert inputs["chart"].startswith("oci://") and not inputs.get("repositoryOpts")


def test_every_release_is_pinned_and_waits(rendered):
    for name, r in rendered.items():
        for key, rec in releases(r).items():
            inputs = rec["inputs"]
            assert inputs["version"] == pin(key).version, f"{name}/{key}"
            assert inputs["skipAwait"] is False and inputs["atomic"] is False and inputs["cleanupOnFail"] is True
            assert inputs["timeout"] == (1800 if key in ("gpu-operator", "network-operator") else 600)


def test_prod_installs_no_network_operator(rendered):
    rel = releases(rendered["prod"])
    assert "network-operator" not in rel
    assert not manifests_of_kind(rendered["prod"], "NicClusterPolicy")


def test_grove_follows_the_workload_api_unless_switched_on(rendered):
    """dev serves with LWS and leaves Grove out; prod serves with LWS but installs Grove explicitly."""
    assert "grove" not in releases(rendered["dev"])
    assert not manifests_of_kind(rendered["dev"], "ClusterTopologyBinding")
    assert "grove" in releases(rendered["prod"])


def test_network_operator_stack_has_no_efa_plugin_but_a_nic_cluster_policy(rendered):
    r = rendered["network-operator"]
    assert "aws-efa-k8s-device-plugin" not in releases(r)
    (ncp,) = manifests_of_kind(r, "NicClusterPolicy")
    assert ncp["metadata"]["name"] == "nic-cluster-policy"


def test_kubernetes_children_use_the_stack_provider_and_sit_under_the_platform(rendered):
    for name, r in rendered.items():
        (platform,) = r.of_type(PLATFORM)
        provider = r.one("pulumi:providers:kubernetes")
        children = [rec for rec in r.records if rec["parent"] == platform["urn"]]
        assert children
        for rec in children:
            if rec["type"].startswith("kubernetes:"):
                assert rec["provider"] and rec["provider"].startswith(provider["urn"] + "::"), f"{name}: {rec['name']}"


def test_every_custom_resource_depends_on_the_release_installing_its_crd(rendered):
    checked = set()
    for name, r in rendered.items():
        rel = releases(r)
        for rec in r.records:
            kind = (rec["inputs"].get("apiVersion"), rec["inputs"].get("kind"))
            if not rec["type"].startswith(CR_PREFIX) or kind not in CRD_RELEASE:
                continue
            key = CRD_RELEASE[kind]
            assert rel[key]["urn"] in rec["dependencies"], f"{name}: {kind[1]} {rec['name']} does not depend on {key}"
            checked.add(kind[1])
    assert checked == {"Queue", "Topology", "ClusterTopologyBinding", "NicClusterPolicy"}


def test_leaf_queue_after_parent_and_binding_after_topology(rendered):
    r = rendered["grove"]
    by_kind = {}
    for rec in r.records:
        by_kind.setdefault(rec["inputs"].get("kind"), []).append(rec)
    queues = {q["inputs"]["metadata"]["name"]: q for q in by_kind["Queue"]}
    leaf = next(q for q in queues.values() if q["inputs"]["spec"].get("parentQueue"))
    assert queues[leaf["inputs"]["spec"]["parentQueue"]]["urn"] in leaf["dependencies"]
    (topology,) = by_kind["Topology"]
    (ctb,) = by_kind["ClusterTopologyBinding"]
    assert topology["urn"] in ctb["dependencies"]


def test_prod_serving_queue_quota_is_the_16_gpus(rendered):
    r = rendered["prod"]
    leaf = [q for q in manifests_of_kind(r, "Queue") if q["spec"].get("parentQueue")]
    assert len(leaf) == 1
    assert leaf[0]["metadata"]["name"] == "serving"
    assert leaf[0]["spec"]["resources"]["gpu"]["quota"] == 16 == r.summary["gpus_provisioned"]


def test_topology_and_binding_manifests_exist(rendered):
    (topology,) = manifests_of_kind(rendered["prod"], "Topology")
    assert topology["spec"]["levels"][-1] == {"nodeLabel": "kubernetes.io/hostname"}
    (ctb,) = manifests_of_kind(rendered["prod"], "ClusterTopologyBinding")
    assert [lvl["key"] for lvl in ctb["spec"]["levels"]] == [lvl["nodeLabel"] for lvl in topology["spec"]["levels"]]


def node_groups(r) -> list[dict]:
    """Node group registrations below the node pool components (remote pulumi-eks components or aws NodeGroups)."""
    pools = {rec["urn"] for rec in r.records if rec["type"] in ("disagg:aws:SystemNodePool", "disagg:aws:GpuNodePool")}
    return [rec for rec in r.records if rec["parent"] in pools and rec["type"] in ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")]


def test_every_release_and_namespace_comes_after_every_node_group(rendered):
    for name, r in rendered.items():
        if r.summary.get("node_provisioning", "managedNodeGroups") != "managedNodeGroups":
            continue  # GPU pools of Karpenter / EKS Auto Mode: tests/program/test_node_provisioning.py
        groups = node_groups(r)
        assert len(groups) == 1 + len(r.summary["gpu_pools"]), f"{name}: node groups not found: {[g['name'] for g in groups]}"
        (platform,) = r.of_type(PLATFORM)
        roots = [rec for rec in r.records if rec["parent"] == platform["urn"] and rec["type"] in (RELEASE, "kubernetes:core/v1:Namespace")]
        assert roots
        for rec in roots:
            missing = [g["name"] for g in groups if g["urn"] not in rec["dependencies"]]
            assert not missing, f"{name}: {rec['name']} does not wait for {missing}"


def test_releases_wait_for_their_namespace_and_predecessors(rendered):
    r = rendered["grove"]
    rel = releases(r)
    namespaces = {rec["inputs"]["metadata"]["name"]: rec for rec in r.of_type("kubernetes:core/v1:Namespace")}
    for key, rec in rel.items():
        ns = rec["inputs"]["namespace"]
        if ns != "kube-system":
            assert namespaces[ns]["urn"] in rec["dependencies"], key
            assert rec["inputs"]["createNamespace"] is False
    assert rel["gpu-operator"]["urn"] in rel["kai-scheduler"]["dependencies"]
    assert rel["kai-scheduler"]["urn"] in rel["grove"]["dependencies"]


def test_load_balancer_controller_waits_for_its_pod_identity(rendered):
    r = rendered["prod"]
    lbc = releases(r)["aws-load-balancer-controller"]
    assoc = [a for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") if a["inputs"]["serviceAccount"] == "aws-load-balancer-controller"]
    assert len(assoc) == 1 and assoc[0]["inputs"]["namespace"] == lbc["inputs"]["namespace"] == "kube-system"
    assert assoc[0]["urn"] in lbc["dependencies"]
    values = lbc["inputs"]["values"]
    assert values["serviceAccount"]["name"] == "aws-load-balancer-controller"
    assert values["vpcId"].startswith("vpc-") and values["clusterName"] == r.summary["cluster_name"]
