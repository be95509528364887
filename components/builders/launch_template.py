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

from stacks.catalog import InstanceType
from stacks.config.aws import CapacityConfig

# Root device of the EKS AL2023 AMIs (pulumi-eks uses the same name for its own launch templates).
ROOT_DEVICE = "/dev/xvda"
ROOT_VOLUME_TYPE = "gp3"
# A pod that reaches IMDSv2 through the node crosses one extra network hop (its own network namespace): with the
# EC2 default limit of 1 the PUT for the token never comes back. 2 is what the EKS docs and pulumi-eks use.
IMDS_HOP_LIMIT = 2
# Tagged at launch so instances, their volumes and their ENIs carry the stack tags (the provider's default tags only
# reach the launch template itself): cost allocation and the teardown sweep find them by these.
TAGGED_AT_LAUNCH = ("instance", "volume", "network-interface")

ON_DEMAND = "ON_DEMAND"
CAPACITY_BLOCK = "CAPACITY_BLOCK"


def efa_network_interfaces(it: InstanceType, security_groups: Sequence[Any]) -> list[dict[str, Any]]:
    """One interface per network card, as EFA needs: card 0 is `efa` (EFA with ENA, the primary interface, device
    index 0); every other card is `efa-only` at device index 1 (an efa-only interface can never be primary).

    The same layout pulumi-eks (`getEfaNetworkInterfaces`) and terraform-aws-eks (`efa_network_interfaces`) use.
    Each interface carries every security group: once interfaces name their own groups EKS stops adding the cluster
    security group, so it must be in the list.
    """
    if not it.supports_efa:
        raise ValueError(f"{it.name} has no EFA; it gets no EFA interfaces")
    if it.efa_interfaces > it.network_cards:
        raise ValueError(f"{it.name}: {it.efa_interfaces} EFA interfaces but only {it.network_cards} network cards")
    if not security_groups:
        raise ValueError("EFA interfaces need security groups (at least the cluster security group)")
    return [
        {
            "network_card_index": card,
            "device_index": 0 if card == 0 else 1,
            "interface_type": "efa" if card == 0 else "efa-only",
            "security_groups": list(security_groups),
            "delete_on_termination": "true",
        }
        for card in range(it.efa_interfaces)
    ]


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
    """IMDSv2 only (no session-less IMDSv1 requests), reachable from pods that need it."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        "instance_metadata_tags": "disabled",
    }


def node_group_capacity_type(capacity: CapacityConfig) -> str:
    """Managed node group `capacityType`: a Capacity Block pool must say CAPACITY_BLOCK or EKS rejects it; a targeted
    On-Demand Capacity Reservation is still ON_DEMAND capacity."""
    return CAPACITY_BLOCK if capacity.type == "capacityBlock" else ON_DEMAND


def capacity_options(capacity: CapacityConfig) -> dict[str, Any]:
    """Launch template arguments that put instances on the configured capacity.

    - onDemand: nothing (EC2 default: open reservations are used if they match, On-Demand otherwise).
    - capacityReservation: target the reservation (or resource group of reservations) explicitly, so the pool never
      launches outside it while it has room.
    - capacityBlock: market type `capacity-block` plus the block's reservation id
      (https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html).
    """
    if capacity.type == "onDemand":
        return {}
    if capacity.reservation_id:
        target = {"capacity_reservation_id": capacity.reservation_id}
    else:
        target = {"capacity_reservation_resource_group_arn": capacity.reservation_resource_group_arn}
    out: dict[str, Any] = {"capacity_reservation_specification": {"capacity_reservation_target": target}}
    if capacity.type == "capacityBlock":
        out["instance_market_options"] = {"market_type": "capacity-block"}
    return out


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
    capacity: CapacityConfig | None = None,
    placement_group_name: Any | None = None,
    user_data: str | None = None,
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
    if network_interfaces:
        spec["network_interfaces"] = network_interfaces
    if capacity is not None:
        spec.update(capacity_options(capacity))
    if placement_group_name is not None:
        spec["placement"] = placement(placement_group_name)
    if user_data is not None:
        spec["user_data"] = user_data
    return spec
