"""GPU nodes from Karpenter and EKS Auto Mode, as the whole program registers them (tests/configs/Pulumi.karpenter.yaml
and Pulumi.automode.yaml): the controller and its AWS pieces, one EC2NodeClass and NodePool per pool, the destroy
order that lets Karpenter remove the instances Pulumi does not know, and the min..max figures of the summary."""

from __future__ import annotations

import json
import os
from functools import lru_cache

import pytest

from facts.versions import pin

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def only(r, type_: str, name: str) -> dict:
    (rec,) = [x for x in r.records if x["type"] == type_ and x["name"] == name]
    return rec


class Graph:
    """Destroy order from the recorded dependencies, as the engine derives it: a resource is deleted before
    everything it depends on, and depending on a component means depending on every resource below it."""

    def __init__(self, r):
        self.by_urn = {x["urn"]: x for x in r.records}
        self.children: dict[str, list[str]] = {}
        for x in r.records:
            if x["parent"]:
                self.children.setdefault(x["parent"], []).append(x["urn"])

    def _below(self, urn: str) -> set[str]:
        out = {urn}
        for c in self.children.get(urn, []):
            out |= self._below(c)
        return out

    @lru_cache(maxsize=None)
    def needs(self, urn: str) -> frozenset[str]:
        """Everything `urn` waits for on create, i.e. everything deleted after it."""
        out: set[str] = set()
        for dep in self.by_urn[urn]["dependencies"]:
            for d in self._below(dep) if dep in self.by_urn else {dep}:
                if d not in out and d in self.by_urn:
                    out.add(d)
                    out |= self.needs(d)
        return frozenset(out)

    def deleted_before(self, a: dict, b: dict) -> bool:
        return b["urn"] in self.needs(a["urn"])


# --- Karpenter ------------------------------------------------------------------------------------------------------


def test_karpenter_gpu_pools_are_node_pools_not_node_groups(rendered):
    r = rendered["karpenter"]
    assert not r.of_type(NODE_GROUP)  # no GPU node group; the system pool is pulumi-eks's ManagedNodeGroup
    (system,) = r.of_type("eks:index:ManagedNodeGroup")
    assert system["inputs"]["labels"]["disagg.io/pool"] == "system"
    assert not [x for x in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if "system" not in x["name"]]
    assert sorted(x["name"] for x in r.of_type("disagg:aws:KarpenterGpuPool")) == ["karpenter-decode", "karpenter-prefill"]
    assert sorted(x["inputs"]["metadata"]["name"] for x in r.of_type(NODE_POOL)) == ["decode", "prefill"]
    assert sorted(x["inputs"]["metadata"]["name"] for x in r.of_type(NODE_CLASS)) == ["decode", "prefill"]
    # The system pool is still a managed node group, the one the controller runs on.
    assert r.one("disagg:aws:SystemNodePool")


