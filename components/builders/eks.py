"""The EKS cluster as data: managed add-ons (with their pins, when they may be created and their Pod Identity role)
and the admin access entries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from components.builders.iam import CLUSTER_ADMIN_ACCESS_POLICY, EBS_CSI_POLICY, access_policy_arn, partition_of_arn
from components.builders.network import vpc_cni_configuration
from stacks.config.stack import StackConfig
from stacks.versions import pin

# before-compute: DaemonSets every node needs from its first boot (pod networking, service routing, Pod Identity);
# they go ACTIVE with zero nodes, and the node groups wait for them.
# after-system-nodes: add-ons with a Deployment; with no node to run on they sit DEGRADED until the create times
# out (pulumi-eks#1819, #1525), so they wait for the system node group.
Phase = Literal["before-compute", "after-system-nodes"]

# Control-plane logs: EKS writes to this log group and creates it itself (retention: never expire) when it does not
# exist. Made by EKS, it would outlive `pulumi destroy` and keep billing for storage; created by the stack first, it
# is deleted with the stack and expires old logs (https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html).
# (retention: `disagg:cluster.logRetentionDays`).


def control_plane_log_group(cluster_name: str) -> str:
    """The name EKS writes control-plane logs to; no other name is picked up."""
    return f"/aws/eks/{cluster_name}/cluster"


@dataclass(frozen=True)
class AddonSpec:
    name: str  # EKS add-on name
    pin_key: str  # key in stacks/versions.py
    phase: Phase
    configuration: dict | None = None  # configuration_values (sent as JSON)
    # Pod Identity: (namespace, service account, managed policy under arn:aws:iam::aws:policy/)
    pod_identity: tuple[str, str, str] | None = None

    @property
    def version(self) -> str:
        return pin(self.pin_key).version


def addon_specs(cfg: StackConfig) -> list[AddonSpec]:
    return [
        AddonSpec("vpc-cni", "addon-vpc-cni", "before-compute", vpc_cni_configuration(cfg.network.prefix_delegation)),
        AddonSpec("kube-proxy", "addon-kube-proxy", "before-compute"),
        AddonSpec("eks-pod-identity-agent", "addon-eks-pod-identity-agent", "before-compute"),
        AddonSpec("coredns", "addon-coredns", "after-system-nodes"),
        AddonSpec(
            "aws-ebs-csi-driver",
            "addon-aws-ebs-csi-driver",
            "after-system-nodes",
            pod_identity=("kube-system", "ebs-csi-controller-sa", EBS_CSI_POLICY),
        ),
    ]


def addons_in_phase(cfg: StackConfig, phase: Phase) -> list[AddonSpec]:
    return [a for a in addon_specs(cfg) if a.phase == phase]


def access_entry_key(principal_arn: str) -> str:
    """A stable, unique key per principal, from the ARN itself: reordering the admin list must not replace access
    entries, and two roles of the same name under different paths must not collide."""
    kind, _, path = principal_arn.split(":", 5)[5].partition("/")
    name = path.rsplit("/", 1)[-1]
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{name}".lower()).strip("-")[:48]
    return f"{readable}-{hashlib.sha256(principal_arn.encode()).hexdigest()[:8]}"


def admin_access_entries(cfg: StackConfig) -> dict[str, dict[str, str]]:
    """key -> {principal_arn, policy_arn}: cluster-admin through EKS access entries (authentication mode API),
    cluster-wide scope."""
    out: dict[str, dict[str, str]] = {}
    for arn in cfg.cluster.admin_principal_arns:
        out[access_entry_key(arn)] = {"principal_arn": arn, "policy_arn": access_policy_arn(CLUSTER_ADMIN_ACCESS_POLICY, partition_of_arn(arn))}
    return out
