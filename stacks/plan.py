"""Numbers derived from the typed config: how each role maps onto its pools, GPU packing and cost.

Pure functions of `StackConfig` and the catalog, used by validation, the builders and the render summary,
so the three can never disagree.
"""

from __future__ import annotations

from facts.conventions import ROLES
import math
from dataclasses import asdict, dataclass

from components.builders.scheduling import pool_efa  # one definition: the node labels say the same
from facts.catalog import InstanceType, instance_type
from stacks.config.aws import GpuPoolConfig
from stacks.config.stack import StackConfig
from facts.versions import pin



def pool_instance(pool: GpuPoolConfig) -> InstanceType:
    return instance_type(pool.instance_type)


def pool_zones(cfg: StackConfig, pool: GpuPoolConfig) -> list[str]:
    """Zones of a pool. EFA pools default to one zone: EFA traffic and cluster placement groups stay in one AZ."""
    if pool.availability_zones:
        return list(pool.availability_zones)
    return [cfg.availability_zones[0]] if pool_efa(pool) else list(cfg.availability_zones)


def pool_placement_group(pool: GpuPoolConfig) -> bool:
    """Capacity Blocks are already co-located by EC2, so they get no placement group unless asked for."""
    if pool.placement_group_name is not None:
        return True
    if pool.placement_group is not None:
        return pool.placement_group
    return pool_efa(pool) and pool.capacity.type != "capacityBlock"


# disagg:nodeProvisioning modes in which something adds and removes GPU nodes for pending pods (Karpenter, or EKS
# Auto Mode's managed Karpenter), so a pool runs between `nodes` and `maxNodes`.
NODE_AUTOSCALING_MODES = ("karpenter", "autoMode")


def node_autoscaling(cfg: StackConfig) -> bool:
    return cfg.node_provisioning in NODE_AUTOSCALING_MODES


def pool_max_nodes(pool: GpuPoolConfig) -> int:
    return pool.max_nodes or pool.nodes


def role_nodes_at_max(cfg: StackConfig, role: str) -> int:
    """Nodes the pools of a role may grow to: the sum of their `maxNodes` (node autoscaling modes only)."""
    return sum(pool_max_nodes(p) for p in cfg.pools_for(role))


def pool_uses_placement_group(cfg: StackConfig, pool: GpuPoolConfig) -> bool:
    """EKS Auto Mode launches no instance into a placement group of ours: its built-in NodeClass has no placement
    group selector (EKS user guide device-management-efa: "EKS Auto Mode ... do not support placement groups")."""
    return pool_placement_group(pool) and cfg.node_provisioning != "autoMode"


def gpu_pool_resource_name(cfg: StackConfig, pool_name: str) -> str:
    """Pulumi name of a GPU pool's component: its children's names (and so their URNs) derive from it."""
    return f"{cfg.name}-{pool_name}"


def shared_placement_groups(cfg: StackConfig) -> dict[str, list[str]]:
    """zone -> names (config order) of the pools that launch into the stack's cluster placement group of that zone.

    One group per zone, shared by every EFA pool there (prefill and decode alike), so KV moves between them over the
    shortest path; a pool with its own `placementGroupName` (a reservation made inside that group) and a Capacity
    Block pool (co-located by EC2 already) are not in it.
    """
    out: dict[str, list[str]] = {}
    for p in cfg.gpu_pools:
        if pool_uses_placement_group(cfg, p) and p.placement_group_name is None:
            out.setdefault(pool_zones(cfg, p)[0], []).append(p.name)
    return out


def pool_serving_nodes(pool: GpuPoolConfig) -> int:
    """Nodes a pool serves with: `nodes`, except a Capacity Block pool created at 0 before its block starts, which
    serves with `maxNodes` once the block is active and is scaled up to it."""
    if pool.nodes == 0 and pool.capacity.type == "capacityBlock":
        return pool.max_nodes or 0
    return pool.nodes


def role_nodes_available(cfg: StackConfig, role: str) -> int:
    return sum(pool_serving_nodes(p) for p in cfg.pools_for(role))


def pool_efa_interfaces(pool: GpuPoolConfig) -> int:
    return pool_instance(pool).efa_interfaces if pool_efa(pool) else 0


def kubernetes_version(cfg: StackConfig) -> str:
    return cfg.cluster.kubernetes_version or pin("kubernetes").version


def ami_release_version(pool: GpuPoolConfig) -> str:
    return pool.ami_release_version or pin("eks-al2023-nvidia-ami").version


def role_pools_efa(cfg: StackConfig, role: str) -> bool:
    """Every pool of the role has EFA (validation refuses a role that mixes EFA and non-EFA pools)."""
    pools = cfg.pools_for(role)
    return bool(pools) and all(pool_efa(p) for p in pools)


