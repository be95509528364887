"""Rules inside one section of the config: keys of one object that must agree with each other.

These were model validators, which stop at the first problem of an object and hide the rest of the file behind
it; as rules (stacks/rules.py) they all run, alongside the cross-layer rules of stacks/validation.py.
"""

from __future__ import annotations

from facts.models import known_models
from stacks.config.base import MISSING, NAMESPACE, Issue, key_path
from stacks.config.stack import StackConfig
from stacks.rules import rule


def _shown(value):
    return MISSING if value is None else value


# ---- the stack file ----------------------------------------------------------------------------------------------


@rule("stack.secrets-encrypted", "hfToken", "serving.router.apiKey", context=("plaintext_secrets",))
def secrets_encrypted(cfg: StackConfig, plaintext_secrets=()):
    """A secret key is stored encrypted (`pulumi config set --secret`), never in plain text in the stack file."""
    for k in plaintext_secrets or ():
        yield Issue(
            key_path(*k.split(".")),
            "(plain text)",
            "a secret is stored in plain text in the stack file",
            _secret_fix(k),
        )


def _secret_fix(path: str) -> str:
    """The commands that move a plain-text key into the encrypted config (`--path` for a nested key)."""
    flag = " --path" if "." in path else ""
    return f"pulumi config rm{flag} {NAMESPACE}:{path} && pulumi config set --secret{flag} {NAMESPACE}:{path} <value>"


@rule("stack.region-matches-aws-region", "region", context=("aws_region",))
def region_matches_aws_region(cfg: StackConfig, aws_region=None):
    """`aws:region` (when set) names the same region as `disagg:region`.

    Every resource goes to `disagg:region` (the stack's explicit AWS provider, stacks/stack.py), but `aws:region`
    is what Pulumi's default AWS provider, `pulumi config`, the Pulumi Cloud console and any tool reading the
    stack's AWS settings see. Two regions in one stack file is always a mistake, usually a copy of another stack.
    """
    region = cfg.region
    if not aws_region or region == aws_region:
        return
    yield Issue(
        key_path("region"),
        region,
        f"differs from aws:region ({aws_region}): resources are created in {region}, while Pulumi's default AWS "
        f"provider and anything reading the stack's AWS config use {aws_region}",
        f"set both to the same region: `pulumi config set aws:region {region}` (or change disagg:region to {aws_region})",
    )


# ---- network -----------------------------------------------------------------------------------------------------


@rule("network.existing-subnets-need-vpc", "network.existingVpcId", "network.existingPrivateSubnetIds", "network.existingPublicSubnetIds")
def existing_subnets_need_vpc(cfg: StackConfig):
    """Existing subnet ids are given only with the existing VPC they belong to."""
    net = cfg.network
    if net.existing_vpc_id is None and (net.existing_private_subnet_ids or net.existing_public_subnet_ids):
        yield Issue(
            key_path("network", "existingVpcId"),
            MISSING,
            "existing subnet ids given without existingVpcId",
            "set existingVpcId too, or remove the existing*SubnetIds keys",
        )


@rule("network.existing-vpc-needs-private-subnets", "network.existingPrivateSubnetIds")
def existing_vpc_needs_private_subnets(cfg: StackConfig):
    """An existing VPC comes with the private subnet of every zone."""
    net = cfg.network
    if net.existing_vpc_id is not None and not net.existing_private_subnet_ids:
        yield Issue(
            key_path("network", "existingPrivateSubnetIds"),
            _shown(net.existing_private_subnet_ids),
            "existingVpcId needs existingPrivateSubnetIds",
            "map each availability zone to its private subnet id",
        )


# ---- cluster -----------------------------------------------------------------------------------------------------


@rule("cluster.endpoint-reachable", "cluster.endpointPrivateAccess", "cluster.endpointPublicAccess")
def endpoint_reachable(cfg: StackConfig):
    """At least one of the API endpoint accesses (public, private) is on."""
    c = cfg.cluster
    if not c.endpoint_public_access and not c.endpoint_private_access:
        yield Issue(
            key_path("cluster", "endpointPrivateAccess"),
            False,
            "both endpoint accesses are off, nothing could reach the API",
            "turn on endpointPrivateAccess",
        )


# ---- system pool -------------------------------------------------------------------------------------------------


