"""Cross-layer rules of the stack config: what needs the catalog, the plan or more than one section.

Each rule is registered in stacks/rules.py with an id and the keys it is about, and yields an `Issue` naming the
`disagg:` key, the bad value and the fix. Rules run on whatever parsed: a rule that reads a value that did not
parse, or whose precondition another rule reports (`need`), is skipped for that pool or role only.
"""

from __future__ import annotations

from collections import Counter

from components.builders.network import node_addresses, usable_addresses
from components.builders.observability import SLO_SERIES, le
from components.builders.platform_objects import KAI_DEFAULT_QUEUES
from components.builders.userdata import RAID0_MOUNT
from facts.catalog import InstanceType, instance_type, known_instance_types
from facts.conventions import ROLES
from facts.versions import pin
from stacks.aws_args import zone_address_demand
from stacks.config.base import Issue, key_path
from stacks.config.serving import BYTES_PER_PARAM
from stacks.config.stack import StackConfig
from stacks.plan import (
    ami_release_version,
    autoscaling_enabled,
    kubernetes_version,
    kv_backend,
    kv_transfer,
    node_autoscaling,
    pool_efa,
    pool_zones,
    role_efa,
    role_nodes_at_max,
    role_nodes_available,
    role_plan,
    role_pools_efa,
)
from stacks.rules import need, rule

# The engine needs room beyond the weights for KV cache and activations; below this share of its memory
# budget left for them a replica either fails to start or serves almost no concurrent requests.
MIN_KV_SHARE = 0.10


# ---- preconditions: what the rules of the serving layout need (other rules report them) --------------------------


def _role_pools(cfg: StackConfig, role: str) -> list:
    """The role's pools, when it has some, all of one instance type and one EFA setting (roles.* rules)."""
    pools = cfg.pools_for(role)
    need(pools)
    need(len({p.instance_type for p in pools}) == 1)
    efa = [pool_efa(p) for p in pools]
    need(all(efa) or not any(efa))
    return pools


def _roles_ok(cfg: StackConfig) -> None:
    for role in ROLES:
        _role_pools(cfg, role)


def _layout_fits(rc, it: InstanceType) -> bool:
    """TP x PP x DP divides a node's GPUs or spans whole nodes (roles.gpus-divide-node, roles.whole-nodes)."""
    gpus, gpn = rc.gpus_per_replica, it.gpus
    return not ((gpus <= gpn and gpn % gpus) or (gpus > gpn and gpus % gpn))


def _role_fit(cfg: StackConfig, role: str):
    """(role config, instance type) of a role whose pools and layout are sound."""
    pools = _role_pools(cfg, role)
    rc = cfg.serving.role(role)
    it = instance_type(pools[0].instance_type)
    need(_layout_fits(rc, it))
    return rc, it


# ---- cluster, zones, network -------------------------------------------------------------------------------------


@rule("cluster.public-access-cidrs-set", "cluster.publicAccessCidrs", "cluster.endpointPublicAccess")
def public_access_cidrs_set(cfg: StackConfig):
    """A public API endpoint lists the CIDRs allowed to reach it."""
    if cfg.cluster.endpoint_public_access and not cfg.cluster.public_access_cidrs:
        yield Issue(
            key_path("cluster", "publicAccessCidrs"),
            [],
            "the public endpoint is on but publicAccessCidrs is empty",
            "list the CIDRs of your network and CI runners in cluster.publicAccessCidrs, or set cluster.endpointPublicAccess to false",
        )


@rule("zones.in-region", "availabilityZones", "region")
def zones_in_region(cfg: StackConfig):
    """Every stack zone is a zone of the stack's region."""
    for i, az in enumerate(cfg.availability_zones):
        if not az.startswith(cfg.region):
            yield Issue(key_path("availabilityZones", i), az, f"is not a zone of region {cfg.region}", f"use zones named {cfg.region}a, {cfg.region}b, ...")


@rule("zones.listed-once", "availabilityZones")
def zones_listed_once(cfg: StackConfig):
    """The stack lists each zone once."""
    dup = [az for az, n in Counter(cfg.availability_zones).items() if n > 1]
    if dup:
        yield Issue(key_path("availabilityZones"), cfg.availability_zones, f"lists {', '.join(dup)} twice", "list each zone once")


@rule("pools.zones-of-the-stack", "gpuPools[].availabilityZones", scope="pool")
def pool_zones_of_the_stack(cfg: StackConfig, i: int, p):
    """A pool's zones are zones of the stack."""
    for az in p.availability_zones or []:
        if az not in cfg.availability_zones:
            yield Issue(
                key_path("gpuPools", i, "availabilityZones"),
                p.availability_zones,
                f"{az} is not one of the stack zones {cfg.availability_zones}",
                "add it to disagg:availabilityZones or pick one of those",
            )


@rule("network.existing-subnet-per-zone", "network.existingPrivateSubnetIds", "network.existingPublicSubnetIds")
def existing_subnet_per_zone(cfg: StackConfig):
    """An existing VPC's subnet maps give a subnet for every stack zone."""
    net = cfg.network
    if not net.existing_vpc_id:
        return
    for key, subnets in (("existingPrivateSubnetIds", net.existing_private_subnet_ids), ("existingPublicSubnetIds", net.existing_public_subnet_ids)):
        if subnets is None:
            continue
        missing = [az for az in cfg.availability_zones if az not in subnets]
        if missing:
            yield Issue(key_path("network", key), subnets, f"has no subnet for {', '.join(missing)}", "give one subnet id per zone in disagg:availabilityZones")


@rule("network.vpc-cidr-holds-subnets", "network.vpcCidr", "network.privateSubnetPrefixLength", "network.publicSubnetPrefixLength")
def vpc_cidr_holds_subnets(cfg: StackConfig):
    """A new VPC's CIDR holds a private and a public subnet per zone."""
    net = cfg.network
    if net.existing_vpc_id:
        return
    size = len(cfg.availability_zones) * (2 ** (32 - net.private_subnet_prefix_length) + 2 ** (32 - net.public_subnet_prefix_length))
    have = 2 ** (32 - int(net.vpc_cidr.split("/")[1]))
    if size > have:
        yield Issue(
            key_path("network", "vpcCidr"),
            net.vpc_cidr,
            f"too small for {len(cfg.availability_zones)} private /{net.private_subnet_prefix_length} and public /{net.public_subnet_prefix_length} subnets",
            "use a larger VPC CIDR (e.g. /16) or longer subnet prefix lengths",
        )


