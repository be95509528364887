"""The Karpenter and EKS Auto Mode builders: EFA layout, EC2NodeClass, NodePool, controller IAM and values.

Objects are checked against the upstream CRDs in $DISAGG_CRD_DIR twice: the strict JSON schema (as the conformance
test does) and the CEL rules the JSON schema cannot express (tests/conformance/crd_rules.py).
"""

from __future__ import annotations

import copy
import json
import os

import jsonschema
import pytest

from components.builders import karpenter as kb
from components.builders.launch_template import efa_network_interfaces
from facts.catalog import instance_type
from stacks.aws_args import gpu_pool_args, karpenter_args, pool_labels, pool_taints
from stacks.config import parse
from facts.versions import pin
from tests.conftest import BASE

needs_crds = pytest.mark.skipif(not os.environ.get("DISAGG_CRD_DIR"), reason="set DISAGG_CRD_DIR to the upstream CRDs")


def config(**changes):
    values = copy.deepcopy(BASE)
    values["nodeProvisioning"] = "karpenter"
    for pool in values["gpuPools"]:
        pool["maxNodes"] = 3
    values.update(changes)
    return parse(values, stack="t")


def pool_of(instance: str, **extra):
    values = copy.deepcopy(BASE)
    values["nodeProvisioning"] = "karpenter"
    values["gpuPools"][0].update({"instanceType": instance, **extra})
    values["gpuPools"][1].update({"instanceType": instance})
    values["serving"]["prefill"] = {"tensorParallel": 8, "replicas": 1}
    values["serving"]["decode"] = {"tensorParallel": 8, "replicas": 1}
    values["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc"}  # lets a pool turn nvmeCache off
    cfg = parse(values, stack="t")
    return cfg, gpu_pool_args(cfg, cfg.gpu_pools[0], {})


def node_class(cfg, pool, placement="pg-shared"):
    return kb.ec2_node_class(
        pool,
        node_role="t-karpenter-node",
        subnet_ids=["subnet-0123456789abcdef0"],
        security_group_ids=["sg-0aaaaaaaaaaaaaaaa", "sg-0bbbbbbbbbbbbbbbb"],
        placement_group_name=placement,
        tags={"disagg.io/stack": "t", "kubernetes.io/cluster/t": "owned", "karpenter.sh/nodepool": "x", "Name": "t-prefill"},
    )


# --- EFA interface layout ---------------------------------------------------------------------------------------


def test_p5_node_class_has_an_ena_primary_and_one_efa_device_on_each_of_32_cards():
    cfg, pool = pool_of("p5.48xlarge")
    nics = kb.node_class_network_interfaces(pool)
    assert nics[0] == {"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"}
    assert nics[1] == {"networkCardIndex": 0, "deviceIndex": 1, "interfaceType": "efa-only"}
    efa = [n for n in nics if n["interfaceType"] == "efa-only"]
    assert sorted(n["networkCardIndex"] for n in efa) == list(range(32))
    assert all(n["deviceIndex"] == 1 for n in efa)
    assert len(efa) == instance_type("p5.48xlarge").efa_interfaces  # what a pod may request: vpc.amazonaws.com/efa 32
    assert len(nics) == 33


def test_p4d_node_class_has_four_efa_devices():
    cfg, pool = pool_of("p4d.24xlarge")
    nics = kb.node_class_network_interfaces(pool)
    assert nics == [
        {"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"},
        {"networkCardIndex": 0, "deviceIndex": 1, "interfaceType": "efa-only"},
        {"networkCardIndex": 1, "deviceIndex": 1, "interfaceType": "efa-only"},
        {"networkCardIndex": 2, "deviceIndex": 1, "interfaceType": "efa-only"},
        {"networkCardIndex": 3, "deviceIndex": 1, "interfaceType": "efa-only"},
    ]


@pytest.mark.parametrize("instance", ["p5.48xlarge", "p5en.48xlarge", "p4d.24xlarge"])
def test_node_class_layout_covers_the_cards_of_the_launch_template_layout(instance):
    """Same cards as the managed node groups' launch templates, so a pool gets the same EFA devices in every mode."""
    cfg, pool = pool_of(instance)
    lt_cards = {n["network_card_index"] for n in efa_network_interfaces(instance_type(instance), ["sg"])}
    efa_cards = {n["networkCardIndex"] for n in kb.node_class_network_interfaces(pool) if n["interfaceType"] == "efa-only"}
    assert efa_cards == lt_cards


def test_pool_without_efa_gets_no_interfaces_and_only_the_cluster_group():
    cfg, pool = pool_of("p5.48xlarge", efa=False)
    nc = node_class(cfg, pool, placement=None)
    assert "networkInterfaces" not in nc["spec"] and "placementGroupSelector" not in nc["spec"]


# --- EC2NodeClass --------------------------------------------------------------------------------------------------


