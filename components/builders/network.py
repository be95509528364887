"""Network math: subnet CIDRs per zone, the subnet tags EKS and the Load Balancer Controller look for, the NAT
layout, the VPC CNI settings, and how many VPC addresses the nodes of each zone can take.

Pure functions of plain values; the Network and Cluster components only register what these return, and the
stack's validation sizes the subnets with them.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from components.builders.tags import cluster_tag
from facts.catalog import InstanceType

# AWS keeps the first four addresses and the last one of every subnet
# (https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html).
AWS_RESERVED_PER_SUBNET = 5

# Prefix delegation hands out /28 blocks: 16 pod addresses per ENI slot.
PREFIX_SIZE = 16
# Managed node groups without a custom AMI get max pods set by EKS, capped at 110 below 30 vCPUs and 250 above
# (EKS user guide, choosing-instance-type, "How maxPods is determined"); with prefix delegation the cap is what binds.
PD_MAX_PODS_SMALL, PD_MAX_PODS_LARGE, PD_LARGE_FROM_VCPUS = 110, 250, 30
# One spare /28 kept warm per node (WARM_PREFIX_TARGET=1 below), plus the primary addresses of up to two ENIs.
PD_WARM_ADDRESSES = PREFIX_SIZE
ENI_PRIMARY_ADDRESSES = 2

Tier = Literal["private", "public"]


@dataclass(frozen=True)
class SubnetLayout:
    """CIDR of every subnet, by tier and zone (zones in config order)."""

    private: dict[str, str]
    public: dict[str, str]

    def all(self) -> list[tuple[Tier, str, str]]:
        return [("private", az, c) for az, c in self.private.items()] + [("public", az, c) for az, c in self.public.items()]


class NetworkTooSmall(ValueError):
    pass


def subnet_layout(vpc_cidr: str, zones: Sequence[str], private_prefix: int, public_prefix: int) -> SubnetLayout:
    """Private subnets from the bottom of the VPC range up, public ones from the top down.

    Zone i always gets private block i and public block i counted from the top, so adding a zone later appends two
    subnets and moves none of the existing ones (a moved subnet would replace it, its NAT gateway and every node in it).
    """
    vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    if private_prefix < vpc.prefixlen or public_prefix < vpc.prefixlen:
        raise NetworkTooSmall(f"subnet prefixes /{private_prefix} and /{public_prefix} must not be larger than the VPC {vpc_cidr}")
    n = len(zones)
    if len(set(zones)) != n:
        raise ValueError(f"zones must be unique: {list(zones)}")
    priv_size, pub_size = 2 ** (32 - private_prefix), 2 ** (32 - public_prefix)
    if n * (priv_size + pub_size) > vpc.num_addresses:
        raise NetworkTooSmall(
            f"{vpc_cidr} cannot hold {n} private /{private_prefix} and {n} public /{public_prefix} subnets"
        )
    base, top = int(vpc.network_address), int(vpc.broadcast_address) + 1
    private = {az: str(ipaddress.IPv4Network((base + i * priv_size, private_prefix))) for i, az in enumerate(zones)}
    public = {az: str(ipaddress.IPv4Network((top - (i + 1) * pub_size, public_prefix))) for i, az in enumerate(zones)}
    return SubnetLayout(private=private, public=public)


def usable_addresses(prefix: int) -> int:
    return 2 ** (32 - prefix) - AWS_RESERVED_PER_SUBNET


def subnet_tags(cluster_name: str, tier: Tier, zone: str) -> dict[str, str]:
    """Tags EKS and the AWS Load Balancer Controller discover subnets by: `kubernetes.io/role/elb` on public subnets
    (internet-facing load balancers), `kubernetes.io/role/internal-elb` on private ones (internal load balancers),
    and the cluster tag (https://docs.aws.amazon.com/eks/latest/userguide/network-load-balancing.html)."""
    role = "kubernetes.io/role/elb" if tier == "public" else "kubernetes.io/role/internal-elb"
    return {"Name": f"{cluster_name}-{tier}-{zone}", role: "1", **cluster_tag(cluster_name)}


def nat_routes(zones: Sequence[str], mode: Literal["single", "perAz"]) -> dict[str, str]:
    """For every zone, the zone whose NAT gateway its private subnet routes through.

    `single`: one NAT gateway in the first zone (dev: saves the hourly charge; an outage of that zone cuts egress
    everywhere). `perAz`: one per zone, so a zone outage only takes its own egress, and no cross-AZ data charge.
    """
    if mode == "perAz":
        return {az: az for az in zones}
    return {az: zones[0] for az in zones}


def nat_zones(zones: Sequence[str], mode: Literal["single", "perAz"]) -> list[str]:
    routes = nat_routes(zones, mode)
    return [az for az in zones if az in set(routes.values())]


def s3_service_name(region: str) -> str:
    return f"com.amazonaws.{region}.s3"


def vpc_cni_configuration(prefix_delegation: bool) -> dict:
    """`configuration_values` of the vpc-cni add-on.

    Prefix delegation assigns /28 prefixes instead of single addresses to ENI slots, so a node's pod capacity no
    longer ends at its ENI address count (p5.48xlarge: 100 pods without it). WARM_PREFIX_TARGET=1 keeps one spare
    prefix per node instead of a whole warm ENI worth of addresses.

    `enableNetworkPolicy` turns on the VPC CNI's network policy agent: without it EKS accepts NetworkPolicy
    objects and enforces none of them, so the serving layer's client -> router -> prefill/decode rules would be
    decoration (EKS "Limit pod traffic with Kubernetes network policies", VPC CNI >= 1.14).
    """
    env = {"ENABLE_PREFIX_DELEGATION": "true" if prefix_delegation else "false"}
    if prefix_delegation:
        env["WARM_PREFIX_TARGET"] = "1"
    return {"env": env, "enableNetworkPolicy": "true"}


def node_max_pods(it: InstanceType, prefix_delegation: bool) -> int:
    if not prefix_delegation:
        return it.max_pods
    return PD_MAX_PODS_LARGE if it.vcpus >= PD_LARGE_FROM_VCPUS else PD_MAX_PODS_SMALL


def node_addresses(it: InstanceType, prefix_delegation: bool) -> int:
    """VPC addresses one node can take from its subnet when full of pods (an upper estimate).

    EFA-only interfaces carry no IP address, so the 31 extra interfaces of a p5.48xlarge cost nothing here: only the
    card-0 interface (the node's primary ENI) and the ENIs the VPC CNI adds on that card draw from the subnet.
    Without prefix delegation that is the ENI address capacity the catalog's `max_pods` is computed from; with it,
    whole /28 prefixes for the pods plus one warm prefix.
    """
    if not prefix_delegation:
        return it.max_pods + ENI_PRIMARY_ADDRESSES
    pods = node_max_pods(it, True)
    return math.ceil(pods / PREFIX_SIZE) * PREFIX_SIZE + PD_WARM_ADDRESSES + ENI_PRIMARY_ADDRESSES


@dataclass(frozen=True)
class NodeSpread:
    """Nodes of one pool as the subnets see them: its instance type, its maximum node count and its zones."""

    instance: InstanceType
    max_nodes: int
    zones: tuple[str, ...]


def zone_address_demand(zones: Sequence[str], pools: Sequence[NodeSpread], prefix_delegation: bool) -> dict[str, int]:
    """Addresses the nodes of each zone can take at their maximum node counts (`zones` first, in order, then any
    other zone a pool names).

    A pool spread over several zones is assumed balanced (managed node groups rebalance across their subnets), so
    each zone gets its rounded-up share.
    """
    demand = {az: 0 for az in zones}
    for pool in pools:
        share = math.ceil(pool.max_nodes / len(pool.zones))
        for az in pool.zones:
            demand[az] = demand.get(az, 0) + share * node_addresses(pool.instance, prefix_delegation)
    return demand