@rule("network.private-subnet-holds-pods", "network.privateSubnetPrefixLength", "gpuPools[].maxNodes")
def private_subnet_holds_pods(cfg: StackConfig):
    """Each zone's private subnet holds the addresses its nodes can take at their maximum node counts.

    Pods take VPC addresses (components/builders/network.py says how a node's share is estimated).
    """
    net = cfg.network
    if net.existing_vpc_id:
        return  # sizes of existing subnets are not known before deploy
    have = usable_addresses(net.private_subnet_prefix_length)
    for az, demand in zone_address_demand(cfg).items():
        if demand <= have:
            continue
        biggest = max(cfg.gpu_pools, key=lambda p: node_addresses(instance_type(p.instance_type), net.prefix_delegation))
        per_node = node_addresses(instance_type(biggest.instance_type), net.prefix_delegation)
        yield Issue(
            key_path("network", "privateSubnetPrefixLength"),
            net.private_subnet_prefix_length,
            (
                f"zone {az}: its nodes can take up to {demand} addresses at full pod density (a {biggest.instance_type} node "
                f"up to {per_node}{' with prefix delegation' if net.prefix_delegation else ''}) but a "
                f"/{net.private_subnet_prefix_length} subnet has {have}"
            ),
            "use a shorter prefix length (a larger subnet, e.g. 18) and a VPC CIDR that fits it, or lower maxNodes",
        )


# ---- GPU pools ---------------------------------------------------------------------------------------------------


@rule("pools.names-unique", "gpuPools[].name", scope="pool")
def pool_names_unique(cfg: StackConfig, i: int, p):
    """Every GPU pool has a name of its own."""
    if sum(1 for q in cfg.gpu_pools if q.name == p.name) > 1:
        yield Issue(key_path("gpuPools", i, "name"), p.name, "is used by more than one pool", "give every pool a unique name")


@rule("pools.name-not-system", "gpuPools[].name", scope="pool")
def pool_name_not_system(cfg: StackConfig, i: int, p):
    """No GPU pool takes the name of the CPU system pool."""
    if p.name == "system":
        yield Issue(key_path("gpuPools", i, "name"), p.name, "is reserved for the CPU system pool", "pick another name")


@rule("pools.efa-supported", "gpuPools[].efa", "gpuPools[].instanceType", scope="pool")
def pool_efa_supported(cfg: StackConfig, i: int, p):
    """EFA is turned on only for an instance type that has it."""
    if p.efa and not instance_type(p.instance_type).supports_efa:
        efa_types = ", ".join(n for n in known_instance_types(gpu=True) if instance_type(n).supports_efa)
        yield Issue(key_path("gpuPools", i, "efa"), True, f"{p.instance_type} has no EFA", f"set efa to false or use an EFA type: {efa_types}")


@rule("pools.efa-one-zone", "gpuPools[].availabilityZones", scope="pool")
def pool_efa_one_zone(cfg: StackConfig, i: int, p):
    """An EFA pool lives in one zone (EFA traffic and cluster placement groups stay in one AZ)."""
    zones = pool_zones(cfg, p)
    if pool_efa(p) and len(zones) != 1:
        yield Issue(
            key_path("gpuPools", i, "availabilityZones"),
            zones,
            "an EFA pool spans more than one zone (EFA traffic and cluster placement groups stay in one AZ)",
            "give the pool exactly one zone",
        )


@rule("pools.capacity-block-one-zone", "gpuPools[].availabilityZones", scope="pool")
def pool_capacity_block_one_zone(cfg: StackConfig, i: int, p):
    """A Capacity Block pool lives in the one zone of its block."""
    zones = pool_zones(cfg, p)
    if p.capacity.type == "capacityBlock" and len(zones) != 1:
        yield Issue(
            key_path("gpuPools", i, "availabilityZones"),
            zones,
            "a Capacity Block lives in one zone, the pool spans more",
            "set availabilityZones to the single zone of the block",
        )


@rule("pools.reservation-one-zone", "gpuPools[].availabilityZones", scope="pool")
def pool_reservation_one_zone(cfg: StackConfig, i: int, p):
    """A pool on a targeted reservation (one cr-... id) lives in the reservation's one zone.

    Instances launched elsewhere would miss it and, with the launch template targeting it, fail to launch at all.
    """
    zones = pool_zones(cfg, p)
    if p.capacity.type == "capacityReservation" and p.capacity.reservation_id and len(zones) != 1:
        yield Issue(
            key_path("gpuPools", i, "availabilityZones"),
            zones,
            f"capacity reservation {p.capacity.reservation_id} lives in one zone, the pool spans {len(zones)}",
            "set availabilityZones to the single zone of the reservation",
        )


@rule("pools.placement-group-needs-efa", "gpuPools[].placementGroup", scope="pool")
def pool_placement_group_needs_efa(cfg: StackConfig, i: int, p):
    """A cluster placement group is asked for only on an EFA pool."""
    if p.placement_group and not pool_efa(p):
        yield Issue(
            key_path("gpuPools", i, "placementGroup"),
            True,
            "a cluster placement group without EFA buys nothing but launch failures",
            "remove placementGroup or turn on efa",
        )


@rule("pools.ami-for-kubernetes", "gpuPools[].amiReleaseVersion", "cluster.kubernetesVersion", scope="pool")
def pool_ami_for_kubernetes(cfg: StackConfig, i: int, p):
    """A GPU pool's AMI release (`<k8s patch>-<date>`) is built for the cluster's Kubernetes minor (EKS refuses it otherwise)."""
    k8s = kubernetes_version(cfg)
    release = ami_release_version(p)
    if not release.startswith(f"{k8s}."):
        key = key_path("gpuPools", i, "amiReleaseVersion") if p.ami_release_version else key_path("cluster", "kubernetesVersion")
        yield Issue(
            key,
            p.ami_release_version or cfg.cluster.kubernetes_version,
            f"AMI release {release} of pool {p.name} is not built for Kubernetes {k8s}",
            f"use an AL2023 NVIDIA AMI release for {k8s} (e.g. {k8s}.<patch>-<date>), or remove the override",
        )