def test_node_class_reuses_the_managed_node_group_node_settings():
    cfg, pool = pool_of("p5.48xlarge")
    spec = node_class(cfg, pool)["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@v" + pin("eks-al2023-nvidia-ami").version.rsplit("-", 1)[1]}]
    assert spec["metadataOptions"]["httpTokens"] == "required" and spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = spec["blockDeviceMappings"]
    assert root["rootVolume"] is True and root["ebs"]["encrypted"] is True and root["ebs"]["volumeSize"] == "200Gi"
    assert spec["instanceStorePolicy"] == "RAID0"  # p5 has 8 NVMe disks and nvmeCache defaults on
    assert spec["securityGroupSelectorTerms"] == [{"id": "sg-0aaaaaaaaaaaaaaaa"}, {"id": "sg-0bbbbbbbbbbbbbbbb"}]
    assert spec["placementGroupSelector"] == {"name": "pg-shared"}
    assert "userData" not in spec  # RAID0 is Karpenter's own NodeConfig, not ours
    # Karpenter refuses restricted tag keys on the class (RestrictedTagPatterns): they are its own.
    assert spec["tags"] == {"disagg.io/stack": "t", "Name": "t-prefill"}


def test_no_raid0_without_the_cache():
    cfg, pool = pool_of("p5.48xlarge", nvmeCache=False)
    assert "instanceStorePolicy" not in node_class(cfg, pool)["spec"]


