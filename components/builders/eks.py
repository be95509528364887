"""The EKS cluster as data: managed add-ons (with their pins, when they may be created and their Pod Identity role),
the admin access entries, and the GPU node groups' lifecycle settings.

An EKS managed add-on is a `ManagedAddon`; the platform's Helm add-ons are `AddonSpec`s (components/builders/addons.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from components.aws_args import GpuPoolArgs
from components.builders.iam import CLUSTER_ADMIN_ACCESS_POLICY, EBS_CSI_POLICY, access_policy_arn, partition_of_arn
from components.builders.launch_template import node_group_capacity_type
from components.builders.network import vpc_cni_configuration
from facts.versions import pin

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
class ManagedAddon:
    """One EKS managed add-on (`aws.eks.Addon`), registered by the Cluster component."""

    name: str  # EKS add-on name
    pin_key: str  # key in facts/versions.py
    phase: Phase
    configuration: dict | None = None  # configuration_values (sent as JSON)
    # Pod Identity: (namespace, service account, managed policy under arn:aws:iam::aws:policy/)
    pod_identity: tuple[str, str, str] | None = None

    @property
    def version(self) -> str:
        return pin(self.pin_key).version


# The node monitoring agent's DCGM host engine DaemonSet (GPU health: the AcceleratedHardwareReady condition node
# repair acts on) tolerates no taint by default, so it would never run on the tainted GPU nodes; the agent itself
# tolerates everything (aws/eks-node-monitoring-agent@51af549 charts/eks-node-monitoring-agent/values.yaml:
# nodeAgent.tolerations [{operator: Exists}], dcgmAgent.tolerations []). Its own affinity keeps it to NVIDIA instance
# types, and the add-on schema takes `dcgmAgent.tolerations` (charts/configuration.schema.json).
NODE_MONITORING_CONFIGURATION = {"dcgmAgent": {"tolerations": [{"operator": "Exists"}]}}


def managed_addons(prefix_delegation: bool) -> list[ManagedAddon]:
    """Every EKS managed add-on of the cluster; `prefix_delegation` (`disagg:network.prefixDelegation`) configures the
    VPC CNI."""
    return [
        ManagedAddon("vpc-cni", "addon-vpc-cni", "before-compute", vpc_cni_configuration(prefix_delegation)),
        ManagedAddon("kube-proxy", "addon-kube-proxy", "before-compute"),
        ManagedAddon("eks-pod-identity-agent", "addon-eks-pod-identity-agent", "before-compute"),
        # DaemonSets only (agent + DCGM server): ACTIVE with zero nodes, and on every node from its first boot, so
        # node auto repair sees GPU, kernel, network and storage conditions, not just kubelet Ready (EKS user guide
        # nodes/node-health.adoc). No IAM permissions needed (workloads/eks-add-ons.adoc).
        ManagedAddon("eks-node-monitoring-agent", "addon-eks-node-monitoring-agent", "before-compute", NODE_MONITORING_CONFIGURATION),
        ManagedAddon("coredns", "addon-coredns", "after-system-nodes"),
        ManagedAddon(
            "aws-ebs-csi-driver",
            "addon-aws-ebs-csi-driver",
            "after-system-nodes",
            pod_identity=("kube-system", "ebs-csi-controller-sa", EBS_CSI_POLICY),
        ),
    ]


def addons_in_phase(addons: Iterable[ManagedAddon], phase: Phase) -> list[ManagedAddon]:
    return [a for a in addons if a.phase == phase]


def access_entry_key(principal_arn: str) -> str:
    """A stable, unique key per principal, from the ARN itself: reordering the admin list must not replace access
    entries, and two roles of the same name under different paths must not collide."""
    kind, _, path = principal_arn.split(":", 5)[5].partition("/")
    name = path.rsplit("/", 1)[-1]
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{name}".lower()).strip("-")[:48]
    return f"{readable}-{hashlib.sha256(principal_arn.encode()).hexdigest()[:8]}"


def admin_access_entries(principal_arns: Sequence[str]) -> dict[str, dict[str, str]]:
    """key -> {principal_arn, policy_arn}: cluster-admin through EKS access entries (authentication mode API),
    cluster-wide scope, for each of `cluster.adminPrincipalArns`."""
    out: dict[str, dict[str, str]] = {}
    for arn in principal_arns:
        out[access_entry_key(arn)] = {"principal_arn": arn, "policy_arn": access_policy_arn(CLUSTER_ADMIN_ACCESS_POLICY, partition_of_arn(arn))}
    return out


# --- GPU node groups -------------------------------------------------------------------------------------------------

# EKS's MINIMAL update strategy drains and terminates a node before the Auto Scaling group launches its replacement;
# DEFAULT launches the new nodes first (EKS user guide nodes/managed-node-update-behavior.adoc: "The minimal strategy
# is useful in scenarios where you are constrained to resources or costs, for example with hardware accelerators
# such as GPUs"). A p5 pool on a full reservation or a Capacity Block has no spare node to surge into.
GPU_UPDATE_STRATEGY = "MINIMAL"


def gpu_node_group(pool: GpuPoolArgs) -> dict:
    """The lifecycle settings of a GPU pool's node group (snake_case `aws.eks.NodeGroup` arguments), plus the
    properties Pulumi must not fight EKS over.

    Capacity Block pools: minimum 0 and the desired size ignored after creation, because EKS scales the group to 0
    itself 40 minutes before the block ends (scheduled action "Amazon EKS Node Group Capacity Scaledown Before
    Reservation End"; EKS user guide ml/capacity-blocks-mng); a later `pulumi up` must not scale it back onto an
    expired block. Other pools keep minimum = desired = `nodes`, as deployed stacks have them.
    """
    block = pool.capacity.type == "capacityBlock"
    return {
        "capacity_type": node_group_capacity_type(pool.capacity),
        "scaling_config": {"min_size": 0 if block else pool.nodes, "desired_size": pool.nodes, "max_size": pool.max_nodes},
        "update_config": {"update_strategy": GPU_UPDATE_STRATEGY, "max_unavailable": pool.max_unavailable},
        "node_repair_config": {"enabled": pool.node_repair},
        "ignore_changes": ["scalingConfig.desiredSize"] if block else [],
    }


def child_urn(parent_urn: str, type_: str, name: str) -> str:
    """URN of the resource `name` of type `type_` whose parent has `parent_urn`, by the engine's rule: the child's
    type is qualified with its parent's whole type chain (pulumi/pulumi pkg/resource/deploy/deployment.go
    `generateURN`), except under the root stack. What an alias names when a resource moves away from that parent."""
    prefix, sep, _ = parent_urn.rpartition("::")
    if not sep or not prefix.startswith("urn:pulumi:"):
        raise ValueError(f"not a URN: {parent_urn!r}")
    if prefix.endswith("::pulumi:pulumi:Stack"):
        return f"{prefix.removesuffix('pulumi:pulumi:Stack')}{type_}::{name}"
    return f"{prefix}${type_}::{name}"


def managed_node_group_child_urn(pool_urn: str, node_group_name: str) -> str:
    """URN of the `aws:eks/nodeGroup:NodeGroup` that pulumi-eks's ManagedNodeGroup `<node_group_name>`, a child of
    the component `pool_urn`, created: the GPU pools registered that component before they moved to
    `aws.eks.NodeGroup` (which alone takes `updateConfig` and `nodeRepairConfig`). pulumi-eks names the child like
    the component and parents it to the component (pulumi/pulumi-eks@v4.3.0 nodejs/eks/nodes/nodegroup.ts:
    `ManagedNodeGroup` calls `createManagedNodeGroup(name, args, core, this, ...)`, which registers
    `new aws.eks.NodeGroup(name, ..., { parent: parent, ... })`; the file is unchanged up to the 4.4 sources at
    7bf0c1b), and the engine qualifies a child's type with its parent's whole type chain. Aliasing the new node group to this URN keeps the
    deployed node group (and its nodes) instead of replacing it.
    """
    return child_urn(pool_urn, "eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup", node_group_name)