@rule("system-pool.nodes-within-bounds", "systemPool.nodes", "systemPool.minNodes", "systemPool.maxNodes")
def system_nodes_within_bounds(cfg: StackConfig):
    """The system pool's `nodes` lies within `minNodes..maxNodes`."""
    sp = cfg.system_pool
    lo = sp.min_nodes if sp.min_nodes is not None else sp.nodes
    hi = sp.max_nodes if sp.max_nodes is not None else sp.nodes
    if not lo <= sp.nodes <= hi:
        yield Issue(
            key_path("systemPool", "nodes"), sp.nodes, f"outside minNodes..maxNodes ({lo}..{hi})", "keep minNodes <= nodes <= maxNodes"
        )


# ---- a GPU pool's capacity ---------------------------------------------------------------------------------------


def _cap(i: int, field: str) -> str:
    return key_path("gpuPools", i, "capacity", field)


@rule("pools.capacity-block-no-group", "gpuPools[].capacity.reservationResourceGroupArn", scope="pool")
def capacity_block_no_group(cfg: StackConfig, i: int, p):
    """A Capacity Block is targeted by its id, never by a resource group."""
    c = p.capacity
    if c.type == "capacityBlock" and c.reservation_resource_group_arn is not None:
        yield Issue(
            _cap(i, "reservationResourceGroupArn"),
            c.reservation_resource_group_arn,
            "a capacityBlock pool targets its block by id, not a resource group",
            "remove reservationResourceGroupArn and set reservationId to the block's cr-... id",
        )


@rule("pools.capacity-one-target", "gpuPools[].capacity.reservationId", "gpuPools[].capacity.reservationResourceGroupArn", scope="pool")
def capacity_one_target(cfg: StackConfig, i: int, p):
    """A pool targets one reservation id or one resource group, not both."""
    c = p.capacity
    # A Capacity Block given a group is told to drop it by pools.capacity-block-no-group.
    if c.type != "capacityBlock" and c.reservation_id is not None and c.reservation_resource_group_arn is not None:
        yield Issue(
            _cap(i, "reservationResourceGroupArn"),
            c.reservation_resource_group_arn,
            "both a reservation id and a resource group are given; a launch template targets one",
            "keep reservationId or reservationResourceGroupArn",
        )


@rule("pools.capacity-block-needs-id", "gpuPools[].capacity.reservationId", scope="pool")
def capacity_block_needs_id(cfg: StackConfig, i: int, p):
    """A Capacity Block pool names the reservation id of its block."""
    c = p.capacity
    if c.type == "capacityBlock" and c.reservation_id is None:
        yield Issue(
            _cap(i, "reservationId"),
            MISSING,
            "a capacityBlock pool needs the reservation id of the block",
            "buy the block (aws ec2 purchase-capacity-block) and set capacity.reservationId to its cr-... id",
        )


@rule("pools.reservation-needs-target", "gpuPools[].capacity.reservationId", scope="pool")
def reservation_needs_target(cfg: StackConfig, i: int, p):
    """A capacityReservation pool names a reservation id or a resource group of reservations."""
    c = p.capacity
    if c.type == "capacityReservation" and not (c.reservation_id or c.reservation_resource_group_arn):
        yield Issue(
            _cap(i, "reservationId"),
            _shown(c.reservation_id),
            "a capacityReservation pool needs a target",
            "set capacity.reservationId (cr-...) or capacity.reservationResourceGroupArn",
        )


@rule("pools.on-demand-no-reservation", "gpuPools[].capacity.type", scope="pool")
def on_demand_no_reservation(cfg: StackConfig, i: int, p):
    """An onDemand pool names no reservation (one that does means another capacity type)."""
    c = p.capacity
    if c.type == "onDemand" and (c.reservation_id or c.reservation_resource_group_arn):
        yield Issue(
            _cap(i, "type"),
            "onDemand",
            "a reservation is given but capacity.type is onDemand",
            "set capacity.type to capacityReservation or capacityBlock, or remove the reservation",
        )


# ---- a GPU pool's counts and zones -------------------------------------------------------------------------------


@rule("pools.zero-nodes-only-capacity-block", "gpuPools[].nodes", scope="pool")
def zero_nodes_only_capacity_block(cfg: StackConfig, i: int, p):
    """Only a Capacity Block pool starts at 0 nodes (created before its block starts)."""
    if p.nodes == 0 and p.capacity.type != "capacityBlock":
        yield Issue(
            key_path("gpuPools", i, "nodes"),
            0,
            "only a capacityBlock pool may start at 0 nodes (before its block starts)",
            "give the pool at least one node, or remove it",
        )


