"""Cluster builders (add-ons, access entries, IAM documents) and the AWS-layer validation rules."""

from __future__ import annotations

import pytest

from components.builders.eks import (
    access_entry_key,
    addons_in_phase,
    admin_access_entries,
    control_plane_log_group,
    managed_addons,
)
from components.builders.iam import (
    access_policy_arn,
    managed_policy_arn,
    node_policy_arns,
    partition,
    pod_identity_trust_policy,
    service_trust_policy,
)
from stacks.aws_args import cluster_args
from stacks.config import ConfigError, parse
from facts.versions import pin

ADDONS = {
    "vpc-cni": "addon-vpc-cni",
    "kube-proxy": "addon-kube-proxy",
    "eks-pod-identity-agent": "addon-eks-pod-identity-agent",
    "coredns": "addon-coredns",
    "aws-ebs-csi-driver": "addon-aws-ebs-csi-driver",
    "eks-node-monitoring-agent": "addon-eks-node-monitoring-agent",
}


def addons_of(values: dict) -> list:
    """The cluster's managed add-ons as the stack derives them from a config."""
    return managed_addons(cluster_args(parse(values, stack="t")).prefix_delegation)


def test_every_addon_is_pinned_from_the_versions_table(base):
    specs = {a.name: a for a in addons_of(base)}
    assert set(specs) == set(ADDONS)
    for name, key in ADDONS.items():
        assert specs[name].version == pin(key).version


def test_addon_phases(base):
    addons = addons_of(base)
    before = {a.name for a in addons_in_phase(addons, "before-compute")}
    after = {a.name for a in addons_in_phase(addons, "after-system-nodes")}
    # DaemonSets only; the node monitoring agent is on every node from its first boot, for node auto repair.
    assert before == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "eks-node-monitoring-agent"}
    # Deployments: with no node they time out DEGRADED (pulumi-eks#1819).
    assert after == {"coredns", "aws-ebs-csi-driver"}


def test_vpc_cni_follows_the_prefix_delegation_switch(base):
    on = {a.name: a for a in addons_of(base)}["vpc-cni"]
    assert on.configuration["env"]["ENABLE_PREFIX_DELEGATION"] == "true"
    base["network"] = {"prefixDelegation": False}
    off = {a.name: a for a in addons_of(base)}["vpc-cni"]
    assert off.configuration["env"]["ENABLE_PREFIX_DELEGATION"] == "false"


