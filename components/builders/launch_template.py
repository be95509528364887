"""Launch templates of the managed node groups, as plain data: EFA interface layout, root volume, instance metadata
options, capacity (On-Demand, targeted reservation, Capacity Block) and placement.

Every function returns snake_case dicts/lists named like the pulumi-aws `LaunchTemplate` arguments; the node pool
component maps them onto the `...Args` classes. Security group ids are passed through untouched (they are Outputs in
the program, plain strings in tests).

Managed node group rules these follow (https://docs.aws.amazon.com/eks/latest/userguide/launch-templates.html):
no subnet in the interfaces (the node group supplies subnets), no IAM instance profile, and security groups either on
the instance or on each interface, never both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.aws_args import Capacity
from facts.catalog import InstanceType

# Root device of the EKS AL2023 AMIs (pulumi-eks uses the same name for its own launch templates).
ROOT_DEVICE = "/dev/xvda"
ROOT_VOLUME_TYPE = "gp3"
# One hop: IMDSv2 answers the node itself (and hostNetwork daemons) but not a pod in its own network namespace, so a
# pod cannot take the node role's credentials. Nothing this stack runs needs them: add-ons with an AWS role use Pod
# Identity; the daemons that read instance metadata run with hostNetwork (aws-node, kube-proxy, the Pod Identity agent,
# eks-node-monitoring-agent: aws/eks-node-monitoring-agent@51af549 charts/.../daemonset.yaml `hostNetwork: true`; the
# EFA device plugin: aws/eks-charts stable/aws-efa-k8s-device-plugin/templates/daemonset.yaml); the EBS CSI node and
# controller fall back to the Kubernetes API when IMDS does not answer (kubernetes-sigs/aws-ebs-csi-driver@429e202
# pkg/cloud/metadata/metadata.go: sources `imds`, then `kubernetes`, which reads the Node named by CSI_NODE_NAME,
# set on both in charts/aws-ebs-csi-driver/templates/controller.yaml and node.yaml); the Load Balancer Controller
# gets its VPC id and region from its values; the other charts (GPU Operator, KAI, LWS, Grove, KEDA, metrics-server,
# kube-prometheus-stack) and the serving pods make no AWS calls. 1 is also what EKS sets on managed node groups without a custom launch template
# (EKS user guide nodes/al2023.adoc) and terraform-aws-eks's default.
IMDS_HOP_LIMIT = 1
# Tagged at launch so instances, their volumes and their ENIs carry the stack tags (the provider's default tags only
# reach the launch template itself): cost allocation and the teardown sweep find them by these.
TAGGED_AT_LAUNCH = ("instance", "volume", "network-interface")

ON_DEMAND = "ON_DEMAND"
CAPACITY_BLOCK = "CAPACITY_BLOCK"
# A launch into a targeted reservation fails when the reservation is full instead of running On-Demand. Targeting a
# resource group of reservations alone falls back to On-Demand capacity when no reservation in the group has room
# (EC2 user guide, create-cr-group), so the pool would silently run at list price; the EC2 API accepts a
# preference together with a target only when it is this one (API CapacityReservationSpecification; pulumi-aws
# 7.51.1 LaunchTemplateCapacityReservationSpecificationArgs: "either omit capacity_reservation_preference or set it
# to capacity-reservations-only").
RESERVATIONS_ONLY = "capacity-reservations-only"


def efa_network_interfaces(it: InstanceType, security_groups: Sequence[Any]) -> list[dict[str, Any]]:
    """One interface per EFA network card, as EFA needs: card 0 is `efa` (EFA with ENA, the primary interface, device
    index 0); every other card is `efa-only` at device index 1 (an efa-only interface can never be primary).

    The same layout pulumi-eks (`getEfaNetworkInterfaces`) and terraform-aws-eks (`efa_network_interfaces`) use.
    A type whose card 0 has no EFA (p6-b300.48xlarge) gets a plain ENA primary on card 0 and `efa-only` on each of
    cards 1..N (EC2 user guide efa-acc-inst-types: the primary interface is ENA or EFA-with-ENA, never efa-only).
    Each interface carries every security group: once interfaces name their own groups EKS stops adding the cluster
    security group, so it must be in the list.
    """
    if not it.supports_efa:
        raise ValueError(f"{it.name} has no EFA; it gets no EFA interfaces")
    first_efa = 0 if it.primary_card_efa else 1
    if first_efa + it.efa_interfaces > it.network_cards:
        raise ValueError(f"{it.name}: {it.efa_interfaces} EFA interfaces do not fit its {it.network_cards} network cards")
    if not security_groups:
        raise ValueError("EFA interfaces need security groups (at least the cluster security group)")

    def nic(card: int, kind: str) -> dict[str, Any]:
        return {
            "network_card_index": card,
            "device_index": 0 if card == 0 else 1,
            "interface_type": kind,
            "security_groups": list(security_groups),
            "delete_on_termination": "true",
        }

    if it.primary_card_efa:
        return [nic(card, "efa" if card == 0 else "efa-only") for card in range(it.efa_interfaces)]
    return [nic(0, "interface")] + [nic(card, "efa-only") for card in range(1, 1 + it.efa_interfaces)]


def root_volume(size_gb: int) -> list[dict[str, Any]]:
    """Encrypted gp3 root volume. With a custom launch template the node group's own disk size is ignored, so the
    size lives here (pulumi-eks#1224)."""
    if size_gb <= 0:
        raise ValueError("root volume size must be positive")
    return [
        {
            "device_name": ROOT_DEVICE,
            "ebs": {
                "volume_size": size_gb,
                "volume_type": ROOT_VOLUME_TYPE,
                "encrypted": "true",
                "delete_on_termination": "true",
            },
        }
    ]


def metadata_options() -> dict[str, Any]:
    """IMDSv2 only (no session-less IMDSv1 requests), and only for the node itself (hop limit 1, see above)."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        "instance_metadata_tags": "disabled",
    }


def node_group_capacity_type(capacity: Capacity) -> str:
    """Managed node group `capacityType`: a Capacity Block pool must say CAPACITY_BLOCK or EKS rejects it; a targeted
    On-Demand Capacity Reservation is still ON_DEMAND capacity."""
    return CAPACITY_BLOCK if capacity.type == "capacityBlock" else ON_DEMAND


def capacity_options(capacity: Capacity) -> dict[str, Any]:
    """Launch template arguments that put instances on the configured capacity.

    - onDemand: nothing (EC2 default: open reservations are used if they match, On-Demand otherwise).
    - capacityReservation: target the reservation (or resource group of reservations) with preference
      `capacity-reservations-only`, so a full reservation or group fails the launch instead of running On-Demand.
    - capacityBlock: market type `capacity-block` plus the block's reservation id, exactly the fields EKS requires
      (https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html); the instance type goes into the
      template too (`launch_template(instance_type=...)`).
    """
    if capacity.type == "onDemand":
        return {}
    if capacity.reservation_id:
        target = {"capacity_reservation_id": capacity.reservation_id}
    else:
        target = {"capacity_reservation_resource_group_arn": capacity.reservation_resource_group_arn}
    spec: dict[str, Any] = {"capacity_reservation_target": target}
    if capacity.type == "capacityReservation":
        spec["capacity_reservation_preference"] = RESERVATIONS_ONLY
    out: dict[str, Any] = {"capacity_reservation_specification": spec}
    if capacity.type == "capacityBlock":
        out["instance_market_options"] = {"market_type": "capacity-block"}
    return out


def instance_type_in_template(capacity: Capacity) -> bool:
    """Capacity Block node groups carry the instance type in the launch template and name none themselves: EKS
    rejects the create request otherwise (EKS user guide ml/capacity-blocks-mng, ml/ml-node-groups;
    terraform-aws-eks modules/eks-managed-node-group/main.tf: `instance_type = var.capacity_type == "CAPACITY_BLOCK" ?
    element(var.instance_types, 0) : null` and `instance_types = ... ? null : var.instance_types`). Every other pool
    keeps it on the node group, as deployed stacks have it (moving it would replace the node group)."""
    return capacity.type == "capacityBlock"


# Type token of the GPU pool component (components/nodepools.py uses this one), which owned each pool's placement
# group before the groups moved to one per zone.
GPU_POOL_TYPE = "disagg:aws:GpuNodePool"


def placement_group_alias_urn(stack: str, project: str, pool_component: str) -> str:
    """URN of the cluster placement group a GPU pool component `pool_component` (a child of the stack) used to own,
    `<pool_component>-pg`: the shared group of the pool's zone takes it over, so a deployed stack keeps it."""
    return f"urn:pulumi:{stack}::{project}::{GPU_POOL_TYPE}$aws:ec2/placementGroup:PlacementGroup::{pool_component}-pg"


def placement(group_name: Any | None) -> dict[str, Any] | None:
    return {"group_name": group_name} if group_name is not None else None


def tag_specifications(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"resource_type": t, "tags": dict(tags)} for t in TAGGED_AT_LAUNCH]


def launch_template(
    *,
    description: str,
    root_volume_gb: int,
    tags: dict[str, str],
    network_interfaces: list[dict[str, Any]] | None = None,
    capacity: Capacity | None = None,
    placement_group_name: Any | None = None,
    user_data: str | None = None,
    instance_type: str | None = None,
) -> dict[str, Any]:
    """All arguments of one node group's launch template. No `image_id`: EKS picks the AMI from the node group's
    `amiType`/`releaseVersion` and merges its bootstrap into `user_data` (which must then be MIME multipart)."""
    spec: dict[str, Any] = {
        "description": description,
        "update_default_version": True,
        "metadata_options": metadata_options(),
        "block_device_mappings": root_volume(root_volume_gb),
        "tag_specifications": tag_specifications(tags),
    }
    if instance_type is not None:
        spec["instance_type"] = instance_type
    if network_interfaces:
        spec["network_interfaces"] = network_interfaces
    if capacity is not None:
        spec.update(capacity_options(capacity))
    if placement_group_name is not None:
        spec["placement"] = placement(placement_group_name)
    if user_data is not None:
        spec["user_data"] = user_data
    return spec