@rule("cluster.system-ami-for-kubernetes", "cluster.kubernetesVersion")
def system_ami_for_kubernetes(cfg: StackConfig):
    """The system node group's AMI release (versions table) is built for the cluster's Kubernetes minor."""
    k8s = kubernetes_version(cfg)
    system = pin("eks-al2023-ami").version
    if not system.startswith(f"{k8s}."):
        yield Issue(
            key_path("cluster", "kubernetesVersion"),
            cfg.cluster.kubernetes_version,
            f"the system node group's AMI release {system} (versions table, eks-al2023-ami) is not built for Kubernetes {k8s}",
            "keep cluster.kubernetesVersion at the versions table's `kubernetes` pin, or move the AMI pins with it",
        )


# ---- the NVMe model cache ----------------------------------------------------------------------------------------
# `modelCache.kind: nvme` is a hostPath on the instance-store RAID0 that the GPU pools' NodeConfig builds
# (components/builders/userdata.py). Without the array the same hostPath silently lands on the root EBS volume,
# which a model's weights plus the images fill (node disk pressure, evictions).


@rule("serving.nvme-cache-pools-build-raid", "gpuPools[].nvmeCache", "serving.modelCache.kind", scope="pool")
def nvme_cache_pools_build_raid(cfg: StackConfig, i: int, p):
    """With the nvme model cache, every GPU pool builds the NVMe RAID0."""
    if cfg.serving.model_cache.kind == "nvme" and not p.nvme_cache:
        yield Issue(
            key_path("gpuPools", i, "nvmeCache"),
            False,
            "serving.modelCache.kind is nvme but this pool builds no NVMe RAID0, so the cache would land on the root volume",
            "turn nvmeCache on, or set serving.modelCache.kind to pvc",
        )


@rule("serving.nvme-cache-pools-have-nvme", "gpuPools[].instanceType", "serving.modelCache.kind", scope="pool")
def nvme_cache_pools_have_nvme(cfg: StackConfig, i: int, p):
    """With the nvme model cache, every GPU pool's instance type has instance-store NVMe."""
    if cfg.serving.model_cache.kind == "nvme" and p.nvme_cache and instance_type(p.instance_type).nvme_disks == 0:
        yield Issue(
            key_path("gpuPools", i, "instanceType"),
            p.instance_type,
            "has no instance-store NVMe for serving.modelCache.kind nvme, so the cache would land on the root volume",
            "use a type with NVMe (e.g. p5.48xlarge, g6e.*) or set serving.modelCache.kind to pvc",
        )


@rule("serving.nvme-cache-on-raid", "serving.modelCache.hostPath")
def nvme_cache_on_raid(cfg: StackConfig):
    """The nvme model cache's hostPath is on the RAID0 nodeadm mounts."""
    mc = cfg.serving.model_cache
    if mc.kind == "nvme" and not mc.host_path.startswith(f"{RAID0_MOUNT}/"):
        yield Issue(
            key_path("serving", "modelCache", "hostPath"),
            mc.host_path,
            f"is not on the NVMe RAID0, which nodeadm mounts at {RAID0_MOUNT}",
            f"use a directory under {RAID0_MOUNT}/, e.g. {RAID0_MOUNT}/model-cache",
        )


# ---- the pools of each role --------------------------------------------------------------------------------------


@rule("roles.have-pools", "gpuPools", "gpuPools[].role", scope="role")
def role_has_pools(cfg: StackConfig, role: str):
    """Every serving role (prefill, decode) has a GPU pool."""
    if not cfg.pools_for(role):
        yield Issue(key_path("gpuPools"), [p.name for p in cfg.gpu_pools], f"no pool has role {role}", f"add a GPU pool with role: {role}")


@rule("roles.one-instance-type", "gpuPools[].instanceType", scope="role")
def role_one_instance_type(cfg: StackConfig, role: str):
    """The pools of one role share one instance type (one pod spec fits them all)."""
    pools = cfg.pools_for(role)
    types = {p.instance_type for p in pools}
    if len(types) > 1:
        idx = cfg.gpu_pools.index(pools[1])
        yield Issue(
            key_path("gpuPools", idx, "instanceType"),
            pools[1].instance_type,
            f"the {role} pools mix instance types {sorted(types)}; one pod spec cannot fit both",
            f"use one instance type for every {role} pool",
        )


@rule("roles.one-efa-setting", "gpuPools[].efa", scope="role")
def role_one_efa_setting(cfg: StackConfig, role: str):
    """The pools of one role are all EFA or all not (one pod spec requests EFA devices or not)."""
    pools = cfg.pools_for(role)
    efa = [p.name for p in pools if pool_efa(p)]
    if efa and len(efa) != len(pools):
        idx = cfg.gpu_pools.index(next(p for p in pools if not pool_efa(p)))
        yield Issue(
            key_path("gpuPools", idx, "efa"),
            False,
            f"the {role} pools mix EFA ({efa}) and non-EFA pools; one pod spec cannot request EFA devices on "
            "both, and the pods on the non-EFA pools would silently move KV over TCP",
            f"give every {role} pool the same EFA setting (all EFA types with efa on, or efa: false on all)",
        )


# ---- how each role lands on its nodes ----------------------------------------------------------------------------


@rule("roles.gpus-divide-node", "serving.<role>.tensorParallel", "serving.<role>.pipelineParallel", "serving.<role>.dataParallel", scope="role")
def role_gpus_divide_node(cfg: StackConfig, role: str):
    """A replica within one node uses a divisor of the node's GPUs (none sit idle)."""
    pools = _role_pools(cfg, role)
    rc = cfg.serving.role(role)
    it = instance_type(pools[0].instance_type)
    gpn, gpus = it.gpus, rc.gpus_per_replica
    if gpus <= gpn and gpn % gpus != 0:
        divisors = [d for d in range(1, gpn + 1) if gpn % d == 0]
        yield Issue(
            key_path("serving", role, "tensorParallel"),
            rc.tensor_parallel,
            f"TP x PP x DP = {rc.tensor_parallel} x {rc.pipeline_parallel} x {rc.data_parallel} = {gpus} GPUs per pod does not divide the {gpn} GPUs of {it.name}; GPUs would sit idle",
            f"use TP x PP x DP in {divisors}, or a multiple of {gpn} to span whole nodes",
        )


