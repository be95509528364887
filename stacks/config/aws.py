"""Config of the AWS layer: network, cluster, the system node pool and the GPU node pools."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveInt

from facts.catalog import instance_type, known_instance_types
from stacks.config.base import AvailabilityZone, DnsLabel, FixableError, Model

# The only values CloudWatch Logs accepts for `retentionInDays` (PutRetentionPolicy API).
CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)

_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")


def _cidr(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise FixableError(f"not an IPv4 CIDR block ({exc})", "write it as a network address, e.g. 10.0.0.0/16") from None
    return value


def _principal(value: str) -> str:
    if not _ARN.match(value):
        raise FixableError(
            "not an IAM role or user ARN", "use arn:aws:iam::<12-digit account>:role/<name> (or :user/<name>)"
        )
    return value


def _vpc_id(value: str) -> str:
    if not re.match(r"^vpc-[0-9a-f]{8,17}$", value):
        raise FixableError("not a VPC id", "use the id of the VPC, e.g. vpc-0123456789abcdef0")
    return value


def _subnet_ids(value: dict[str, str]) -> dict[str, str]:
    for az, sid in value.items():
        if not re.match(r"^subnet-[0-9a-f]{8,17}$", sid):
            raise FixableError(f"zone {az}: not a subnet id", "use ids such as subnet-0123456789abcdef0", value=sid)
    return value


def _retention_days(value: int) -> int:
    if value not in CLOUDWATCH_RETENTION_DAYS:
        nearest = min(CLOUDWATCH_RETENTION_DAYS, key=lambda d: abs(d - value))
        raise FixableError(
            "not a retention CloudWatch Logs accepts",
            f"use one of {', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))} (nearest: {nearest})",
        )
    return value


def _reservation_id(value: str) -> str:
    if not re.match(r"^cr-[0-9a-f]{8,17}$", value):
        raise FixableError("not a capacity reservation id", "use the id, e.g. cr-0123456789abcdef0")
    return value


def _resource_group_arn(value: str) -> str:
    if not re.match(r"^arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:\d{12}:group/[A-Za-z0-9._-]+$", value):
        raise FixableError(
            "not a resource group ARN",
            "use the ARN of the Capacity Reservation group, e.g. arn:aws:resource-groups:us-east-1:123456789012:group/p5-odcrs",
        )
    return value


def _gpu_instance_type(value: str) -> str:
    """One of the catalog's GPU types (facts/catalog.py): the enum of what a GPU pool can run on."""
    gpu_types = ", ".join(known_instance_types(gpu=True))
    try:
        it = instance_type(value)
    except KeyError:
        raise FixableError("unknown instance type", f"use one of {gpu_types}") from None
    if not it.is_gpu:
        raise FixableError("has no GPU", f"use a GPU type: {gpu_types}")
    return value


def _cpu_instance_type(value: str) -> str:
    """One of the catalog's CPU types: the system pool runs controllers and the router."""
    cpu_types = ", ".join(known_instance_types(gpu=False))
    try:
        it = instance_type(value)
    except KeyError:
        raise FixableError("unknown instance type", f"use one of {cpu_types}") from None
    if it.is_gpu:
        raise FixableError("is a GPU type; the system pool runs controllers and the router", f"use a CPU type: {cpu_types}")
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
PrincipalArn = Annotated[str, AfterValidator(_principal)]
VpcId = Annotated[str, AfterValidator(_vpc_id)]
SubnetIds = Annotated[dict[str, str], AfterValidator(_subnet_ids)]
RetentionDays = Annotated[int, AfterValidator(_retention_days)]
ReservationId = Annotated[str, AfterValidator(_reservation_id)]
ResourceGroupArn = Annotated[str, AfterValidator(_resource_group_arn)]
GpuInstanceType = Annotated[str, AfterValidator(_gpu_instance_type)]
CpuInstanceType = Annotated[str, AfterValidator(_cpu_instance_type)]

# Checks that relate keys of one object to each other are rules (stacks/validation_sections.py), so that one run
# reports every problem: a model validator stops at the first one and hides the rest of the file.


