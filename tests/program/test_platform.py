"""The platform in whole rendered stacks: pinned releases, their order, and custom resources after their CRDs."""

from __future__ import annotations

import pytest

from facts.versions import pin

RELEASE = "kubernetes:helm.sh/v3:Release"
CR_PREFIX = "kubernetes:"
PLATFORM = "disagg:platform:Platform"
# Which add-on's release installs the CRD of each custom resource kind.
CRD_RELEASE = {
    ("scheduling.run.ai/v2", "Queue"): "kai-scheduler",
    ("kai.scheduler/v1alpha1", "Topology"): "kai-scheduler",
    ("grove.io/v1alpha1", "ClusterTopologyBinding"): "grove",
    ("mellanox.com/v1alpha1", "NicClusterPolicy"): "network-operator",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "kube-prometheus-stack",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "kube-prometheus-stack",
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
    assert {"Queue", "Topology", "ClusterTopologyBinding", "NicClusterPolicy"} <= checked


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


def test_every_release_and_namespace_waits_for_the_system_nodes_only(rendered):
    """Controllers and hooks run on the system pool: the add-ons install while the GPU node groups come up."""
    for name, r in rendered.items():
        if r.summary.get("node_provisioning", "managedNodeGroups") != "managedNodeGroups":
            continue  # GPU pools of Karpenter / EKS Auto Mode: tests/program/test_node_provisioning.py
        groups = node_groups(r)
        assert len(groups) == 1 + len(r.summary["gpu_pools"]), f"{name}: node groups not found: {[g['name'] for g in groups]}"
        system = [g for g in groups if "-system" in g["name"]]
        gpu = [g for g in groups if g not in system]
        assert len(system) == 1 and gpu
        (platform,) = r.of_type(PLATFORM)
        roots = [rec for rec in r.records if rec["parent"] == platform["urn"] and rec["type"] in (RELEASE, "kubernetes:core/v1:Namespace")]
        assert roots
        for rec in roots:
            assert system[0]["urn"] in rec["dependencies"], f"{name}: {rec['name']} does not wait for the system node group"
            waits = [g["name"] for g in gpu if g["urn"] in rec["dependencies"]]
            assert not waits, f"{name}: {rec['name']} waits for GPU node groups {waits}"


def test_releases_wait_for_their_namespace_and_only_real_dependencies(rendered):
    r = rendered["grove"]
    rel = releases(r)
    namespaces = {rec["inputs"]["metadata"]["name"]: rec for rec in r.of_type("kubernetes:core/v1:Namespace")}
    for key, rec in rel.items():
        ns = rec["inputs"]["namespace"]
        if ns != "kube-system":
            assert namespaces[ns]["urn"] in rec["dependencies"], key
            assert rec["inputs"]["createNamespace"] is False
    release_urns = {rec["urn"]: key for key, rec in rel.items()}
    after = {key: {release_urns[d] for d in rec["dependencies"] if d in release_urns} for key, rec in rel.items()}
    # Grove watches KAI's Topology CRD only if it exists when Grove starts; nothing else orders the releases.
    assert after["grove"] == {"kai-scheduler"}
    assert all(not deps for key, deps in after.items() if key != "grove"), after
    assert rel["gpu-operator"]["inputs"]["disableOpenapiValidation"] is True


GATED = {"Queue": "kai-scheduler", "Topology": "kai-scheduler", "ClusterTopologyBinding": "grove"}


def gate_jobs(r) -> dict[str, dict]:
    return {rec["inputs"]["metadata"]["name"]: rec for rec in r.of_type("kubernetes:batch/v1:Job")}


def test_every_kai_and_grove_custom_resource_waits_for_its_webhook_gate(rendered):
    """First `up`: a Queue, Topology or ClusterTopologyBinding is created only after a Job has seen the operator's
    webhooks accept a dry run of it (Pulumi waits for a Job to complete)."""
    checked = set()
    for name, r in rendered.items():
        rel = releases(r)
        jobs = gate_jobs(r)
        for rec in r.records:
            kind = rec["inputs"].get("kind")
            if rec["type"] != "kubernetes:" + {"Queue": "scheduling.run.ai/v2", "Topology": "kai.scheduler/v1alpha1", "ClusterTopologyBinding": "grove.io/v1alpha1"}.get(kind, "-") + ":" + str(kind):
                continue
            operator = GATED[kind]
            gate = jobs[f"{operator}-webhook-gate"]
            assert gate["urn"] in rec["dependencies"], f"{name}: {kind} {rec['name']} does not wait for the {operator} gate"
            assert rel[operator]["urn"] in gate["dependencies"], f"{name}: the {operator} gate runs before its release"
            checked.add(kind)
    assert checked == set(GATED)


def test_gates_probe_the_webhooks_that_admit_the_objects(rendered):
    jobs = gate_jobs(rendered["grove"])
    import json

    spec = json.loads(jobs["kai-scheduler-webhook-gate"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["command"][-1])
    kinds = {p["object"]["kind"] for p in spec["probes"]}
    assert kinds == {"Queue", "Topology"}
    configs = {c.rsplit("/", 1)[1] for p in spec["probes"] for c in p["webhookConfigurations"]}
    assert configs == {"kai-queue-validation-v2", "validating-kai-admission"}
    assert all(p["path"].startswith("/apis/") for p in spec["probes"])


def test_kai_lws_and_grove_run_two_replicas_with_disruption_budgets(rendered):
    r = rendered["prod"]
    rel = releases(r)
    assert rel["kai-scheduler"]["inputs"]["values"]["operator"]["replicaCount"] == 2
    assert rel["lws"]["inputs"]["values"]["replicaCount"] == 2
    assert rel["grove"]["inputs"]["values"]["replicaCount"] == 2
    kai = rel["kai-scheduler"]["inputs"]["values"]
    for section in ("scheduler", "podgrouper", "admission"):  # KAI's operator creates these PDBs itself
        assert kai[section]["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    pdbs = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in manifests_of_kind(r, "PodDisruptionBudget")}
    for ns, name in [
        ("kai-scheduler", "kai-operator"), ("kai-scheduler", "binder"), ("kai-scheduler", "queue-controller"),
        ("kai-scheduler", "podgroup-controller"), ("lws-system", "lws-controller-manager"), ("grove-system", "grove-operator"),
    ]:
        assert pdbs[(ns, name)]["spec"]["maxUnavailable"] == 1, (ns, name)
    assert pdbs[("lws-system", "lws-controller-manager")]["spec"]["selector"]["matchLabels"]["control-plane"] == "controller-manager"
    # Spread over the system nodes: each replica prefers a node without another of its controller.
    anti = kai["global"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname" and anti["labelSelector"]["matchLabels"] == {"app": "kai-operator"}
    assert rel["grove"]["inputs"]["values"]["config"]["server"]["healthProbes"]["enable"] is True


def _pack_domains(pcs: dict) -> set[str]:
    t = pcs["spec"]["template"]
    out = set()
    for c in [*t["cliques"], *t.get("podCliqueScalingGroups", [])]:
        tc = c.get("topologyConstraint")
        if tc:
            out |= set(tc["pack"].values())
    return out


def test_g5_grove_packs_on_no_level_g5_nodes_lack(rendered):
    r = rendered["g5-grove"]
    (pcs,) = manifests_of_kind(r, "PodCliqueSet")
    names = {c["topologyConstraint"]["topologyName"] for c in pcs["spec"]["template"]["cliques"] if c.get("topologyConstraint")}
    assert names == {"aws-network-zonal"}
    (topology,) = [t for t in manifests_of_kind(r, "Topology") if t["metadata"]["name"] == "aws-network-zonal"]
    labels = [lvl["nodeLabel"] for lvl in topology["spec"]["levels"]]
    assert labels == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    (ctb,) = manifests_of_kind(r, "ClusterTopologyBinding")
    domains = {lvl["domain"] for lvl in ctb["spec"]["levels"]}
    assert _pack_domains(pcs) <= domains and _pack_domains(pcs) == {"zone"}
    assert not any("network-node-layer" in lvl["key"] for lvl in ctb["spec"]["levels"])
    # p5 (three network layers) keeps packing on the block.
    (p5,) = manifests_of_kind(rendered["grove"], "PodCliqueSet")
    assert _pack_domains(p5) == {"block"}


def test_lws_names_a_topology_its_pools_carry(rendered):
    for name in ("multinode", "prod"):
        for lws in manifests_of_kind(rendered[name], "LeaderWorkerSet"):
            ann = lws["metadata"].get("annotations") or {}
            if "kai.scheduler/topology" in ann:
                (topo,) = [t for t in manifests_of_kind(rendered[name], "Topology") if t["metadata"]["name"] == ann["kai.scheduler/topology"]]
                assert ann["kai.scheduler/topology-preferred-placement"] in [lvl["nodeLabel"] for lvl in topo["spec"]["levels"]]


def test_load_balancer_controller_waits_for_its_pod_identity(rendered):
    r = rendered["prod"]
    lbc = releases(r)["aws-load-balancer-controller"]
    assoc = [a for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") if a["inputs"]["serviceAccount"] == "aws-load-balancer-controller"]
    assert len(assoc) == 1 and assoc[0]["inputs"]["namespace"] == lbc["inputs"]["namespace"] == "kube-system"
    assert assoc[0]["urn"] in lbc["dependencies"]
    values = lbc["inputs"]["values"]
    assert values["serviceAccount"]["name"] == "aws-load-balancer-controller"
    assert values["vpcId"].startswith("vpc-") and values["clusterName"] == r.summary["cluster_name"]


def test_summary_lists_the_dashboards_and_alerts(rendered):
    r = rendered["prod"]
    obs = r.summary["observability"]
    assert [d["uid"] for d in obs["dashboards"]] == [
        "disagg-engines", "disagg-kv-transfer", "disagg-router", "disagg-gpus", "disagg-efa", "disagg-controllers", "disagg-trtllm-engines",
    ]
    md = (r.out / "summary.md").read_text()
    assert "## Dashboards and alerts" in md and "disagg / NIXL KV transfer" in md and "`KvTransferNotOnEfa`" in md
    configmaps = {m["metadata"]["name"] for m in manifests_of_kind(r, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard") == "1"}
    assert configmaps == {f"dashboard-{d['uid']}" for d in obs["dashboards"]}


def test_grafana_admin_password_is_generated_and_secret(rendered):
    r = rendered["prod"]
    assert "grafanaAdminPassword" in r.outputs and r.outputs["grafanaAdminPassword"] == "[secret]"
    (pw,) = r.of_type("random:index/randomPassword:RandomPassword")
    kps = releases(r)["kube-prometheus-stack"]
    assert pw["urn"] in kps["dependencies"]
    assert kps["inputs"]["values"]["grafana"]["adminPassword"] == "[secret]"
    assert kps["inputs"]["values"]["grafana"]["enabled"] is True


def test_amp_remote_write_through_pod_identity(rendered):
    r = rendered["network-operator"]
    (ws,) = r.of_type("aws:amp/workspace:Workspace")
    kps = releases(r)["kube-prometheus-stack"]
    (rw,) = kps["inputs"]["values"]["prometheus"]["prometheusSpec"]["remoteWrite"]
    assert rw["url"].endswith("/api/v1/remote_write") and ws["id"] in rw["url"] and rw["sigv4"] == {"region": "us-east-1"}
    assoc = [a for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") if a["inputs"]["serviceAccount"] == "kube-prometheus-stack-prometheus"]
    assert len(assoc) == 1 and assoc[0]["inputs"]["namespace"] == "monitoring" and assoc[0]["urn"] in kps["dependencies"]
    attach = [a for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if "AmazonPrometheusRemoteWriteAccess" in a["inputs"]["policyArn"]]
    assert len(attach) == 1
    assert "remoteWrite" not in releases(rendered["prod"])["kube-prometheus-stack"]["inputs"]["values"]["prometheus"]["prometheusSpec"]