def test_capacity_block_pool_selects_its_block_and_runs_only_reserved():
    cfg, pool = pool_of("p5.48xlarge", capacity={"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}, maxNodes=2)
    assert node_class(cfg, pool, placement=None)["spec"]["capacityReservationSelectorTerms"] == [{"id": "cr-0123456789abcdef0"}]
    reqs = kb.node_pool(pool, node_class_ref=kb.karpenter_node_class_ref(pool))["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["reserved"]} in reqs


# --- NodePool ------------------------------------------------------------------------------------------------------


def test_node_pool_carries_the_pool_labels_taints_zone_type_and_max_nodes():
    cfg = config()
    pool = gpu_pool_args(cfg, cfg.gpu_pools[1], {})
    np_ = kb.node_pool(pool, node_class_ref=kb.karpenter_node_class_ref(pool))
    tmpl = np_["spec"]["template"]
    # What the managed node group of the same pool would set.
    assert tmpl["metadata"]["labels"] == pool_labels(cfg.gpu_pools[1])
    assert tmpl["metadata"]["labels"]["disagg.io/pool"] == "decode" and tmpl["metadata"]["labels"]["disagg.io/efa"] == "true"
    assert tmpl["spec"]["taints"] == pool_taints(cfg.gpu_pools[1])
    assert {"key": "disagg.io/role", "value": "decode", "effect": "NoSchedule"} in tmpl["spec"]["taints"]
    assert tmpl["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "decode"}
    reqs = {r["key"]: r["values"] for r in tmpl["spec"]["requirements"]}
    assert reqs == {
        "node.kubernetes.io/instance-type": ["p5.48xlarge"],
        "topology.kubernetes.io/zone": ["us-east-1a"],
        "karpenter.sh/capacity-type": ["on-demand"],
    }
    assert np_["spec"]["limits"] == {"nodes": "3", "nvidia.com/gpu": "24"}


def test_node_pool_never_consolidates_a_node_that_serves():
    cfg = config()
    pool = gpu_pool_args(cfg, cfg.gpu_pools[0], {})
    d = kb.node_pool(pool, node_class_ref={})["spec"]["disruption"]
    assert d["consolidationPolicy"] == "WhenEmpty"
    assert d["budgets"] == [{"nodes": "1"}]
    spec = kb.node_pool(pool, node_class_ref={})["spec"]["template"]["spec"]
    assert spec["expireAfter"] == "Never"


def test_auto_mode_node_pool_uses_the_built_in_node_class_and_the_instance_family():
    values = copy.deepcopy(BASE)
    values["nodeProvisioning"] = "autoMode"
    cfg = parse({**values, "platform": {"gpuOperator": {"enabled": False}, "efaDevicePlugin": {"enabled": False}},
                 "serving": {**values["serving"], "modelCache": {"kind": "pvc", "storageClass": "efs-sc"}}}, stack="t")
    np_ = kb.auto_mode_node_pool(gpu_pool_args(cfg, cfg.gpu_pools[0], {}))
    spec = np_["spec"]["template"]["spec"]
    assert spec["nodeClassRef"] == {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}
    assert spec["requirements"][0] == {"key": "eks.amazonaws.com/instance-family", "operator": "In", "values": ["p5"]}


# --- against the upstream CRDs -------------------------------------------------------------------------------------


def _objects():
    out = []
    for instance, extra in (
        ("p5.48xlarge", {"capacity": {"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}, "maxNodes": 2}),
        ("p4d.24xlarge", {}),
        ("p5.48xlarge", {"efa": False, "nvmeCache": False}),
    ):
        cfg, pool = pool_of(instance, **extra)
        out.append(node_class(cfg, pool))
        out.append(kb.node_pool(pool, node_class_ref=kb.karpenter_node_class_ref(pool)))
        out.append(kb.auto_mode_node_pool(pool))
    return out


@needs_crds
@pytest.mark.parametrize("doc", _objects(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_objects_validate_against_the_upstream_crd_schema_and_cel_rules(doc):
    from tests.conformance.crd_rules import manifest_violations
    from tests.conformance.test_manifests import crd_schemas

    schema = crd_schemas()[(doc["apiVersion"], doc["kind"])]
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
    assert not errors
    assert manifest_violations(doc) == []


@needs_crds
def test_the_cel_check_refuses_what_the_api_server_refuses():
    """Without this the CEL test above could pass on a checker that evaluates nothing."""
    from tests.conformance.crd_rules import manifest_violations

    cfg, pool = pool_of("p5.48xlarge")
    bad = node_class(cfg, pool)
    bad["spec"]["networkInterfaces"][0]["interfaceType"] = "efa-only"  # no ENA primary, two EFA devices on card 0
    bad["spec"]["instanceProfile"] = "also-a-profile"  # role and instanceProfile are exclusive
    found = "\n".join(manifest_violations(bad))
    assert "must include a primary interface" in found
    assert "at most one efa device per network card" in found
    assert "exactly one of ['role', 'instanceProfile']" in found
    np_ = kb.node_pool(pool, node_class_ref=kb.karpenter_node_class_ref(pool))
    np_["spec"]["template"]["metadata"]["labels"]["karpenter.sh/custom"] = "x"
    assert any('label domain "karpenter.sh" is restricted' in v for v in manifest_violations(np_))


# --- the controller ------------------------------------------------------------------------------------------------


def policies():
    return kb.controller_policies(
        cluster_name="t",
        region="us-east-1",
        partition="aws",
        account_id="123456789012",
        node_role_arn="arn:aws:iam::123456789012:role/t-karpenter-node",
        queue_arn="arn:aws:sqs:us-east-1:123456789012:karpenter-t",
    )


def test_controller_may_pass_only_the_node_role_and_write_only_this_clusters_instances():
    docs = policies()
    (pass_role,) = [s for s in docs["iam-integration"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == "arn:aws:iam::123456789012:role/t-karpenter-node"
    for st in docs["node-lifecycle"]["Statement"]:
        if st["Sid"] == "AllowScopedEC2InstanceAccessActions":
            continue  # images, subnets, groups, reservations: read-like resources of a launch
        cond = json.dumps(st["Condition"])
        assert "kubernetes.io/cluster/t" in cond and "karpenter.sh/nodepool" in cond, st["Sid"]
    (sqs,) = docs["interruption"]["Statement"]
    assert sqs["Resource"].endswith(":karpenter-t") and "sqs:ReceiveMessage" in sqs["Action"]


def test_each_policy_fits_a_managed_policy():
    """IAM caps a managed policy at 6,144 characters without whitespace."""
    for key, doc in policies().items():
        assert len(json.dumps(doc, separators=(",", ":"))) < 6144, key


def test_interruption_rules_and_queue_policy():
    assert [e[2] for e in kb.INTERRUPTION_EVENTS] == [
        "AWS Health Event",
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ]
    allow, deny = kb.interruption_queue_policy("arn:q")["Statement"]
    assert allow["Principal"]["Service"] == ["events.amazonaws.com", "sqs.amazonaws.com"] and allow["Resource"] == "arn:q"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(kb.interruption_queue_name("x" * 100)) == 80


def test_helm_values_point_the_controller_at_its_cluster_queue_and_the_system_nodes():
    cfg = config()
    v = kb.helm_values(cfg.cluster_name, "karpenter-t", karpenter_args(cfg).node_repair)
    assert v["settings"]["clusterName"] == cfg.cluster_name and v["settings"]["interruptionQueue"] == "karpenter-t"
    assert v["nodeSelector"]["disagg.io/pool"] == "system"
    assert v["serviceAccount"]["name"] == kb.SERVICE_ACCOUNT
    assert v["settings"]["featureGates"]["nodeRepair"] is True


def test_karpenter_chart_pin():
    p = pin("karpenter")
    assert (p.kind, p.chart, p.repository, p.version) == ("helm-chart", "oci://public.ecr.aws/karpenter/karpenter", None, "1.14.1")


def test_the_node_repair_gate_follows_the_pools():
    """One gate for the controller (validation requires every pool to agree): off when the pools turn repair off."""
    values = copy.deepcopy(BASE)
    values["nodeProvisioning"] = "karpenter"
    assert karpenter_args(parse(copy.deepcopy(values), stack="t")).node_repair is True
    for pool in values["gpuPools"]:
        pool["nodeRepair"] = False
    assert karpenter_args(parse(values, stack="t")).node_repair is False