class NetworkConfig(Model):
    """Where the cluster lives: a new VPC (default) or an existing one."""

    vpc_cidr: Cidr = Field("10.0.0.0/16", description="CIDR of the new VPC. Ignored with `existingVpcId`. Default `10.0.0.0/16`.")
    private_subnet_prefix_length: int = Field(
        18,
        ge=16,
        le=24,
        description=(
            "Prefix length of each private (node and pod) subnet, one per AZ. Default 18 (16,384 addresses): "
            "pods take VPC addresses and a p5.48xlarge with its pods eats many."
        ),
    )
    public_subnet_prefix_length: int = Field(
        24, ge=20, le=28, description="Prefix length of each public subnet (NAT gateways and internet-facing load balancers). Default 24."
    )
    nat_gateways: Literal["single", "perAz"] = Field(
        "single", description="`single` (one NAT gateway, cheaper, default) or `perAz` (one per AZ, survives an AZ outage)."
    )
    s3_gateway_endpoint: bool = Field(
        True, description="Add an S3 gateway endpoint so model weights pulled from S3 do not pay NAT data charges. Default true."
    )
    prefix_delegation: bool = Field(
        True,
        description="Turn on VPC CNI prefix delegation (/28 prefixes per ENI slot) so dense GPU nodes do not run out of pod IPs. Default true.",
    )
    existing_vpc_id: VpcId | None = Field(None, description="Use this VPC instead of creating one (`vpc-...`). Default: create a VPC.")
    existing_private_subnet_ids: SubnetIds | None = Field(
        None, description="With `existingVpcId`: private subnet id per availability zone, e.g. `{us-east-1a: subnet-...}`."
    )
    existing_public_subnet_ids: SubnetIds | None = Field(
        None, description="With `existingVpcId`: public subnet id per availability zone (for internet-facing load balancers)."
    )

class ClusterConfig(Model):
    """The EKS cluster."""

    name: DnsLabel | None = Field(None, description="EKS cluster name. Default: the deployment name.")
    kubernetes_version: str | None = Field(
        None, description="Kubernetes version of the control plane and nodes, e.g. `1.33`. Default: the `kubernetes` pin of the versions table."
    )
    endpoint_public_access: bool = Field(True, description="Expose the API endpoint publicly (restricted to `publicAccessCidrs`). Default true.")
    endpoint_private_access: bool = Field(True, description="Expose the API endpoint inside the VPC. Default true.")
    public_access_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the public endpoint. Required when `endpointPublicAccess` is true; `0.0.0.0/0` is refused by the prod policy.",
    )
    admin_principal_arns: list[PrincipalArn] = Field(
        default_factory=list, description="IAM roles/users given cluster-admin through EKS access entries (authentication mode API)."
    )
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = Field(
        default_factory=lambda: ["api", "audit", "authenticator"],
        description="Control-plane log types sent to CloudWatch. Default api, audit, authenticator.",
    )
    secrets_encryption: bool = Field(True, description="Envelope-encrypt Kubernetes secrets with a KMS key. Default true.")
    kms_key_arn: str | None = Field(None, description="Use this KMS key for secrets encryption instead of creating one.")
    log_retention_days: RetentionDays = Field(
        90,
        description=(
            "Days CloudWatch keeps the control-plane logs (the stack owns the log group, so it is deleted on destroy). "
            "One of the values CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ... Default 90."
        ),
    )
    deletion_protection: bool = Field(
        False,
        description=(
            "Refuse to delete the cluster until this is turned off (EKS deletion protection), and mark the GPU node "
            "groups `protect` in Pulumi state. Default false; set true for prod."
        ),
    )
    support_type: Literal["STANDARD", "EXTENDED"] = Field(
        "STANDARD",
        description=(
            "EKS upgrade policy: `STANDARD` (default) upgrades the control plane automatically when its version leaves "
            "standard support; `EXTENDED` keeps it on extended support, billed at 0.60 USD/h instead of 0.10 USD/h."
        ),
    )