@rule("roles.whole-nodes", "serving.<role>.tensorParallel", "serving.<role>.pipelineParallel", "serving.<role>.dataParallel", scope="role")
def role_whole_nodes(cfg: StackConfig, role: str):
    """A replica larger than a node spans a whole number of nodes."""
    pools = _role_pools(cfg, role)
    rc = cfg.serving.role(role)
    it = instance_type(pools[0].instance_type)
    gpn, gpus = it.gpus, rc.gpus_per_replica
    if gpus > gpn and gpus % gpn != 0:
        yield Issue(
            key_path("serving", role, "tensorParallel"),
            rc.tensor_parallel,
            f"TP x PP x DP = {rc.tensor_parallel} x {rc.pipeline_parallel} x {rc.data_parallel} = {gpus} GPUs spans nodes but is not a whole number of {it.name} nodes ({gpn} GPUs each)",
            f"a multi-node replica uses whole nodes: make TP x PP x DP a multiple of {gpn}",
        )


def _efa_share(cfg: StackConfig, role: str, it: InstanceType) -> tuple:
    rp = role_plan(cfg, role)
    return rp, it.efa_interfaces // max(rp.pods_per_node, 1)


@rule("roles.efa-per-pod-needs-efa", "serving.<role>.efaPerPod", scope="role")
def role_efa_per_pod_needs_efa(cfg: StackConfig, role: str):
    """efaPerPod is set only for a role on EFA pools."""
    rc, it = _role_fit(cfg, role)
    if rc.efa_per_pod is not None and not role_pools_efa(cfg, role):
        yield Issue(key_path("serving", role, "efaPerPod"), rc.efa_per_pod, f"the {role} pools have no EFA", "remove efaPerPod or turn on efa for the pools")


@rule("roles.efa-per-pod-within-node", "serving.<role>.efaPerPod", scope="role")
def role_efa_per_pod_within_node(cfg: StackConfig, role: str):
    """efaPerPod is at most the EFA interfaces of a node."""
    rc, it = _role_fit(cfg, role)
    if rc.efa_per_pod is not None and role_pools_efa(cfg, role) and rc.efa_per_pod > it.efa_interfaces:
        rp, share = _efa_share(cfg, role, it)
        yield Issue(
            key_path("serving", role, "efaPerPod"),
            rc.efa_per_pod,
            f"more EFA devices per pod than a {it.name} node has ({it.efa_interfaces})",
            f"use at most {it.efa_interfaces}; the default gives {share} (the node's interfaces shared by its {rp.pods_per_node} pods)",
        )


@rule("roles.efa-per-pod-pods-fit", "serving.<role>.efaPerPod", scope="role")
def role_efa_per_pod_pods_fit(cfg: StackConfig, role: str):
    """The pods of a node, at efaPerPod each, fit the node's EFA interfaces."""
    rc, it = _role_fit(cfg, role)
    if rc.efa_per_pod is None or not role_pools_efa(cfg, role) or rc.efa_per_pod > it.efa_interfaces:
        return
    rp = role_plan(cfg, role)
    if rp.pods_per_node * rc.efa_per_pod > it.efa_interfaces:
        yield Issue(
            key_path("serving", role, "efaPerPod"),
            rc.efa_per_pod,
            f"{rp.pods_per_node} pods per node x {rc.efa_per_pod} EFA exceeds the node's {it.efa_interfaces}; pods would not schedule",
            f"use at most {it.efa_interfaces // rp.pods_per_node}",
        )


@rule("roles.every-pod-gets-efa", "serving.<role>.tensorParallel", "gpuPools[].efa", scope="role")
def role_every_pod_gets_efa(cfg: StackConfig, role: str):
    """On EFA pools every pod gets at least one whole EFA interface (the device plugin cannot share one)."""
    rc, it = _role_fit(cfg, role)
    rp, share = _efa_share(cfg, role, it)
    if rc.efa_per_pod is None and role_pools_efa(cfg, role) and share == 0 and it.efa_interfaces > 0:
        # A pod without an interface would fall back to TCP.
        fewest = it.gpus // it.efa_interfaces
        yield Issue(
            key_path("serving", role, "tensorParallel"),
            rc.tensor_parallel,
            f"{rp.pods_per_node} pods of {rp.gpus_per_pod} GPUs per {it.name} node share its {it.efa_interfaces} EFA "
            "interface(s): some pods would get no EFA device (an interface cannot be shared between pods)",
            f"give each pod at least {fewest} GPUs (TP x PP x DP >= {fewest}) so every pod gets a whole interface, "
            f"or set efa: false on the {role} pools",
        )


@rule("roles.dp-rank-within-node", "serving.<role>.dataParallel", scope="role")
def role_dp_rank_within_node(cfg: StackConfig, role: str):
    """With data parallelism, each rank (TP x PP GPUs) fits one node."""
    rc, it = _role_fit(cfg, role)
    if rc.data_parallel > 1 and rc.tensor_parallel * rc.pipeline_parallel > it.gpus:
        yield Issue(
            key_path("serving", role, "dataParallel"),
            rc.data_parallel,
            f"each data-parallel rank spans nodes (TP x PP = {rc.tensor_parallel * rc.pipeline_parallel} > {it.gpus} GPUs of {it.name})",
            f"keep TP x PP within a node ({it.gpus} GPUs) and scale across nodes with dataParallel (wide EP: TP within a node, DP x EP across nodes)",
        )


