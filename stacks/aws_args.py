"""The AWS components' arguments, from the typed config and its plan (components/aws_args.py says what each holds).

The one place that reads the config models for the AWS layer: the components and builders get plain values. Also
the scheduling values of a pool (its node labels and taints) and what the other layers derive from them, so the
platform's daemons and the serving pods tolerate exactly what the node pools set.
"""

from __future__ import annotations

from components.aws_args import Capacity, ClusterArgs, GpuPoolArgs, KarpenterArgs, NetworkArgs, SystemPoolArgs
from components.builders.iam import partition
from components.builders.network import NodeSpread
from components.builders.network import zone_address_demand as _zone_address_demand
from components.builders.scheduling import daemon_tolerations as _daemon_tolerations
from components.builders.scheduling import gpu_pool_labels, gpu_pool_taints, system_pool_labels
from components.builders.tags import default_tags
from facts.catalog import instance_type
from facts.versions import pin
from stacks.config.aws import GpuPoolConfig
from stacks.config.stack import StackConfig
from stacks.plan import (
    ami_release_version,
    gpu_pool_resource_name,
    kubernetes_version,
    pool_efa,
    pool_instance,
    pool_max_nodes,
    pool_uses_placement_group,
    pool_zones,
    shared_placement_groups,
)


def stack_tags(cfg: StackConfig, stack: str) -> dict[str, str]:
    """The AWS tags of every taggable resource of the stack (the provider's default tags, and what launch templates
    put on instances, volumes and interfaces)."""
    return default_tags(cfg.tags, cfg.name, stack)


def network_args(cfg: StackConfig) -> NetworkArgs:
    net = cfg.network
    return NetworkArgs(
        cluster_name=cfg.cluster_name,
        region=cfg.region,
        zones=tuple(cfg.availability_zones),
        vpc_cidr=net.vpc_cidr,
        private_prefix=net.private_subnet_prefix_length,
        public_prefix=net.public_subnet_prefix_length,
        nat_gateways=net.nat_gateways,
        s3_gateway_endpoint=net.s3_gateway_endpoint,
        existing_vpc_id=net.existing_vpc_id,
        existing_private_subnet_ids=dict(net.existing_private_subnet_ids or {}),
        existing_public_subnet_ids=dict(net.existing_public_subnet_ids or {}),
    )


def cluster_args(cfg: StackConfig) -> ClusterArgs:
    cc = cfg.cluster
    return ClusterArgs(
        cluster_name=cfg.cluster_name,
        partition=partition(cfg.region),
        kubernetes_version=kubernetes_version(cfg),
        prefix_delegation=cfg.network.prefix_delegation,
        admin_principal_arns=tuple(cc.admin_principal_arns),
        secrets_encryption=cc.secrets_encryption,
        kms_key_arn=cc.kms_key_arn,
        log_types=tuple(cc.log_types),
        log_retention_days=cc.log_retention_days,
        endpoint_private_access=cc.endpoint_private_access,
        endpoint_public_access=cc.endpoint_public_access,
        public_access_cidrs=tuple(cc.public_access_cidrs),
        deletion_protection=cc.deletion_protection,
        support_type=cc.support_type,
        auto_mode=cfg.node_provisioning == "autoMode",
        # Not on EKS Auto Mode: its built-in NodeClass puts the cluster security group (all traffic within itself) on
        # the nodes and takes no group of ours.
        efa_security_group=any(pool_efa(p) for p in cfg.gpu_pools) and cfg.node_provisioning != "autoMode",
        placement_groups={zone: gpu_pool_resource_name(cfg, pools[0]) for zone, pools in shared_placement_groups(cfg).items()},
    )


def system_pool_args(cfg: StackConfig, tags: dict[str, str]) -> SystemPoolArgs:
    sp = cfg.system_pool
    return SystemPoolArgs(
        cluster_name=cfg.cluster_name,
        partition=partition(cfg.region),
        instance_type=sp.instance_type,
        nodes=sp.nodes,
        min_nodes=sp.min_nodes or sp.nodes,
        max_nodes=sp.max_nodes or sp.nodes,
        disk_size_gb=sp.disk_size_gb,
        zones=tuple(cfg.availability_zones),
        kubernetes_version=kubernetes_version(cfg),
        ami_release_version=pin("eks-al2023-ami").version,
        labels=system_pool_labels(),
        tags=dict(tags),
    )


def pool_labels(pool: GpuPoolConfig) -> dict[str, str]:
    """Every node label of a GPU pool."""
    return gpu_pool_labels(pool)


def pool_taints(pool: GpuPoolConfig) -> list[dict[str, str]]:
    """Every taint of a GPU pool (key, value, effect)."""
    return gpu_pool_taints(pool)


def daemon_tolerations(cfg: StackConfig, pools: list[GpuPoolConfig] | None = None) -> list[dict[str, str]]:
    """Tolerations of a daemon that runs on every node of the given GPU pools (default: all)."""
    return _daemon_tolerations(pools if pools is not None else cfg.gpu_pools)


def gpu_pool_args(cfg: StackConfig, pool: GpuPoolConfig, tags: dict[str, str]) -> GpuPoolArgs:
    cap = pool.capacity
    return GpuPoolArgs(
        name=pool.name,
        role=pool.role,
        instance=pool_instance(pool),
        nodes=pool.nodes,
        max_nodes=pool_max_nodes(pool),
        max_unavailable=pool.max_unavailable,
        node_repair=pool.node_repair,
        zones=tuple(pool_zones(cfg, pool)),
        efa=pool_efa(pool),
        # The zone's shared group (shared_placement_groups): a pool with a group of its own, a Capacity Block pool
        # (co-located by EC2 already) and EKS Auto Mode (no placement group selector) are not in it.
        shared_placement_group=pool_uses_placement_group(cfg, pool) and pool.placement_group_name is None,
        placement_group_name=pool.placement_group_name,
        capacity=Capacity(type=cap.type, reservation_id=cap.reservation_id, reservation_resource_group_arn=cap.reservation_resource_group_arn),
        root_volume_gb=pool.root_volume_gb,
        nvme_cache=pool.nvme_cache,
        ami_release_version=ami_release_version(pool),
        labels=pool_labels(pool),
        taints=tuple(pool_taints(pool)),
        cluster_name=cfg.cluster_name,
        partition=partition(cfg.region),
        kubernetes_version=kubernetes_version(cfg),
        protect=cfg.cluster.deletion_protection,
        tags=dict(tags),
    )


def karpenter_args(cfg: StackConfig) -> KarpenterArgs:
    return KarpenterArgs(
        cluster_name=cfg.cluster_name,
        region=cfg.region,
        partition=partition(cfg.region),
        node_repair=any(p.node_repair for p in cfg.gpu_pools),
    )


def zone_address_demand(cfg: StackConfig) -> dict[str, int]:
    """Addresses the nodes of each zone can take at the pools' maximum node counts (the system pool over every zone).
    Requires instance types known to the catalog."""
    system = cfg.system_pool
    spreads = [NodeSpread(instance_type(system.instance_type), system.max_nodes or system.nodes, tuple(cfg.availability_zones))]
    spreads += [NodeSpread(instance_type(p.instance_type), pool_max_nodes(p), tuple(pool_zones(cfg, p))) for p in cfg.gpu_pools]
    return _zone_address_demand(cfg.availability_zones, spreads, cfg.network.prefix_delegation)

