"""The narrow, typed arguments of the AWS components: plain values, already derived.

Each component takes only what it reads, as values the stack computed from its config and plan (stacks/aws_args.py
builds them); nothing here knows the config models. Pure data: the builders take these too, so no Pulumi import.
Dependencies on other components (the network a cluster runs in, the cluster a pool joins) are constructor
arguments of the components, not fields here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from facts.catalog import InstanceType

CapacityType = Literal["onDemand", "capacityReservation", "capacityBlock"]


@dataclass(frozen=True)
class Capacity:
    """The EC2 capacity a GPU pool runs on: On-Demand, a targeted reservation (by id or resource group) or a Capacity
    Block (by id)."""

    type: CapacityType = "onDemand"
    reservation_id: str | None = None
    reservation_resource_group_arn: str | None = None

    @property
    def reserved(self) -> bool:
        return self.type in ("capacityReservation", "capacityBlock")


@dataclass(frozen=True)
class NetworkArgs:
    cluster_name: str  # names and discovery tags of the VPC's resources
    region: str
    zones: tuple[str, ...]
    vpc_cidr: str
    private_prefix: int
    public_prefix: int
    nat_gateways: Literal["single", "perAz"]
    s3_gateway_endpoint: bool
    # Bring-your-own VPC: when set, nothing is created and the subnets are taken as given (zone -> subnet id).
    existing_vpc_id: str | None = None
    existing_private_subnet_ids: Mapping[str, str] = field(default_factory=dict)
    existing_public_subnet_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    partition: str  # aws, aws-cn, aws-us-gov
    kubernetes_version: str
    prefix_delegation: bool  # the vpc-cni add-on's configuration
    admin_principal_arns: tuple[str, ...]
    secrets_encryption: bool
    kms_key_arn: str | None
    log_types: tuple[str, ...]
    log_retention_days: int
    endpoint_private_access: bool
    endpoint_public_access: bool
    public_access_cidrs: tuple[str, ...]
    deletion_protection: bool
    support_type: str
    auto_mode: bool  # disagg:nodeProvisioning autoMode: the cluster's compute, storage and load balancing capabilities
    efa_security_group: bool  # some GPU pool has EFA and launches with our security groups
    # zone -> Pulumi name of the GPU pool component whose placement group the zone's shared group took over (an alias).
    placement_groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SystemPoolArgs:
    cluster_name: str
    partition: str
    instance_type: str
    nodes: int
    min_nodes: int
    max_nodes: int
    disk_size_gb: int
    zones: tuple[str, ...]
    kubernetes_version: str
    ami_release_version: str
    labels: Mapping[str, str]
    tags: Mapping[str, str]  # the stack's AWS tags, put on what the launch template launches


@dataclass(frozen=True)
class GpuPoolArgs:
    """One GPU pool as every provisioning mode needs it: what the config says and what the plan derives from it."""

    name: str
    role: str
    instance: InstanceType
    nodes: int
    max_nodes: int  # `maxNodes`, else `nodes`
    max_unavailable: int
    node_repair: bool
    zones: tuple[str, ...]
    efa: bool
    # Launches into the cluster's shared placement group of its zone (components/cluster.py).
    shared_placement_group: bool
    placement_group_name: str | None  # a group of the user's own (a reservation made inside it)
    capacity: Capacity
    root_volume_gb: int
    nvme_cache: bool
    ami_release_version: str
    labels: Mapping[str, str]  # every node label: the pool, role and EFA labels, then the user's
    taints: tuple[Mapping[str, str], ...]  # every taint (key, value, effect): GPU, role, then the user's
    cluster_name: str
    partition: str
    kubernetes_version: str
    protect: bool  # managed node groups: protected in state with the cluster's deletion protection
    tags: Mapping[str, str]

    @property
    def instance_type(self) -> str:
        return self.instance.name


@dataclass(frozen=True)
class KarpenterArgs:
    cluster_name: str
    region: str
    partition: str
    node_repair: bool  # controller-wide feature gate: on when any GPU pool asks for node repair