@rule("roles.weights-fit", "serving.<role>.tensorParallel", "serving.model.parametersBillions", "serving.model.weightDtype", scope="role")
def role_weights_fit(cfg: StackConfig, role: str):
    """The weights fit the GPUs of one replica with room left for the KV cache."""
    rc, it = _role_fit(cfg, role)
    m = cfg.serving.model
    need(m.parameters_billions is not None)  # serving.model-parameters-known
    weights_gib = m.parameters_billions * 1e9 * BYTES_PER_PARAM[m.weight_dtype] / 2**30
    # Without expert parallelism every DP rank holds a whole copy of the model; with it the experts (nearly all of an
    # MoE's weights: GLM-5's 256 routed experts are ~97% of its 744B) are sharded over DP x TP.
    tp, pp = rc.tensor_parallel, rc.pipeline_parallel
    shards = rc.gpus_per_replica if rc.expert_parallel else tp * pp
    per_gpu = weights_gib / shards
    budget = it.gpu_memory_gib * cfg.serving.engine.gpu_memory_utilization
    if per_gpu > budget * (1 - MIN_KV_SHARE):
        least = weights_gib / (budget * (1 - MIN_KV_SHARE))
        yield Issue(
            key_path("serving", role, "tensorParallel"),
            tp,
            (
                f"{m.parameters_billions:g}B parameters in {m.weight_dtype} are {weights_gib:.1f} GiB: {per_gpu:.1f} GiB per GPU over {shards} GPUs, "
                f"but a {it.gpu_model} gives the engine {budget:.1f} GiB and at least {MIN_KV_SHARE:.0%} of it must stay free for the KV cache"
            ),
            f"shard the weights over at least {least:.1f} GPUs (TP x PP, or DP x TP with expertParallel for MoE), or serve a smaller dtype (serving.model.weightDtype)",
        )


@rule("roles.pools-hold-replicas", "gpuPools[].nodes", "serving.<role>.replicas", scope="role")
def role_pools_hold_replicas(cfg: StackConfig, role: str):
    """The role's pools have the nodes its replicas need (a Capacity Block pool at 0 nodes counts with the nodes it serves with)."""
    rc, it = _role_fit(cfg, role)
    pools = cfg.pools_for(role)
    rp = role_plan(cfg, role)
    available = role_nodes_available(cfg, role)
    if rp.nodes_needed > available:
        idx = cfg.gpu_pools.index(pools[0])
        yield Issue(
            key_path("gpuPools", idx, "nodes"),
            pools[0].nodes,
            (
                f"{role} asks for {rc.replicas} replicas of {rc.gpus_per_replica} GPUs ({rp.nodes_needed} {it.name} nodes) "
                f"but its pools {list(rp.pools)} have {available}"
            ),
            f"give the {role} pools {rp.nodes_needed} nodes in total, or lower serving.{role}.replicas",
        )


# ---- KV transfer -------------------------------------------------------------------------------------------------


@rule("serving.kv-efa-pools-one-zone", "gpuPools[].availabilityZones")
def kv_efa_pools_one_zone(cfg: StackConfig):
    """The EFA pools of prefill and decode share one zone (EFA traffic never leaves its AZ, whatever carries the KV)."""
    pools = [p for p in cfg.gpu_pools if p.role in ROLES]
    need(all(len(pool_zones(cfg, p)) == 1 for p in pools if pool_efa(p)))  # pools.efa-one-zone
    efa_zones = {az for p in pools if pool_efa(p) for az in pool_zones(cfg, p)}
    if len(efa_zones) > 1:
        i = next(i for i, p in enumerate(cfg.gpu_pools) if p.role == "decode" and pool_efa(p)) if any(
            p.role == "decode" and pool_efa(p) for p in cfg.gpu_pools
        ) else next(i for i, p in enumerate(cfg.gpu_pools) if p.role in ROLES and pool_efa(p))
        yield Issue(
            key_path("gpuPools", i, "availabilityZones"),
            sorted(efa_zones),
            "the EFA pools of prefill and decode are in different zones; KV transfer over EFA cannot cross AZs, so it would move over TCP",
            "put every EFA prefill and decode pool in the same single zone",
        )


@rule("serving.kv-backend-efa", "serving.kvTransfer.backend")
def kv_backend_efa(cfg: StackConfig):
    """The LIBFABRIC backend is chosen only when every prefill and decode pod gets EFA devices."""
    if not kv_transfer(cfg):
        return
    _roles_ok(cfg)
    if kv_backend(cfg) == "LIBFABRIC":
        no_efa = [r for r in ROLES if not role_efa(cfg, r)]
        if no_efa:
            yield Issue(
                key_path("serving", "kvTransfer", "backend"),
                "LIBFABRIC",
                f"the {' and '.join(no_efa)} pods get no EFA devices, so LIBFABRIC has no fabric to use",
                "use backend auto or UCX, or put both roles on EFA pools",
            )


@rule("serving.kv-no-pipeline-parallel", "serving.<role>.pipelineParallel", "serving.mode", scope="role")
def kv_no_pipeline_parallel(cfg: StackConfig, role: str):
    """A disaggregated role runs without pipeline parallelism (the KV connector cannot move KV between stages)."""
    # TensorRT-LLM's cache transceiver moves KV between pipeline stages (stacks/validation_trtllm.py has its rules).
    if not kv_transfer(cfg) or cfg.serving.engine.kind != "vllm":
        return
    pp = cfg.serving.role(role).pipeline_parallel
    if pp > 1:
        # vllm v0.30.0 nixl/base_worker.py: "Decode-side PP is unsupported"; a PP prefill needs the push
        # connector (vllm PR #45880), and the pull NixlConnector refuses pp_rank > 0 handshakes
        # (kv_connector/v1/base.py set_xfer_handshake_metadata_pp_aware; vllm issue #52913).
        side = "on the decode side" if role == "decode" else "with the pull-mode NixlConnector"
        yield Issue(
            key_path("serving", role, "pipelineParallel"),
            pp,
            f"vLLM's {cfg.serving.kv_transfer.connector} cannot transfer KV with pipeline parallelism {side} "
            "(vllm issue #52913); the engine would fail at its first KV handshake",
            f"set serving.{role}.pipelineParallel to 1: for a model larger than a node use tensorParallel within "
            "a node with dataParallel across nodes (and expertParallel for MoE), or serve PP with serving.mode: aggregated",
        )


# ---- platform ----------------------------------------------------------------------------------------------------


@rule("platform.kai-enabled", "platform.kai.enabled")
def kai_enabled(cfg: StackConfig):
    """KAI is on: the serving pods are gang-scheduled by it."""
    if not cfg.platform.kai.enabled:
        yield Issue(key_path("platform", "kai", "enabled"), False, "serving pods are gang-scheduled by KAI", "set platform.kai.enabled to true")


@rule("platform.lws-for-workload-api", "platform.lws.enabled", "platform.workloadApi")
def lws_for_workload_api(cfg: StackConfig):
    """With workloadApi lws, LWS is installed."""
    pf = cfg.platform
    if pf.workload_api == "lws" and not pf.lws_enabled:
        yield Issue(key_path("platform", "lws", "enabled"), False, "workloadApi is lws but LWS is off", "turn platform.lws.enabled on or use workloadApi grove")