@rule("pools.zero-nodes-needs-max-nodes", "gpuPools[].maxNodes", scope="pool")
def zero_nodes_needs_max_nodes(cfg: StackConfig, i: int, p):
    """A Capacity Block pool at 0 nodes sets maxNodes (EKS needs maxSize >= 1)."""
    if p.nodes == 0 and p.capacity.type == "capacityBlock" and p.max_nodes is None:
        yield Issue(
            key_path("gpuPools", i, "maxNodes"),
            MISSING,
            "a capacityBlock pool at 0 nodes needs maxNodes (EKS needs maxSize >= 1)",
            "set maxNodes to the instance count of the block",
        )


@rule("pools.max-nodes-at-least-nodes", "gpuPools[].maxNodes", scope="pool")
def max_nodes_at_least_nodes(cfg: StackConfig, i: int, p):
    """A pool's maxNodes is at least its nodes."""
    if p.max_nodes is not None and p.max_nodes < p.nodes:
        yield Issue(key_path("gpuPools", i, "maxNodes"), p.max_nodes, f"below nodes={p.nodes}", "set maxNodes >= nodes")


@rule("pools.zones-listed-once", "gpuPools[].availabilityZones", scope="pool")
def pool_zones_listed_once(cfg: StackConfig, i: int, p):
    """A pool lists each of its zones once."""
    zones = p.availability_zones
    if zones is not None and len(set(zones)) != len(zones):
        yield Issue(key_path("gpuPools", i, "availabilityZones"), zones, "lists a zone twice", "list each zone once")


@rule("pools.zones-not-empty", "gpuPools[].availabilityZones", scope="pool")
def pool_zones_not_empty(cfg: StackConfig, i: int, p):
    """A pool that lists its zones lists at least one."""
    if p.availability_zones is not None and not p.availability_zones:
        yield Issue(
            key_path("gpuPools", i, "availabilityZones"), [], "empty", "list at least one zone, or remove the key for the default"
        )


@rule("pools.placement-group-name-needs-placement-group", "gpuPools[].placementGroupName", scope="pool")
def placement_group_name_needs_placement_group(cfg: StackConfig, i: int, p):
    """A pool given a placementGroupName does not also turn placementGroup off."""
    if p.placement_group_name is not None and p.placement_group is False:
        yield Issue(
            key_path("gpuPools", i, "placementGroupName"),
            p.placement_group_name,
            "placementGroup is false but a placementGroupName is given",
            "remove placementGroupName, or placementGroup: false",
        )


# ---- serving -----------------------------------------------------------------------------------------------------


@rule("serving.model-parameters-known", "serving.model.parametersBillions")
def model_parameters_known(cfg: StackConfig):
    """The model's parameter count is known: given, or in the sizing model catalog."""
    m = cfg.serving.model
    if m.parameters_billions is None:
        yield Issue(
            key_path("serving", "model", "parametersBillions"),
            MISSING,
            f"parametersBillions is not set and {m.id!r} is not in the sizing model catalog",
            f"set serving.model.parametersBillions, or use a catalogued id ({', '.join(known_models()[:6])}, ... see "
            "`python -m tooling.sizing models`)",
        )


@rule("serving.replicas-within-autoscaling-bounds", "serving.<role>.replicas", "serving.<role>.autoscaling.minReplicas", "serving.<role>.autoscaling.maxReplicas", scope="role")
def replicas_within_autoscaling_bounds(cfg: StackConfig, role: str):
    """A role's replicas lie within its autoscaling minReplicas..maxReplicas."""
    rc = cfg.serving.role(role)
    a = rc.autoscaling
    lo = a.min_replicas if a.min_replicas is not None else rc.replicas
    hi = a.max_replicas if a.max_replicas is not None else rc.replicas
    if not lo <= rc.replicas <= hi:
        yield Issue(
            key_path("serving", role, "replicas"),
            rc.replicas,
            f"outside autoscaling.minReplicas..maxReplicas ({lo}..{hi})",
            "keep minReplicas <= replicas <= maxReplicas",
        )