def test_karpenter_is_installed_from_its_chart_with_pod_identity_and_its_queue(rendered):
    r = rendered["karpenter"]
    release = only(r, RELEASE, "karpenter-karpenter-controller")
    i = release["inputs"]
    p = pin("karpenter")
    assert (i["chart"], i["version"], i["namespace"], i["name"]) == (p.chart, p.version, "kube-system", "karpenter")
    assert i["values"]["settings"]["clusterName"] == "karpenter"
    assert i["values"]["settings"]["interruptionQueue"] == "karpenter-karpenter"
    assert i["values"]["nodeSelector"]["disagg.io/pool"] == "system"
    assert release["provider"].startswith(r.one("pulumi:providers:kubernetes")["urn"])

    pia = only(r, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-karpenter-controller")
    assert (pia["inputs"]["namespace"], pia["inputs"]["serviceAccount"]) == ("kube-system", "karpenter")
    role = only(r, "aws:iam/role:Role", "karpenter-karpenter-controller")
    assert json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    attached = {x["name"] for x in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if role["urn"] in x["dependencies"]}
    assert len(attached) == 5
    lifecycle = json.loads(only(r, "aws:iam/policy:Policy", "karpenter-karpenter-node-lifecycle")["inputs"]["policy"])
    assert any(s["Sid"] == "AllowScopedDeletion" for s in lifecycle["Statement"])

    queue = only(r, "aws:sqs/queue:Queue", "karpenter-karpenter-interruption")
    assert queue["inputs"]["messageRetentionSeconds"] == 300 and queue["inputs"]["sqsManagedSseEnabled"] is True
    rules = r.of_type("aws:cloudwatch/eventRule:EventRule")
    assert len(rules) == 5
    targets = r.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 5 and all(t["inputs"]["arn"].endswith(":queue/karpenter-karpenter-interruption") for t in targets)

    entry = only(r, "aws:eks/accessEntry:AccessEntry", "karpenter-karpenter-node")
    assert entry["inputs"]["type"] == "EC2_LINUX"
    assert entry["inputs"]["principalArn"] == r.outputs["karpenter"]["nodeRoleArn"]


def test_node_classes_use_the_stack_security_groups_subnets_and_node_role(rendered):
    r = rendered["karpenter"]
    cluster_sg = r.outputs["clusterSecurityGroupId"]
    (efa_sg,) = [x for x in r.of_type("aws:ec2/securityGroup:SecurityGroup") if x["name"] == "karpenter-efa"]
    subnets = {x["id"]: x for x in r.of_type("aws:ec2/subnet:Subnet")}
    for nc in r.of_type(NODE_CLASS):
        spec = nc["inputs"]["spec"]
        assert spec["securityGroupSelectorTerms"] == [{"id": cluster_sg}, {"id": efa_sg["id"]}]
        for term in spec["subnetSelectorTerms"]:
            assert subnets[term["id"]]["inputs"]["availabilityZone"] == "us-east-1a"
            assert subnets[term["id"]]["inputs"].get("mapPublicIpOnLaunch") in (None, False)
        assert spec["role"] == r.outputs["karpenter"]["nodeRoleArn"].rsplit("/", 1)[1]
        assert len([n for n in spec["networkInterfaces"] if n["interfaceType"] == "efa-only"]) == 32
    prefill = next(x for x in r.of_type(NODE_CLASS) if x["inputs"]["metadata"]["name"] == "prefill")["inputs"]["spec"]
    decode = next(x for x in r.of_type(NODE_CLASS) if x["inputs"]["metadata"]["name"] == "decode")["inputs"]["spec"]
    assert prefill["capacityReservationSelectorTerms"] == [{"id": "cr-0123456789abcdef0"}]
    assert "placementGroupSelector" not in prefill  # a Capacity Block is co-located by EC2 already
    (pg,) = r.of_type("aws:ec2/placementGroup:PlacementGroup")
    assert pg["urn"] in next(x for x in r.of_type(NODE_CLASS) if x["inputs"]["metadata"]["name"] == "decode")["dependencies"]
    assert decode["placementGroupSelector"]["name"] == r.outputs["gpuPools"]["decode"]["placementGroup"]


def test_destroy_removes_node_pools_while_karpenter_runs_and_waits_for_their_nodes(rendered):
    r = rendered["karpenter"]
    g = Graph(r)
    release = only(r, RELEASE, "karpenter-karpenter-controller")
    system_ng = r.one("eks:index:ManagedNodeGroup")
    after_release = [
        only(r, "aws:iam/role:Role", "karpenter-karpenter-node"),
        only(r, "aws:eks/accessEntry:AccessEntry", "karpenter-karpenter-node"),
        only(r, "aws:sqs/queue:Queue", "karpenter-karpenter-interruption"),
        only(r, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-karpenter-controller"),
        system_ng,
    ]
    for name in ("prefill", "decode"):
        pool = only(r, NODE_POOL, f"karpenter-{name}-nodepool")
        node_class = only(r, NODE_CLASS, f"karpenter-{name}-nodeclass")
        # The NodePool goes first, then its class, then the controller, then what the controller and its nodes
        # need. (The platform's releases run on the system pool and wait for it alone: docs/platform.md.)
        assert g.deleted_before(pool, node_class)
        assert g.deleted_before(node_class, release) and g.deleted_before(pool, release)
        for x in after_release:
            assert g.deleted_before(release, x), x["name"]
            assert g.deleted_before(pool, x)
        # Waiting for the NodeClaims (so the instances) to go is part of the delete.
        for obj in (pool, node_class):
            assert obj["options"]["customTimeouts"] == {"delete": "45m"}
        assert pool["inputs"]["metadata"]["annotations"]["pulumi.com/deletionPropagationPolicy"] == "foreground"
    # The serving workloads (the pods on the GPU nodes) go before everything above.
    serving = r.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet")
    assert serving and all(g.deleted_before(s, only(r, NODE_POOL, "karpenter-decode-nodepool")) for s in serving)


def test_max_replicas_above_todays_nodes_renders_with_the_range_and_quota_for_max(rendered):
    r = rendered["karpenter"]
    s = r.summary
    assert s["roles"]["decode"]["max_replicas"] == 12 and s["roles"]["decode"]["nodes_needed_at_max"] == 3
    assert (s["gpus_provisioned"], s["gpus_at_max"]) == (16, 40)
    assert s["hourly_cost_at_max_usd"] > s["hourly_cost_usd"]
    md = (r.out / "summary.md").read_text()
    assert "## Node autoscaling (Karpenter)" in md
    assert "| decode | decode | 1..3 | 8..24 | 55.04..165.12 |" in md
    assert f"**16..40** | **{s['hourly_cost_usd']:,.2f}..{s['hourly_cost_at_max_usd']:,.2f}**" in md
    queues = [m for m in r.manifests.values() if m["kind"] == "Queue"]
    assert queues and all(q["spec"]["resources"]["gpu"]["quota"] == 40 for q in queues)
    scaled = next(m for m in r.manifests.values() if m["kind"] == "ScaledObject" and "decode" in m["metadata"]["name"])
    assert scaled["spec"]["maxReplicaCount"] == 12


def test_managed_node_group_stacks_show_no_range(rendered):
    md = (rendered["prod"].out / "summary.md").read_text()
    assert "Node autoscaling" not in md and "up to" not in md.splitlines()[5]


# --- EKS Auto Mode ---------------------------------------------------------------------------------------------------


def test_auto_mode_turns_on_the_cluster_capability_and_keeps_only_the_system_builtin_pool(rendered):
    r = rendered["automode"]
    eks = r.one("eks:index:Cluster")["inputs"]
    assert eks["autoMode"]["enabled"] is True
    assert eks["autoMode"]["computeConfig"]["nodePools"] == ["system"]
    assert eks["authenticationMode"] == "API"  # pulumi-eks refuses Auto Mode without access entries
    prod = rendered["prod"].one("eks:index:Cluster")["inputs"]
    assert "autoMode" not in prod


def test_auto_mode_pools_are_node_pools_on_the_builtin_node_class(rendered):
    r = rendered["automode"]
    pools = r.of_type(NODE_POOL)
    assert sorted(p["inputs"]["metadata"]["name"] for p in pools) == ["decode", "prefill"]
    cluster = r.one("eks:index:Cluster")
    for p in pools:
        spec = p["inputs"]["spec"]["template"]["spec"]
        assert spec["nodeClassRef"] == {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}
        assert {"key": "eks.amazonaws.com/instance-family", "operator": "In", "values": ["p5"]} in spec["requirements"]
        role = p["inputs"]["spec"]["template"]["metadata"]["labels"]["disagg.io/role"]
        assert {"key": "disagg.io/role", "value": role, "effect": "NoSchedule"} in spec["taints"]
        assert cluster["urn"] in p["dependencies"]
    assert not r.of_type(NODE_CLASS) and not r.of_type("aws:ec2/placementGroup:PlacementGroup")
    assert not [x for x in r.of_type("aws:ec2/securityGroup:SecurityGroup") if x["name"].endswith("-efa")]
    assert not [x for x in r.of_type(RELEASE) if "karpenter" in x["name"]]
    # Auto Mode runs the NVIDIA and EFA device plugins itself.
    names = {x["inputs"]["name"] for x in r.of_type(RELEASE)}
    assert not names & {"gpu-operator", "aws-efa-k8s-device-plugin"}
    md = (r.out / "summary.md").read_text()
    assert "## Node autoscaling (EKS Auto Mode)" in md and "management fee" in md


def test_every_rendered_node_pool_and_node_class_passes_the_crds_cel_rules(rendered):
    """The JSON-schema conformance test drops the CRDs' CEL rules; here they run on what the stacks render."""
    if not os.environ.get("DISAGG_CRD_DIR"):
        pytest.skip("set DISAGG_CRD_DIR to the upstream CRDs")
    from tests.conformance.crd_rules import manifest_violations

    checked = 0
    for name in ("karpenter", "automode"):
        for fname, doc in rendered[name].manifests.items():
            if doc["kind"] in ("NodePool", "EC2NodeClass"):
                checked += 1
                assert manifest_violations(doc) == [], f"{name}/{fname}"
    assert checked == 6