def test_ebs_csi_driver_gets_a_pod_identity_role(base):
    ebs = {a.name: a for a in addons_of(base)}["aws-ebs-csi-driver"]
    assert ebs.pod_identity == ("kube-system", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy")


def test_admin_access_entries(base):
    arns = ["arn:aws:iam::123456789012:role/Admin", "arn:aws:iam::123456789012:user/ops/alice"]
    base["cluster"]["adminPrincipalArns"] = arns
    entries = admin_access_entries(cluster_args(parse(base, stack="t")).admin_principal_arns)
    assert sorted(e["principal_arn"] for e in entries.values()) == sorted(arns)
    for e in entries.values():
        assert e["policy_arn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    # Keys come from the ARN, so reordering the list keeps them.
    base["cluster"]["adminPrincipalArns"] = list(reversed(arns))
    assert set(admin_access_entries(cluster_args(parse(base, stack="t")).admin_principal_arns)) == set(entries)


def test_access_entry_keys_are_readable_and_unique():
    a = access_entry_key("arn:aws:iam::123456789012:role/team-a/Admin")
    b = access_entry_key("arn:aws:iam::123456789012:role/team-b/Admin")
    assert a.startswith("role-admin-") and b.startswith("role-admin-")
    assert a != b


def test_govcloud_principal_gets_a_govcloud_access_policy():
    (e,) = admin_access_entries(["arn:aws-us-gov:iam::123456789012:role/Admin"]).values()
    assert e["policy_arn"].startswith("arn:aws-us-gov:eks::aws:cluster-access-policy/")


def test_partitions_and_policy_arns():
    assert partition("us-east-1") == "aws"
    assert partition("cn-north-1") == "aws-cn"
    assert partition("us-gov-west-1") == "aws-us-gov"
    assert managed_policy_arn("X", "aws-cn") == "arn:aws-cn:iam::aws:policy/X"
    assert access_policy_arn("P") == "arn:aws:eks::aws:cluster-access-policy/P"
    assert node_policy_arns() == [
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        # Session Manager instead of SSH keys.
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ]


def test_trust_policies():
    ec2 = service_trust_policy("ec2.amazonaws.com")["Statement"][0]
    assert ec2["Principal"] == {"Service": "ec2.amazonaws.com"} and ec2["Action"] == "sts:AssumeRole"
    pod = pod_identity_trust_policy()["Statement"][0]
    assert pod["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(pod["Action"]) == {"sts:AssumeRole", "sts:TagSession"}


# --- validation rules of the AWS layer -------------------------------------------------------------------------------


def issues_for(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t")
    return [str(i) for i in exc.value.issues]


def test_private_subnets_too_small_for_pod_addresses(base):
    base["network"] = {"privateSubnetPrefixLength": 24}
    errs = [e for e in issues_for(base) if e.startswith("disagg:network.privateSubnetPrefixLength = 24")]
    assert errs, issues_for(base)
    assert "us-east-1a" in errs[0] and "p5.48xlarge" in errs[0] and "Fix: " in errs[0]


def test_subnet_address_check_counts_max_nodes(base):
    # A /22 (1019 addresses) holds the two p5 nodes, but not prefill scaled out to 4 (5 nodes x 274).
    base["network"] = {"privateSubnetPrefixLength": 22}
    parse(base, stack="t")
    base["gpuPools"][0]["maxNodes"] = 4
    assert any(e.startswith("disagg:network.privateSubnetPrefixLength") for e in issues_for(base))


def test_subnet_address_check_skipped_for_an_existing_vpc(base):
    base["network"] = {
        "privateSubnetPrefixLength": 24,
        "existingVpcId": "vpc-0123456789abcdef0",
        "existingPrivateSubnetIds": {"us-east-1a": "subnet-0123456789abcdef0", "us-east-1b": "subnet-0123456789abcdef1"},
    }
    parse(base, stack="t")


def test_targeted_reservation_in_two_zones(base):
    base["gpuPools"][0]["efa"] = False
    base["gpuPools"][1]["efa"] = False
    base["gpuPools"][0]["availabilityZones"] = ["us-east-1a", "us-east-1b"]
    base["gpuPools"][0]["capacity"] = {"type": "capacityReservation", "reservationId": "cr-0123456789abcdef0"}
    errs = [e for e in issues_for(base) if e.startswith("disagg:gpuPools[0].availabilityZones")]
    assert any("cr-0123456789abcdef0" in e for e in errs), errs


def test_reservation_resource_group_may_span_zones(base):
    base["gpuPools"][0]["efa"] = False
    base["gpuPools"][1]["efa"] = False
    base["gpuPools"][0]["availabilityZones"] = ["us-east-1a", "us-east-1b"]
    base["gpuPools"][0]["capacity"] = {
        "type": "capacityReservation",
        "reservationResourceGroupArn": "arn:aws:resource-groups:us-east-1:123456789012:group/odcrs",
    }
    base["serving"]["kvTransfer"] = {"backend": "UCX"}
    parse(base, stack="t")


def test_pool_ami_release_must_match_the_kubernetes_version(base):
    base["gpuPools"][0]["amiReleaseVersion"] = "1.33.4-20260101"
    errs = [e for e in issues_for(base) if e.startswith("disagg:gpuPools[0].amiReleaseVersion")]
    assert errs and "1.33.4-20260101" in errs[0] and "Fix: " in errs[0]


def test_cluster_version_away_from_the_ami_pins(base):
    base["cluster"]["kubernetesVersion"] = "1.34"
    errs = [e for e in issues_for(base) if e.startswith("disagg:cluster.kubernetesVersion")]
    # The GPU pools (default AMI pin) and the system pool are both named.
    assert len(errs) == 3, errs
    assert any("eks-al2023-ami" in e for e in errs)


def test_control_plane_log_group_is_the_one_eks_writes_to():
    # EKS picks the group by this exact name; any other name would leave EKS creating its own, never-expiring one.
    assert control_plane_log_group("prod") == "/aws/eks/prod/cluster"


def test_log_retention_must_be_a_cloudwatch_value(base):
    from stacks.config.aws import CLOUDWATCH_RETENTION_DAYS, ClusterConfig

    assert ClusterConfig().log_retention_days in CLOUDWATCH_RETENTION_DAYS
    base["cluster"]["logRetentionDays"] = 100
    errs = [e for e in issues_for(base) if e.startswith("disagg:cluster.logRetentionDays")]
    assert errs and "nearest: 90" in errs[0] and "Fix: " in errs[0]


def test_nvme_model_cache_needs_the_raid_on_every_pool(base):
    base["gpuPools"][1]["nvmeCache"] = False
    errs = [e for e in issues_for(base) if e.startswith("disagg:gpuPools[1].nvmeCache")]
    assert errs and "root volume" in errs[0] and "Fix: " in errs[0]
    base["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc"}
    assert not any("nvmeCache" in e for e in _issues_or_none(base))


def test_nvme_model_cache_host_path_must_be_on_the_raid(base):
    base["serving"]["modelCache"] = {"hostPath": "/mnt/k8s-disks/model-cache"}
    errs = [e for e in issues_for(base) if e.startswith("disagg:serving.modelCache.hostPath")]
    assert errs and "/mnt/k8s-disks/0" in errs[0]
    base["serving"]["modelCache"] = {"hostPath": "/mnt/k8s-disks/0/weights"}
    parse(base, stack="t")


def _issues_or_none(values: dict) -> list[str]:
    try:
        parse(values, stack="t")
    except ConfigError as exc:
        return [str(i) for i in exc.issues]
    return []