@rule("platform.grove-for-workload-api", "platform.grove.enabled", "platform.workloadApi")
def grove_for_workload_api(cfg: StackConfig):
    """With workloadApi grove, Grove is installed."""
    pf = cfg.platform
    if pf.workload_api == "grove" and not pf.grove_enabled:
        yield Issue(key_path("platform", "grove", "enabled"), False, "workloadApi is grove but Grove is off", "turn platform.grove.enabled on or use workloadApi lws")


@rule("platform.kai-queue-parent-differs", "platform.kai.queue.name", "platform.kai.queue.parentName")
def kai_queue_parent_differs(cfg: StackConfig):
    """The serving queue hangs under a parent of another name (KAI queues form a tree)."""
    qc = cfg.platform.kai.queue
    if qc.name == qc.parent_name:
        yield Issue(
            key_path("platform", "kai", "queue", "name"),
            qc.name,
            "the serving queue and its parent have the same name; KAI queues form a tree (the leaf names its parent)",
            "give platform.kai.queue.name and parentName different names",
        )


@rule("platform.kai-queue-not-kai-default", "platform.kai.queue.name", "platform.kai.queue.parentName")
def kai_queue_not_kai_default(cfg: StackConfig):
    """Neither queue takes the name of a queue KAI's chart creates itself (the stack's create would fail on it)."""
    qc = cfg.platform.kai.queue
    for field, value in (("name", qc.name), ("parentName", qc.parent_name)):
        if value in KAI_DEFAULT_QUEUES:
            yield Issue(
                key_path("platform", "kai", "queue", field),
                value,
                f"is a queue KAI's chart creates itself ({', '.join(KAI_DEFAULT_QUEUES)}, GPU quota 0)",
                "pick another name (defaults: serving under disagg)",
            )


@rule("platform.kai-quota-covers-roles", "platform.kai.queue.gpuQuota")
def kai_quota_covers_roles(cfg: StackConfig):
    """The serving queue's GPU quota covers the GPUs the serving roles ask for."""
    quota = cfg.platform.kai.queue.gpu_quota
    if quota is None:
        return
    _roles_ok(cfg)
    requested = sum(role_plan(cfg, r).gpus_requested for r in ROLES)
    if quota < requested:
        yield Issue(
            key_path("platform", "kai", "queue", "gpuQuota"),
            quota,
            f"below the {requested} GPUs the serving roles ask for; inference-priority pods only use in-quota GPUs, so some would never schedule",
            f"set gpuQuota to at least {requested}, or remove it to default to every GPU of the pools",
        )


@rule("platform.slo-on-bucket-bound", "platform.monitoring.slo.ttftSeconds", "platform.monitoring.slo.itlSeconds")
def slo_on_bucket_bound(cfg: StackConfig):
    """An SLO objective is a bucket bound of its histogram in every engine's (one between two bounds cannot be
    measured); the alert rules carry every engine's half, so the bound must exist in all of them."""
    mon = cfg.platform.monitoring
    for field, value, histograms in (
        ("ttftSeconds", mon.slo.ttft_seconds, [(e.ttft, e.ttft_buckets) for e in SLO_SERIES]),
        ("itlSeconds", mon.slo.itl_seconds, [(e.itl, e.itl_buckets) for e in SLO_SERIES]),
    ):
        missing = [metric for metric, buckets in histograms if float(value) not in buckets]
        if missing:
            common = sorted(set.intersection(*(set(b) for _, b in histograms)))
            yield Issue(
                key_path("platform", "monitoring", "slo", field),
                value,
                f"is not a bucket bound of {' and '.join(missing)}, so the share of requests under it cannot be computed",
                f"use one of {', '.join(le(b) for b in common)}",
            )


@rule("platform.amp-needs-monitoring", "platform.monitoring.amp.enabled", "platform.monitoring.enabled")
def amp_needs_monitoring(cfg: StackConfig):
    """AMP is on only with the in-cluster monitoring that feeds it."""
    mon = cfg.platform.monitoring
    if mon.amp.enabled and not mon.enabled:
        yield Issue(
            key_path("platform", "monitoring", "amp", "enabled"),
            True,
            "AMP receives what the in-cluster Prometheus scrapes, and monitoring is off",
            "turn platform.monitoring.enabled on, or amp off",
        )


@rule("serving.internal-nlb-needs-lbc", "serving.router.serviceType", "platform.loadBalancerController.enabled")
def internal_nlb_needs_lbc(cfg: StackConfig):
    """An internal NLB for the router comes with the AWS Load Balancer Controller."""
    if cfg.serving.router.service_type == "internalNlb" and not cfg.platform.load_balancer_controller.enabled:
        yield Issue(
            key_path("serving", "router", "serviceType"),
            "internalNlb",
            "an internal NLB needs the AWS Load Balancer Controller, which is off",
            "turn platform.loadBalancerController.enabled on, or use serviceType clusterIP",
        )


@rule("platform.network-operator-pools-exist", "platform.networkOperator.pools")
def network_operator_pools_exist(cfg: StackConfig):
    """Every pool the Network Operator targets is a GPU pool of the stack."""
    names = {p.name for p in cfg.gpu_pools}
    for j, name in enumerate(cfg.platform.network_operator.pools):
        if name not in names:
            yield Issue(key_path("platform", "networkOperator", "pools", j), name, "is not a GPU pool", f"use one of {sorted(names)}")


@rule("platform.network-operator-not-on-efa", "platform.networkOperator.pools")
def network_operator_not_on_efa(cfg: StackConfig):
    """The Network Operator targets no EFA pool (it drives ConnectX NICs; EFA is the EFA device plugin's)."""
    names = {p.name: p for p in cfg.gpu_pools}
    for j, name in enumerate(cfg.platform.network_operator.pools):
        if name in names and pool_efa(names[name]):
            yield Issue(
                key_path("platform", "networkOperator", "pools", j),
                name,
                "is an EFA pool; the NVIDIA Network Operator drives ConnectX (InfiniBand/RoCE) NICs and cannot manage AWS EFA, "
                "which the EFA device plugin serves",
                "remove the pool from networkOperator.pools (keep the EFA device plugin for it)",
            )