class Taint(Model):
    key: str = Field(description="Taint key.")
    value: str = Field("", description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field("NoSchedule", description="Taint effect.")


class SystemPoolConfig(Model):
    """CPU nodes for controllers, CoreDNS, Helm hook jobs and the router."""

    instance_type: CpuInstanceType = Field("m7i.2xlarge", description="Instance type of the system nodes (a CPU type from the catalog). Default m7i.2xlarge.")
    nodes: PositiveInt = Field(2, description="Desired node count. Default 2 (controllers and router replicas spread over two nodes).")
    min_nodes: PositiveInt | None = Field(None, description="Minimum node count. Default: `nodes`.")
    max_nodes: PositiveInt | None = Field(None, description="Maximum node count. Default: `nodes`.")
    disk_size_gb: PositiveInt = Field(100, description="Root volume size in GB. Default 100.")

class CapacityConfig(Model):
    """Which EC2 capacity a GPU pool runs on."""

    type: Literal["onDemand", "capacityReservation", "capacityBlock"] = Field(
        "onDemand",
        description=(
            "`onDemand` (default), `capacityReservation` (a targeted On-Demand Capacity Reservation) or "
            "`capacityBlock` (EC2 Capacity Blocks for ML: one AZ, fixed dates)."
        ),
    )
    reservation_id: ReservationId | None = Field(
        None, description="Capacity reservation id (`cr-...`). Required for `capacityBlock`; for `capacityReservation` this or `reservationResourceGroupArn`."
    )
    reservation_resource_group_arn: ResourceGroupArn | None = Field(
        None, description="For `capacityReservation`: target a resource group of reservations instead of one id."
    )

class GpuPoolConfig(Model):
    """One GPU managed node group with its own launch template."""

    name: DnsLabel = Field(description="Pool name (DNS label, unique). Used in node group and launch template names.")
    role: Literal["prefill", "decode"] = Field(description="Which serving role runs on this pool: `prefill` or `decode`.")
    instance_type: GpuInstanceType = Field(description="GPU instance type from the catalog, e.g. p5.48xlarge.")
    nodes: NonNegativeInt = Field(
        description=(
            "Desired node count. 0 only for a `capacityBlock` pool created before its block starts (then set "
            "`maxNodes` to the block's instance count)."
        )
    )
    max_nodes: PositiveInt | None = Field(None, description="Maximum node count for later scale-out. Default: `nodes`.")
    max_unavailable: PositiveInt = Field(
        1,
        description=(
            "Nodes a node group update takes down at a time. GPU pools update with EKS's MINIMAL strategy (a node is "
            "drained and terminated before its replacement launches), so a roll needs no spare GPU node. Default 1."
        ),
    )
    node_repair: bool = Field(
        True,
        description=(
            "EKS node auto repair: replace a node whose kubelet stops reporting Ready or that the node monitoring "
            "agent marks unhealthy (GPU, kernel, network, storage). Default true."
        ),
    )
    availability_zones: list[AvailabilityZone] | None = Field(
        None,
        description=(
            "Zones of this pool. Default: the first stack AZ for EFA pools (EFA and placement groups need one AZ), "
            "every stack AZ otherwise. EFA and Capacity Block pools must have exactly one."
        ),
    )
    capacity: CapacityConfig = Field(default_factory=CapacityConfig, description="EC2 capacity the pool runs on.")
    efa: bool | None = Field(None, description="Attach EFA interfaces (one per network card). Default: on when the instance type supports EFA.")
    placement_group: bool | None = Field(
        None,
        description="Launch into a cluster placement group. Default: on for EFA pools except Capacity Blocks (already co-located).",
    )
    placement_group_name: str | None = Field(
        None,
        description=(
            "Launch into this existing cluster placement group instead of one the stack creates: needed when a capacity "
            "reservation was made inside a placement group, since only instances launched into that group use it."
        ),
    )
    root_volume_gb: PositiveInt = Field(200, description="Root EBS volume (gp3, encrypted) in GB. Default 200.")
    nvme_cache: bool = Field(
        True, description="Build a RAID0 of the instance-store NVMe for containerd and the model cache (when the type has NVMe). Default true."
    )
    ami_release_version: str | None = Field(
        None, description="EKS AL2023 NVIDIA AMI release for this pool. Default: the `eks-al2023-nvidia-ami` pin."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels.")
    taints: list[Taint] = Field(default_factory=list, description="Extra node taints (the GPU and role taints are always added).")