def efa_per_pod_default(inst: InstanceType, pods_per_node: int) -> int:
    """The node's EFA interfaces shared evenly by its pods: p5 (32 EFA, 8 GPU) gives a 2-GPU pod 8, p4d (4 EFA,
    8 GPU) a 2-GPU pod 1 and a 1-GPU pod 0 (refused by validation: an EFA device cannot be shared between pods)."""
    return inst.efa_interfaces // max(pods_per_node, 1)


def role_efa(cfg: StackConfig, role: str) -> bool:
    """The role's pods request EFA devices: its pools have EFA and the plan gives each pod at least one interface."""
    return role_pools_efa(cfg, role) and role_plan(cfg, role).efa_per_pod > 0


def kv_transfer(cfg: StackConfig) -> bool:
    """Whether KV moves between pods: disaggregated mode only."""
    return cfg.serving.mode == "disaggregated"


def kv_backend(cfg: StackConfig) -> str:
    """NIXL backend: LIBFABRIC when every prefill and decode pod gets EFA devices (UCX over EFA falls back to TCP);
    `none` in aggregated mode, where no KV moves between pods."""
    if not kv_transfer(cfg):
        return "none"
    backend = cfg.serving.kv_transfer.backend
    if backend != "auto":
        return backend
    return "LIBFABRIC" if all(role_efa(cfg, r) for r in ROLES) else "UCX"


def autoscaling_enabled(cfg: StackConfig, role: str) -> bool:
    """KEDA scales the role: the explicit switch, else on under `lws` and off under `grove` (a Grove PodClique only
    exposes a scale selector with Grove's own scale config, which KEDA does not use)."""
    enabled = cfg.serving.role(role).autoscaling.enabled
    return enabled if enabled is not None else cfg.platform.workload_api == "lws"


@dataclass(frozen=True)
class RolePlan:
    role: str
    replicas: int
    max_replicas: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    expert_parallel: bool
    gpus_per_replica: int
    nodes_per_replica: int
    pods_per_replica: int
    gpus_per_pod: int
    efa_per_pod: int
    pods_per_node: int
    instance_type: str
    pools: tuple[str, ...]
    nodes_available: int
    nodes_needed: int
    nodes_needed_at_max: int
    gpus_requested: int

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1


def role_plan(cfg: StackConfig, role: str) -> RolePlan:
    """How one role lands on its pools. Assumes the pools of a role share one instance type (validation checks)."""
    rc = cfg.serving.role(role)
    pools = cfg.pools_for(role)
    inst = pool_instance(pools[0])
    gpn = max(inst.gpus, 1)
    gpus = rc.gpus_per_replica
    if gpus <= gpn:
        nodes_per_replica, gpus_per_pod = 1, gpus
        pods_per_node = gpn // gpus
    else:
        # A replica larger than a node takes whole nodes: one pod per node, all of its GPUs.
        nodes_per_replica, gpus_per_pod = math.ceil(gpus / gpn), gpn
        pods_per_node = 1
    efa = all(pool_efa(p) for p in pools)
    default_efa = efa_per_pod_default(inst, pods_per_node) if efa else 0
    efa_per_pod = rc.efa_per_pod if rc.efa_per_pod is not None and efa else default_efa
    max_replicas = rc.autoscaling.max_replicas or rc.replicas

    def nodes_for(replicas: int) -> int:
        if nodes_per_replica > 1:
            return replicas * nodes_per_replica
        return math.ceil(replicas / max(pods_per_node, 1))

    return RolePlan(
        role=role,
        replicas=rc.replicas,
        max_replicas=max_replicas,
        tensor_parallel=rc.tensor_parallel,
        pipeline_parallel=rc.pipeline_parallel,
        data_parallel=rc.data_parallel,
        expert_parallel=rc.expert_parallel,
        gpus_per_replica=gpus,
        nodes_per_replica=nodes_per_replica,
        pods_per_replica=nodes_per_replica,
        gpus_per_pod=gpus_per_pod,
        efa_per_pod=efa_per_pod,
        pods_per_node=pods_per_node,
        instance_type=inst.name,
        pools=tuple(p.name for p in pools),
        nodes_available=sum(p.nodes for p in pools),
        nodes_needed=nodes_for(rc.replicas),
        nodes_needed_at_max=nodes_for(max_replicas),
        gpus_requested=rc.replicas * gpus,
    )