@rule("platform.network-operator-targets-nodes", "platform.networkOperator.enabled", "platform.networkOperator.pools", "platform.networkOperator.nodeSelector")
def network_operator_targets_nodes(cfg: StackConfig):
    """A Network Operator that is on targets some nodes (pools or a node selector)."""
    no = cfg.platform.network_operator
    if no.enabled and not no.pools and not no.node_selector:
        yield Issue(
            key_path("platform", "networkOperator", "enabled"),
            True,
            "the Network Operator is on but targets no nodes (on AWS every GPU fabric here is EFA)",
            "list ConnectX pools in networkOperator.pools or ConnectX node labels in networkOperator.nodeSelector, or turn it off",
        )


# ---- device plugins: without them pods asking for the devices stay Pending forever -------------------------------


@rule("platform.gpu-operator-enabled", "platform.gpuOperator.enabled", "nodeProvisioning")
def gpu_operator_enabled(cfg: StackConfig):
    """Outside EKS Auto Mode (which runs both device plugins itself) the GPU Operator is on: it advertises the GPUs."""
    if cfg.node_provisioning != "autoMode" and not cfg.platform.gpu_operator.enabled:
        yield Issue(
            key_path("platform", "gpuOperator", "enabled"),
            False,
            "no device plugin would advertise nvidia.com/gpu: the EKS AL2023 NVIDIA AMI ships the driver but not the "
            "plugin, and here the GPU Operator provides it, so no serving pod could schedule",
            "set platform.gpuOperator.enabled to true",
        )


@rule("platform.efa-device-plugin-enabled", "platform.efaDevicePlugin.enabled", "gpuPools[].efa")
def efa_device_plugin_enabled(cfg: StackConfig):
    """Outside EKS Auto Mode, a stack with EFA pools runs the EFA device plugin."""
    if cfg.node_provisioning == "autoMode" or cfg.platform.efa_device_plugin.enabled:
        return
    efa = [p.name for p in cfg.gpu_pools if pool_efa(p)]
    if efa:
        yield Issue(
            key_path("platform", "efaDevicePlugin", "enabled"),
            False,
            f"pools {efa} have EFA, but without the EFA device plugin no node advertises vpc.amazonaws.com/efa "
            "and pods requesting it never schedule",
            "set platform.efaDevicePlugin.enabled to true, or set efa: false on those pools",
        )


# ---- serving -----------------------------------------------------------------------------------------------------


@rule("serving.efa-userspace-removed", "serving.engine.efaUserspace")
def efa_userspace_removed(cfg: StackConfig):
    """serving.engine.efaUserspace is not set: EFA pods run the EFA engine image, the host-mount mode is gone."""
    e = cfg.serving.engine
    if e.efa_userspace is not None:
        yield Issue(
            key_path("serving", "engine", "efaUserspace"),
            e.efa_userspace,
            "was removed: the EKS AL2023 NVIDIA AMI installs EFA with --minimal (kernel module and rdma-core, no "
            "libfabric; awslabs/amazon-eks-ami templates/al2023/provisioners/install-efa.sh), so there is nothing "
            "on the host for NIXL's LIBFABRIC plugin or aws-ofi-nccl to load",
            "delete serving.engine.efaUserspace and set serving.engine.efaImage to an image built from images/vllm-efa",
        )


@rule("serving.efa-image-set", "serving.engine.efaImage", "gpuPools[].efa")
def efa_image_set(cfg: StackConfig):
    """A stack with EFA prefill or decode pools names the EFA engine image."""
    efa_pools = [p.name for p in cfg.gpu_pools if p.role in ROLES and pool_efa(p)]
    # tensorrt-llm: serving.trtllm-efa-image (stacks/validation_trtllm.py) says which image.
    if efa_pools and not cfg.serving.engine.efa_image and cfg.serving.engine.kind == "vllm":
        yield Issue(
            key_path("serving", "engine", "efaImage"),
            None,
            f"pools {efa_pools} have EFA, and their engine pods need an image with the EFA user space (libfabric, "
            "aws-ofi-nccl, hwloc); the stock vllm/vllm-openai image has none",
            "build images/vllm-efa (the vllm-efa-image workflow pushes it to ECR, see docs/serving.md) and set "
            "serving.engine.efaImage to it by digest, or set efa: false on those pools",
        )


# Storage classes backed by EBS: a volume attaches to one node at a time (ReadWriteOnce).
_EBS_STORAGE_CLASSES = {"gp2", "gp3", "io1", "io2", "st1", "sc1", "ebs-sc"}
# Grove names pods <pcs>-<i>-[<pcsg>-<j>-]<clique>-<random> and refuses a PodCliqueSet whose PCS, scaling-group and
# clique names add up to more than 45 characters (grove webhook validatePodNameConstraints).
_GROVE_NAME_BUDGET = 45


# ---- who may call the router (components/builders/serving/policies.py, serving/gate.py) ---------------------------


@rule("serving.router-api-key-is-a-token", "serving.router.apiKey")
def router_api_key_is_a_token(cfg: StackConfig):
    """The router API key can travel as a bearer token."""
    key = cfg.serving.router.api_key
    if key is None:
        return
    value = key.get_secret_value()
    # The gate compares the bearer token of the Authorization header: a token68 (RFC 6750 2.1), visible ASCII
    # without spaces.
    if not value or any(c.isspace() or not c.isprintable() or not c.isascii() for c in value):
        yield Issue(
            key_path("serving", "router", "apiKey"),
            "(secret)",
            "the API key is empty or holds whitespace or non-printable/non-ASCII characters, which a bearer token cannot carry",
            "pulumi config set --secret --path disagg:serving.router.apiKey \"$(openssl rand -hex 32)\"",
        )


@rule("serving.router-client-lists-not-empty", "serving.router.allowedClientCidrs", "serving.router.allowedClientNamespaces")
def router_client_lists_not_empty(cfg: StackConfig):
    """A client allow-list, when set, lists at least one entry."""
    r = cfg.serving.router
    for key, value in (("allowedClientCidrs", r.allowed_client_cidrs), ("allowedClientNamespaces", r.allowed_client_namespaces)):
        if value is not None and not value:
            yield Issue(
                key_path("serving", "router", key),
                [],
                "an empty list admits no client at all (only `kubectl port-forward` would still reach the router)",
                f"list at least one entry, or remove serving.router.{key} (both unset admit any source)",
            )


@rule("serving.router-client-cidrs-known-subnets", "serving.router.allowedClientCidrs", "serving.router.serviceType", "network.existingVpcId")
def router_client_cidrs_known_subnets(cfg: StackConfig):
    """Client CIDRs behind an internal NLB need subnets whose CIDRs the stack knows (the NLB health checks)."""
    r = cfg.serving.router
    if r.allowed_client_cidrs and r.service_type == "internalNlb" and cfg.network.existing_vpc_id:
        yield Issue(
            key_path("serving", "router", "allowedClientCidrs"),
            r.allowed_client_cidrs,
            "with serviceType internalNlb the NLB keeps client addresses and health-checks the router from its own "
            "addresses in the private subnets; in an existing VPC the stack does not know those subnets' CIDRs to "
            "admit the health checks",
            "remove serving.router.allowedClientCidrs (and rely on serving.router.apiKey), or use serviceType "
            "clusterIP behind your own ingress",
        )


@rule("serving.model-cache-read-write-many", "serving.modelCache.storageClass")
def model_cache_read_write_many(cfg: StackConfig):
    """A pvc model cache names a ReadWriteMany storage class (the claim is shared by every engine pod)."""
    mc = cfg.serving.model_cache
    if mc.kind == "pvc" and (mc.storage_class is None or mc.storage_class in _EBS_STORAGE_CLASSES):
        yield Issue(
            key_path("serving", "modelCache", "storageClass"),
            mc.storage_class,
            "the model cache claim is shared by every engine pod on many nodes (ReadWriteMany); EBS volumes attach "
            "to one node at a time" if mc.storage_class else "kind pvc needs a storage class",
            "name a ReadWriteMany class (EFS or FSx for Lustre CSI), or use modelCache.kind nvme",
        )


@rule("serving.autoscaling-not-under-grove", "serving.<role>.autoscaling.enabled", "platform.workloadApi", scope="role")
def autoscaling_not_under_grove(cfg: StackConfig, role: str):
    """Under Grove no role turns KEDA autoscaling on (a PodClique gives KEDA no scale selector)."""
    if cfg.serving.role(role).autoscaling.enabled and cfg.platform.workload_api == "grove":
        yield Issue(
            key_path("serving", role, "autoscaling", "enabled"),
            True,
            "under Grove KEDA cannot scale a role: a PodClique or PodCliqueScalingGroup publishes the pod "
            "selector an autoscaler needs only when Grove's own scaleConfig is set (grove v0.1.0-alpha.11 "
            "podclique/reconcilestatus.go mutateSelector), and that config makes Grove create its own HPAs on "
            "custom metrics, which need a metrics adapter this stack does not install",
            f"remove serving.{role}.autoscaling.enabled (it defaults to off under grove), or use workloadApi lws",
        )


@rule("serving.autoscaling-needs-keda", "serving.<role>.autoscaling.enabled", "platform.keda.enabled", "platform.monitoring.enabled", scope="role")
def autoscaling_needs_keda(cfg: StackConfig, role: str):
    """A role that scales through KEDA has KEDA and the monitoring it reads the metrics from."""
    pf = cfg.platform
    if cfg.serving.role(role).autoscaling.enabled and pf.workload_api == "grove":
        return  # serving.autoscaling-not-under-grove
    if autoscaling_enabled(cfg, role) and not (pf.keda.enabled and pf.monitoring.enabled):
        missing = [n for n, on in (("platform.keda", pf.keda.enabled), ("platform.monitoring", pf.monitoring.enabled)) if not on]
        yield Issue(
            key_path("serving", role, "autoscaling", "enabled"),
            True,
            f"{role} scales through KEDA on Prometheus metrics, but {' and '.join(missing)} is off",
            f"turn on {' and '.join(m + '.enabled' for m in missing)}, or set serving.{role}.autoscaling.enabled to false",
        )


@rule("serving.max-replicas-fit-pools", "serving.<role>.autoscaling.maxReplicas", "gpuPools[].maxNodes", scope="role")
def max_replicas_fit_pools(cfg: StackConfig, role: str):
    """Every replica the autoscaler may ask for fits the role's pools.

    With managed node groups the pools hold what they were given, so the replicas must fit them now, or they would
    sit Pending on a GPU that does not exist; with Karpenter or EKS Auto Mode nodes are added for pending pods up to
    the pools' maxNodes.
    """
    _role_fit(cfg, role)
    rp = role_plan(cfg, role)
    grows = node_autoscaling(cfg)
    available = role_nodes_at_max(cfg, role) if grows else role_nodes_available(cfg, role)
    if rp.nodes_needed_at_max > available:
        yield Issue(
            key_path("serving", role, "autoscaling", "maxReplicas"),
            rp.max_replicas,
            f"{rp.max_replicas} {role} replicas need {rp.nodes_needed_at_max} {rp.instance_type} nodes but the "
            f"{role} pools {list(rp.pools)} {'may grow to' if grows else 'have'} {available}",
            f"lower maxReplicas to what {available} nodes hold, or give the {role} pools "
            + (f"maxNodes {rp.nodes_needed_at_max} in total" if grows else f"{rp.nodes_needed_at_max} nodes"),
        )


@rule("stack.grove-name-budget", "name", "platform.workloadApi", scope="role")
def grove_name_budget(cfg: StackConfig, role: str):
    """Under Grove, the deployment name leaves room for the PodCliqueSet's pod names (45 characters in all)."""
    if cfg.platform.workload_api != "grove":
        return
    _role_fit(cfg, role)
    rp = role_plan(cfg, role)
    if rp.multi_node:
        length = len(cfg.name) + len(role) + len(f"{role}-leader")
        parts = f"'{cfg.name}' + scaling group '{role}' + clique '{role}-leader'"
    else:
        length = len(cfg.name) + len(role)
        parts = f"'{cfg.name}' + clique '{role}'"
    if length > _GROVE_NAME_BUDGET:
        yield Issue(
            key_path("name"),
            cfg.name,
            f"Grove refuses the PodCliqueSet: {parts} is {length} characters, over its {_GROVE_NAME_BUDGET}",
            f"use a deployment name of at most {len(cfg.name) - (length - _GROVE_NAME_BUDGET)} characters",
        )