@dataclass(frozen=True)
class PoolPlan:
    name: str
    role: str
    instance_type: str
    nodes: int
    max_nodes: int
    gpus_per_node: int
    gpu_model: str | None
    efa_interfaces_per_node: int
    capacity: str
    availability_zones: tuple[str, ...]
    placement_group: bool
    usd_per_node_hour: float
    price_region: str
    price_estimate: bool
    serving_nodes: int
    # Node autoscaling modes: the pool runs between `serving_nodes` (what `replicas` need) and `max_nodes` (what
    # `autoscaling.maxReplicas` may need); with managed node groups both are `serving_nodes`.
    nodes_at_max: int


@dataclass(frozen=True)
class StackPlan:
    name: str
    region: str
    cluster_name: str
    kubernetes_version: str
    workload_api: str
    kv_backend: str
    pools: tuple[PoolPlan, ...]
    roles: tuple[RolePlan, ...]
    system_instance_type: str
    system_nodes: int
    gpus_provisioned: int
    gpus_requested: int
    gpu_packing: float
    hourly_cost_usd: float
    cost_breakdown: dict[str, float]
    node_provisioning: str = "managedNodeGroups"
    gpus_at_max: int = 0  # GPUs of the pools at maxNodes (node autoscaling), else gpus_provisioned
    hourly_cost_at_max_usd: float = 0.0
    cost_breakdown_at_max: dict[str, float] | None = None

    def role(self, name: str) -> RolePlan:
        return next(r for r in self.roles if r.role == name)

    def to_dict(self) -> dict:
        return asdict(self)


def plan(cfg: StackConfig) -> StackPlan:
    """The whole derived picture. Call only on a validated config."""
    from facts.catalog import service_price  # late import: keeps the price facts beside the instance facts

    pools = tuple(
        PoolPlan(
            name=p.name,
            role=p.role,
            instance_type=p.instance_type,
            nodes=p.nodes,
            max_nodes=p.max_nodes or p.nodes,
            gpus_per_node=pool_instance(p).gpus,
            gpu_model=pool_instance(p).gpu_model,
            efa_interfaces_per_node=pool_efa_interfaces(p),
            capacity=p.capacity.type,
            availability_zones=tuple(pool_zones(cfg, p)),
            placement_group=pool_uses_placement_group(cfg, p),
            usd_per_node_hour=pool_instance(p).on_demand_usd_per_hour,
            price_region=pool_instance(p).price_region,
            price_estimate=pool_instance(p).price_estimate,
            serving_nodes=pool_serving_nodes(p),
            nodes_at_max=pool_max_nodes(p) if node_autoscaling(cfg) else pool_serving_nodes(p),
        )
        for p in cfg.gpu_pools
    )
    roles = tuple(role_plan(cfg, r) for r in ROLES)
    provisioned = sum(p.serving_nodes * p.gpus_per_node for p in pools)
    requested = sum(r.gpus_requested for r in roles)
    system = instance_type(cfg.system_pool.instance_type)
    nat = 0 if cfg.network.existing_vpc_id else (len(cfg.availability_zones) if cfg.network.nat_gateways == "perAz" else 1)
    breakdown = {f"gpu pool {p.name} ({p.nodes} x {p.instance_type})": p.nodes * p.usd_per_node_hour for p in pools}
    breakdown[f"system pool ({cfg.system_pool.nodes} x {system.name})"] = cfg.system_pool.nodes * system.on_demand_usd_per_hour
    breakdown["EKS control plane"] = service_price("eks-control-plane")
    if nat:
        breakdown[f"NAT gateways ({nat})"] = nat * service_price("nat-gateway")
    fixed = {k: v for k, v in breakdown.items() if not k.startswith("gpu pool ")}
    breakdown = {k: round(v, 4) for k, v in breakdown.items()}
    at_max = {f"gpu pool {p.name} ({p.nodes_at_max} x {p.instance_type})": p.nodes_at_max * p.usd_per_node_hour for p in pools}
    at_max = {k: round(v, 4) for k, v in {**at_max, **fixed}.items()}
    return StackPlan(
        name=cfg.name,
        region=cfg.region,
        cluster_name=cfg.cluster_name,
        kubernetes_version=kubernetes_version(cfg),
        workload_api=cfg.platform.workload_api,
        kv_backend=kv_backend(cfg),
        pools=pools,
        roles=roles,
        system_instance_type=system.name,
        system_nodes=cfg.system_pool.nodes,
        gpus_provisioned=provisioned,
        gpus_requested=requested,
        gpu_packing=round(requested / provisioned, 4) if provisioned else 0.0,
        hourly_cost_usd=round(sum(breakdown.values()), 2),
        cost_breakdown=breakdown,
        node_provisioning=cfg.node_provisioning,
        gpus_at_max=sum(p.nodes_at_max * p.gpus_per_node for p in pools),
        hourly_cost_at_max_usd=round(sum(at_max.values()), 2),
        cost_breakdown_at_max=at_max,
    )
