"""Cross-layer checks of a parsed `StackConfig`, all reported at once.

Field-level checks live in the models; what needs the catalog or more than one section of the config lives
here. Each check appends an `Issue` naming the `disagg:` key, the bad value and the fix.
"""

from __future__ import annotations

from collections import Counter

from facts.catalog import instance_type, known_instance_types
from stacks.config.base import Issue, key_path
from stacks.config.serving import BYTES_PER_PARAM
from stacks.config.stack import StackConfig
from stacks.plan import ami_release_version, kubernetes_version, kv_backend, node_autoscaling, pool_efa, pool_zones, role_nodes_at_max, role_nodes_available, role_plan
from facts.conventions import ROLES
from stacks.validation_nodes import check_node_provisioning
from stacks.validation_trtllm import check_tensorrt_llm
from facts.versions import pin

# The serving checks' helpers (a line of their own, so the line above stays as other checks extend it).
from stacks.plan import autoscaling_enabled, kv_transfer, role_efa, role_pools_efa

# The engine needs room beyond the weights for KV cache and activations; below this share of its memory
# budget left for them a replica either fails to start or serves almost no concurrent requests.
MIN_KV_SHARE = 0.10


def validate(cfg: StackConfig) -> list[Issue]:
    issues: list[Issue] = []
    add = issues.append
    pools_ok = _check_instances(cfg, add)
    _check_cluster(cfg, add)
    _check_zones(cfg, add)
    _check_pool_names(cfg, add)
    if pools_ok:
        _check_pools(cfg, add)
        _check_capacity_zones(cfg, add)
        _check_subnet_addresses(cfg, add)
        _check_ami_releases(cfg, add)
        _check_nvme_cache(cfg, add)
        roles_ok = _check_role_pools(cfg, add)
        if roles_ok:
            for role in ROLES:
                _check_role_fit(cfg, role, add)
            _check_kv_transfer(cfg, add)
            _check_platform(cfg, add)
            _check_serving(cfg, add)
            check_tensorrt_llm(cfg, add)
        _check_device_plugins(cfg, add)
        check_node_provisioning(cfg, add)
    return issues


def _check_instances(cfg: StackConfig, add) -> bool:
    ok = True
    gpu_types = ", ".join(known_instance_types(gpu=True))
    for i, p in enumerate(cfg.gpu_pools):
        try:
            it = instance_type(p.instance_type)
        except KeyError:
            add(Issue(key_path("gpuPools", i, "instanceType"), p.instance_type, "unknown instance type", f"use one of {gpu_types}"))
            ok = False
            continue
        if not it.is_gpu:
            add(Issue(key_path("gpuPools", i, "instanceType"), p.instance_type, "has no GPU", f"use a GPU type: {gpu_types}"))
            ok = False
    try:
        sys_it = instance_type(cfg.system_pool.instance_type)
        if sys_it.is_gpu:
            add(
                Issue(
                    key_path("systemPool", "instanceType"),
                    cfg.system_pool.instance_type,
                    "is a GPU type; the system pool runs controllers and the router",
                    f"use a CPU type: {', '.join(known_instance_types(gpu=False))}",
                )
            )
    except KeyError:
        add(
            Issue(
                key_path("systemPool", "instanceType"),
                cfg.system_pool.instance_type,
                "unknown instance type",
                f"use one of {', '.join(known_instance_types(gpu=False))}",
            )
        )
        ok = False
    return ok


def _check_cluster(cfg: StackConfig, add) -> None:
    if cfg.cluster.endpoint_public_access and not cfg.cluster.public_access_cidrs:
        add(
            Issue(
                key_path("cluster", "publicAccessCidrs"),
                [],
                "the public endpoint is on but publicAccessCidrs is empty",
                "list the CIDRs of your network and CI runners in cluster.publicAccessCidrs, or set cluster.endpointPublicAccess to false",
            )
        )


def _check_zones(cfg: StackConfig, add) -> None:
    for i, az in enumerate(cfg.availability_zones):
        if not az.startswith(cfg.region):
            add(Issue(key_path("availabilityZones", i), az, f"is not a zone of region {cfg.region}", f"use zones named {cfg.region}a, {cfg.region}b, ..."))
    dup = [az for az, n in Counter(cfg.availability_zones).items() if n > 1]
    if dup:
        add(Issue(key_path("availabilityZones"), cfg.availability_zones, f"lists {', '.join(dup)} twice", "list each zone once"))
    for i, p in enumerate(cfg.gpu_pools):
        for az in p.availability_zones or []:
            if az not in cfg.availability_zones:
                add(
                    Issue(
                        key_path("gpuPools", i, "availabilityZones"),
                        p.availability_zones,
                        f"{az} is not one of the stack zones {cfg.availability_zones}",
                        "add it to disagg:availabilityZones or pick one of those",
                    )
                )
    net = cfg.network
    if net.existing_vpc_id:
        for key, subnets in (("existingPrivateSubnetIds", net.existing_private_subnet_ids), ("existingPublicSubnetIds", net.existing_public_subnet_ids)):
            if subnets is None:
                continue
            missing = [az for az in cfg.availability_zones if az not in subnets]
            if missing:
                add(Issue(key_path("network", key), subnets, f"has no subnet for {', '.join(missing)}", "give one subnet id per zone in disagg:availabilityZones"))
    else:
        need = len(cfg.availability_zones) * (2 ** (32 - net.private_subnet_prefix_length) + 2 ** (32 - net.public_subnet_prefix_length))
        have = 2 ** (32 - int(net.vpc_cidr.split("/")[1]))
        if need > have:
            add(
                Issue(
                    key_path("network", "vpcCidr"),
                    net.vpc_cidr,
                    f"too small for {len(cfg.availability_zones)} private /{net.private_subnet_prefix_length} and public /{net.public_subnet_prefix_length} subnets",
                    "use a larger VPC CIDR (e.g. /16) or longer subnet prefix lengths",
                )
            )


def _check_pool_names(cfg: StackConfig, add) -> None:
    counts = Counter(p.name for p in cfg.gpu_pools)
    for i, p in enumerate(cfg.gpu_pools):
        if counts[p.name] > 1:
            add(Issue(key_path("gpuPools", i, "name"), p.name, "is used by more than one pool", "give every pool a unique name"))
        if p.name == "system":
            add(Issue(key_path("gpuPools", i, "name"), p.name, "is reserved for the CPU system pool", "pick another name"))


def _check_pools(cfg: StackConfig, add) -> None:
    for i, p in enumerate(cfg.gpu_pools):
        it = instance_type(p.instance_type)
        if p.efa and not it.supports_efa:
            efa_types = ", ".join(n for n in known_instance_types(gpu=True) if instance_type(n).supports_efa)
            add(Issue(key_path("gpuPools", i, "efa"), True, f"{p.instance_type} has no EFA", f"set efa to false or use an EFA type: {efa_types}"))
        zones = pool_zones(cfg, p)
        if pool_efa(p) and len(zones) != 1:
            add(
                Issue(
                    key_path("gpuPools", i, "availabilityZones"),
                    zones,
                    "an EFA pool spans more than one zone (EFA traffic and cluster placement groups stay in one AZ)",
                    "give the pool exactly one zone",
                )
            )
        if p.capacity.type == "capacityBlock" and len(zones) != 1:
            add(
                Issue(
                    key_path("gpuPools", i, "availabilityZones"),
                    zones,
                    "a Capacity Block lives in one zone, the pool spans more",
                    "set availabilityZones to the single zone of the block",
                )
            )
        if p.placement_group and not pool_efa(p):
            add(
                Issue(
                    key_path("gpuPools", i, "placementGroup"),
                    True,
                    "a cluster placement group without EFA buys nothing but launch failures",
                    "remove placementGroup or turn on efa",
                )
            )


def _check_role_pools(cfg: StackConfig, add) -> bool:
    ok = True
    for role in ROLES:
        pools = cfg.pools_for(role)
        if not pools:
            add(Issue(key_path("gpuPools"), [p.name for p in cfg.gpu_pools], f"no pool has role {role}", f"add a GPU pool with role: {role}"))
            ok = False
            continue
        types = {p.instance_type for p in pools}
        if len(types) > 1:
            idx = cfg.gpu_pools.index(pools[1])
            add(
                Issue(
                    key_path("gpuPools", idx, "instanceType"),
                    pools[1].instance_type,
                    f"the {role} pools mix instance types {sorted(types)}; one pod spec cannot fit both",
                    f"use one instance type for every {role} pool",
                )
            )
            ok = False
        efa = [p.name for p in pools if pool_efa(p)]
        if efa and len(efa) != len(pools):
            idx = cfg.gpu_pools.index(next(p for p in pools if not pool_efa(p)))
            add(
                Issue(
                    key_path("gpuPools", idx, "efa"),
                    False,
                    f"the {role} pools mix EFA ({efa}) and non-EFA pools; one pod spec cannot request EFA devices on "
                    "both, and the pods on the non-EFA pools would silently move KV over TCP",
                    f"give every {role} pool the same EFA setting (all EFA types with efa on, or efa: false on all)",
                )
            )
            ok = False
    return ok


def _check_role_fit(cfg: StackConfig, role: str, add) -> None:
    rc = cfg.serving.role(role)
    pools = cfg.pools_for(role)
    it = instance_type(pools[0].instance_type)
    gpn = it.gpus
    gpus = rc.gpus_per_replica
    tp, pp = rc.tensor_parallel, rc.pipeline_parallel
    fit_ok = True
    if gpus <= gpn and gpn % gpus != 0:
        divisors = [d for d in range(1, gpn + 1) if gpn % d == 0]
        add(
            Issue(
                key_path("serving", role, "tensorParallel"),
                tp,
                f"TP x PP x DP = {tp} x {pp} x {rc.data_parallel} = {gpus} GPUs per pod does not divide the {gpn} GPUs of {it.name}; GPUs would sit idle",
                f"use TP x PP x DP in {divisors}, or a multiple of {gpn} to span whole nodes",
            )
        )
        fit_ok = False
    if gpus > gpn and gpus % gpn != 0:
        add(
            Issue(
                key_path("serving", role, "tensorParallel"),
                tp,
                f"TP x PP x DP = {tp} x {pp} x {rc.data_parallel} = {gpus} GPUs spans nodes but is not a whole number of {it.name} nodes ({gpn} GPUs each)",
                f"a multi-node replica uses whole nodes: make TP x PP x DP a multiple of {gpn}",
            )
        )
        fit_ok = False
    if not fit_ok:
        return
    rp = role_plan(cfg, role)
    efa = role_pools_efa(cfg, role)
    share = it.efa_interfaces // max(rp.pods_per_node, 1)
    if rc.efa_per_pod is not None:
        if not efa:
            add(Issue(key_path("serving", role, "efaPerPod"), rc.efa_per_pod, f"the {role} pools have no EFA", "remove efaPerPod or turn on efa for the pools"))
        elif rc.efa_per_pod > it.efa_interfaces:
            add(
                Issue(
                    key_path("serving", role, "efaPerPod"),
                    rc.efa_per_pod,
                    f"more EFA devices per pod than a {it.name} node has ({it.efa_interfaces})",
                    f"use at most {it.efa_interfaces}; the default gives {share} (the node's interfaces shared by its {rp.pods_per_node} pods)",
                )
            )
        elif rp.pods_per_node * rc.efa_per_pod > it.efa_interfaces:
            add(
                Issue(
                    key_path("serving", role, "efaPerPod"),
                    rc.efa_per_pod,
                    f"{rp.pods_per_node} pods per node x {rc.efa_per_pod} EFA exceeds the node's {it.efa_interfaces}; pods would not schedule",
                    f"use at most {it.efa_interfaces // rp.pods_per_node}",
                )
            )
    elif efa and share == 0 and it.efa_interfaces > 0:
        # The EFA device plugin hands out whole interfaces; a pod without one would fall back to TCP.
        fewest = gpn // it.efa_interfaces
        add(
            Issue(
                key_path("serving", role, "tensorParallel"),
                tp,
                f"{rp.pods_per_node} pods of {rp.gpus_per_pod} GPUs per {it.name} node share its {it.efa_interfaces} EFA "
                "interface(s): some pods would get no EFA device (an interface cannot be shared between pods)",
                f"give each pod at least {fewest} GPUs (TP x PP x DP >= {fewest}) so every pod gets a whole interface, "
                f"or set efa: false on the {role} pools",
            )
        )
    if rc.data_parallel > 1 and rc.tensor_parallel * rc.pipeline_parallel > gpn:
        add(
            Issue(
                key_path("serving", role, "dataParallel"),
                rc.data_parallel,
                f"each data-parallel rank spans nodes (TP x PP = {rc.tensor_parallel * rc.pipeline_parallel} > {gpn} GPUs of {it.name})",
                f"keep TP x PP within a node ({gpn} GPUs) and scale across nodes with dataParallel (wide EP: TP within a node, DP x EP across nodes)",
            )
        )
    # Weights must fit the GPUs of one replica with room left for the KV cache.
    m = cfg.serving.model
    weights_gib = m.parameters_billions * 1e9 * BYTES_PER_PARAM[m.weight_dtype] / 2**30
    # Without expert parallelism every DP rank holds a whole copy of the model; with it the experts (nearly all of an
    # MoE's weights: GLM-5's 256 routed experts are ~97% of its 744B) are sharded over DP x TP.
    shards = gpus if rc.expert_parallel else tp * pp
    per_gpu = weights_gib / shards
    budget = it.gpu_memory_gib * cfg.serving.engine.gpu_memory_utilization
    if per_gpu > budget * (1 - MIN_KV_SHARE):
        need = weights_gib / (budget * (1 - MIN_KV_SHARE))
        add(
            Issue(
                key_path("serving", role, "tensorParallel"),
                tp,
                (
                    f"{m.parameters_billions:g}B parameters in {m.weight_dtype} are {weights_gib:.1f} GiB: {per_gpu:.1f} GiB per GPU over {shards} GPUs, "
                    f"but a {it.gpu_model} gives the engine {budget:.1f} GiB and at least {MIN_KV_SHARE:.0%} of it must stay free for the KV cache"
                ),
                f"shard the weights over at least {need:.1f} GPUs (TP x PP, or DP x TP with expertParallel for MoE), or serve a smaller dtype (serving.model.weightDtype)",
            )
        )
    # A Capacity Block pool created at 0 nodes counts with the nodes it serves with once its block starts.
    available = role_nodes_available(cfg, role)
    if rp.nodes_needed > available:
        idx = cfg.gpu_pools.index(pools[0])
        add(
            Issue(
                key_path("gpuPools", idx, "nodes"),
                pools[0].nodes,
                (
                    f"{role} asks for {rc.replicas} replicas of {gpus} GPUs ({rp.nodes_needed} {it.name} nodes) "
                    f"but its pools {list(rp.pools)} have {available}"
                ),
                f"give the {role} pools {rp.nodes_needed} nodes in total, or lower serving.{role}.replicas",
            )
        )


def _check_kv_transfer(cfg: StackConfig, add) -> None:
    pools = [p for p in cfg.gpu_pools if p.role in ROLES]
    # EFA traffic never leaves its AZ, whatever carries the KV: NCCL inside a group, NIXL between roles.
    efa_zones = {az for p in pools if pool_efa(p) for az in pool_zones(cfg, p)}
    if len(efa_zones) > 1:
        i = next(i for i, p in enumerate(cfg.gpu_pools) if p.role == "decode" and pool_efa(p)) if any(
            p.role == "decode" and pool_efa(p) for p in cfg.gpu_pools
        ) else next(i for i, p in enumerate(cfg.gpu_pools) if p.role in ROLES and pool_efa(p))
        add(
            Issue(
                key_path("gpuPools", i, "availabilityZones"),
                sorted(efa_zones),
                "the EFA pools of prefill and decode are in different zones; KV transfer over EFA cannot cross AZs, so it would move over TCP",
                "put every EFA prefill and decode pool in the same single zone",
            )
        )
    if not kv_transfer(cfg):
        return
    backend = kv_backend(cfg)
    if backend == "LIBFABRIC":
        no_efa = [r for r in ROLES if not role_efa(cfg, r)]
        if no_efa:
            add(
                Issue(
                    key_path("serving", "kvTransfer", "backend"),
                    "LIBFABRIC",
                    f"the {' and '.join(no_efa)} pods get no EFA devices, so LIBFABRIC has no fabric to use",
                    "use backend auto or UCX, or put both roles on EFA pools",
                )
            )
    for role in ROLES:
        pp = cfg.serving.role(role).pipeline_parallel
        # TensorRT-LLM's cache transceiver moves KV between pipeline stages (validation_trtllm.py has its checks).
        if pp > 1 and cfg.serving.engine.kind == "vllm":
            # vllm v0.30.0 nixl/base_worker.py: "Decode-side PP is unsupported"; a PP prefill needs the push
            # connector (vllm PR #45880), and the pull NixlConnector refuses pp_rank > 0 handshakes
            # (kv_connector/v1/base.py set_xfer_handshake_metadata_pp_aware; vllm issue #52913).
            side = "on the decode side" if role == "decode" else "with the pull-mode NixlConnector"
            add(
                Issue(
                    key_path("serving", role, "pipelineParallel"),
                    pp,
                    f"vLLM's {cfg.serving.kv_transfer.connector} cannot transfer KV with pipeline parallelism {side} "
                    "(vllm issue #52913); the engine would fail at its first KV handshake",
                    f"set serving.{role}.pipelineParallel to 1: for a model larger than a node use tensorParallel within "
                    "a node with dataParallel across nodes (and expertParallel for MoE), or serve PP with serving.mode: aggregated",
                )
            )


def _check_platform(cfg: StackConfig, add) -> None:
    pf = cfg.platform
    if not pf.kai.enabled:
        add(Issue(key_path("platform", "kai", "enabled"), False, "serving pods are gang-scheduled by KAI", "set platform.kai.enabled to true"))
    if pf.workload_api == "lws" and not pf.lws_enabled:
        add(Issue(key_path("platform", "lws", "enabled"), False, "workloadApi is lws but LWS is off", "turn platform.lws.enabled on or use workloadApi grove"))
    if pf.workload_api == "grove" and not pf.grove_enabled:
        add(Issue(key_path("platform", "grove", "enabled"), False, "workloadApi is grove but Grove is off", "turn platform.grove.enabled on or use workloadApi lws"))
    _check_queue_names(cfg, add)
    _check_monitoring(cfg, add)
    requested = sum(role_plan(cfg, r).gpus_requested for r in ROLES)
    quota = pf.kai.queue.gpu_quota
    if quota is not None and quota < requested:
        add(
            Issue(
                key_path("platform", "kai", "queue", "gpuQuota"),
                quota,
                f"below the {requested} GPUs the serving roles ask for; inference-priority pods only use in-quota GPUs, so some would never schedule",
                f"set gpuQuota to at least {requested}, or remove it to default to every GPU of the pools",
            )
        )
    if cfg.serving.router.service_type == "internalNlb" and not pf.load_balancer_controller.enabled:
        add(
            Issue(
                key_path("serving", "router", "serviceType"),
                "internalNlb",
                "an internal NLB needs the AWS Load Balancer Controller, which is off",
                "turn platform.loadBalancerController.enabled on, or use serviceType clusterIP",
            )
        )
    no = pf.network_operator
    names = {p.name: p for p in cfg.gpu_pools}
    for j, name in enumerate(no.pools):
        if name not in names:
            add(Issue(key_path("platform", "networkOperator", "pools", j), name, "is not a GPU pool", f"use one of {sorted(names)}"))
        elif pool_efa(names[name]):
            add(
                Issue(
                    key_path("platform", "networkOperator", "pools", j),
                    name,
                    "is an EFA pool; the NVIDIA Network Operator drives ConnectX (InfiniBand/RoCE) NICs and cannot manage AWS EFA, "
                    "which the EFA device plugin serves",
                    "remove the pool from networkOperator.pools (keep the EFA device plugin for it)",
                )
            )
    if no.enabled and not no.pools and not no.node_selector:
        add(
            Issue(
                key_path("platform", "networkOperator", "enabled"),
                True,
                "the Network Operator is on but targets no nodes (on AWS every GPU fabric here is EFA)",
                "list ConnectX pools in networkOperator.pools or ConnectX node labels in networkOperator.nodeSelector, or turn it off",
            )
        )


def _check_queue_names(cfg: StackConfig, add) -> None:
    """The leaf must hang under a different parent, and neither may take the name of a queue KAI's chart creates
    itself (an existing object of that name makes the stack's create fail)."""
    from components.builders.platform_objects import KAI_DEFAULT_QUEUES

    qc = cfg.platform.kai.queue
    if qc.name == qc.parent_name:
        add(
            Issue(
                key_path("platform", "kai", "queue", "name"),
                qc.name,
                "the serving queue and its parent have the same name; KAI queues form a tree (the leaf names its parent)",
                "give platform.kai.queue.name and parentName different names",
            )
        )
    for field, value in (("name", qc.name), ("parentName", qc.parent_name)):
        if value in KAI_DEFAULT_QUEUES:
            add(
                Issue(
                    key_path("platform", "kai", "queue", field),
                    value,
                    f"is a queue KAI's chart creates itself ({', '.join(KAI_DEFAULT_QUEUES)}, GPU quota 0)",
                    "pick another name (defaults: serving under disagg)",
                )
            )


def _check_monitoring(cfg: StackConfig, add) -> None:
    """SLO objectives are read off histogram buckets: an objective between two bounds cannot be measured."""
    from components.builders.observability import ITL_BUCKETS as VLLM_ITL_BUCKETS
    from components.builders.observability import TTFT_BUCKETS as VLLM_TTFT_BUCKETS
    from components.builders.observability import le

    mon = cfg.platform.monitoring
    for field, value, buckets, metric in (
        ("ttftSeconds", mon.slo.ttft_seconds, VLLM_TTFT_BUCKETS, "vllm:time_to_first_token_seconds"),
        ("itlSeconds", mon.slo.itl_seconds, VLLM_ITL_BUCKETS, "vllm:inter_token_latency_seconds"),
    ):
        if float(value) not in buckets:
            add(
                Issue(
                    key_path("platform", "monitoring", "slo", field),
                    value,
                    f"is not a bucket bound of {metric}, so the share of requests under it cannot be computed",
                    f"use one of {', '.join(le(b) for b in buckets)}",
                )
            )
    if mon.amp.enabled and not mon.enabled:
        add(
            Issue(
                key_path("platform", "monitoring", "amp", "enabled"),
                True,
                "AMP receives what the in-cluster Prometheus scrapes, and monitoring is off",
                "turn platform.monitoring.enabled on, or amp off",
            )
        )


def _check_capacity_zones(cfg: StackConfig, add) -> None:
    """A targeted reservation (one cr-... id) lives in one zone: instances launched elsewhere would miss it and, with
    the launch template targeting it, fail to launch at all."""
    for i, p in enumerate(cfg.gpu_pools):
        zones = pool_zones(cfg, p)
        if p.capacity.type == "capacityReservation" and p.capacity.reservation_id and len(zones) != 1:
            add(
                Issue(
                    key_path("gpuPools", i, "availabilityZones"),
                    zones,
                    f"capacity reservation {p.capacity.reservation_id} lives in one zone, the pool spans {len(zones)}",
                    "set availabilityZones to the single zone of the reservation",
                )
            )


def _check_ami_releases(cfg: StackConfig, add) -> None:
    """A node group's AMI release (`<k8s patch>-<date>`) must be built for the cluster's Kubernetes minor, or EKS
    rejects the node group."""
    k8s = kubernetes_version(cfg)
    for i, p in enumerate(cfg.gpu_pools):
        release = ami_release_version(p)
        if not release.startswith(f"{k8s}."):
            key = key_path("gpuPools", i, "amiReleaseVersion") if p.ami_release_version else key_path("cluster", "kubernetesVersion")
            add(
                Issue(
                    key,
                    p.ami_release_version or cfg.cluster.kubernetes_version,
                    f"AMI release {release} of pool {p.name} is not built for Kubernetes {k8s}",
                    f"use an AL2023 NVIDIA AMI release for {k8s} (e.g. {k8s}.<patch>-<date>), or remove the override",
                )
            )
    system = pin("eks-al2023-ami").version
    if not system.startswith(f"{k8s}."):
        add(
            Issue(
                key_path("cluster", "kubernetesVersion"),
                cfg.cluster.kubernetes_version,
                f"the system node group's AMI release {system} (versions table, eks-al2023-ami) is not built for Kubernetes {k8s}",
                "keep cluster.kubernetesVersion at the versions table's `kubernetes` pin, or move the AMI pins with it",
            )
        )


def _check_nvme_cache(cfg: StackConfig, add) -> None:
    """`modelCache.kind: nvme` is a hostPath on the instance-store RAID0 that the GPU pools' NodeConfig builds
    (components/builders/userdata.py). Without the array the same hostPath silently lands on the root EBS volume,
    which a model's weights plus the images fill (node disk pressure, evictions)."""
    from components.builders.userdata import RAID0_MOUNT

    mc = cfg.serving.model_cache
    if mc.kind != "nvme":
        return
    for i, p in enumerate(cfg.gpu_pools):
        if not p.nvme_cache:
            add(
                Issue(
                    key_path("gpuPools", i, "nvmeCache"),
                    False,
                    "serving.modelCache.kind is nvme but this pool builds no NVMe RAID0, so the cache would land on the root volume",
                    "turn nvmeCache on, or set serving.modelCache.kind to pvc",
                )
            )
        elif instance_type(p.instance_type).nvme_disks == 0:
            add(
                Issue(
                    key_path("gpuPools", i, "instanceType"),
                    p.instance_type,
                    "has no instance-store NVMe for serving.modelCache.kind nvme, so the cache would land on the root volume",
                    "use a type with NVMe (e.g. p5.48xlarge, g6e.*) or set serving.modelCache.kind to pvc",
                )
            )
    if not mc.host_path.startswith(f"{RAID0_MOUNT}/"):
        add(
            Issue(
                key_path("serving", "modelCache", "hostPath"),
                mc.host_path,
                f"is not on the NVMe RAID0, which nodeadm mounts at {RAID0_MOUNT}",
                f"use a directory under {RAID0_MOUNT}/, e.g. {RAID0_MOUNT}/model-cache",
            )
        )


def _check_subnet_addresses(cfg: StackConfig, add) -> None:
    """Pods take VPC addresses: each zone's private subnet must hold what its nodes can take at their maximum node
    counts (components/builders/network.py says how a node's share is estimated)."""
    from components.builders.network import node_addresses, usable_addresses, zone_address_demand

    net = cfg.network
    if net.existing_vpc_id:
        return  # sizes of existing subnets are not known before deploy
    have = usable_addresses(net.private_subnet_prefix_length)
    for az, need in zone_address_demand(cfg).items():
        if need <= have:
            continue
        biggest = max(cfg.gpu_pools, key=lambda p: node_addresses(instance_type(p.instance_type), net.prefix_delegation))
        per_node = node_addresses(instance_type(biggest.instance_type), net.prefix_delegation)
        add(
            Issue(
                key_path("network", "privateSubnetPrefixLength"),
                net.private_subnet_prefix_length,
                (
                    f"zone {az}: its nodes can take up to {need} addresses at full pod density (a {biggest.instance_type} node "
                    f"up to {per_node}{' with prefix delegation' if net.prefix_delegation else ''}) but a "
                    f"/{net.private_subnet_prefix_length} subnet has {have}"
                ),
                "use a shorter prefix length (a larger subnet, e.g. 18) and a VPC CIDR that fits it, or lower maxNodes",
            )
        )


def _check_device_plugins(cfg: StackConfig, add) -> None:
    """The device plugins the GPU pools need: without them pods asking for the devices stay Pending forever."""
    pf = cfg.platform
    if cfg.node_provisioning == "autoMode":
        return  # EKS Auto Mode runs both device plugins itself (stacks/validation_nodes.py)
    if not pf.gpu_operator.enabled:
        add(
            Issue(
                key_path("platform", "gpuOperator", "enabled"),
                False,
                "no device plugin would advertise nvidia.com/gpu: the EKS AL2023 NVIDIA AMI ships the driver but not the "
                "plugin, and here the GPU Operator provides it, so no serving pod could schedule",
                "set platform.gpuOperator.enabled to true",
            )
        )
    efa = [p.name for p in cfg.gpu_pools if pool_efa(p)]
    if efa and not pf.efa_device_plugin.enabled:
        add(
            Issue(
                key_path("platform", "efaDevicePlugin", "enabled"),
                False,
                f"pools {efa} have EFA, but without the EFA device plugin no node advertises vpc.amazonaws.com/efa "
                "and pods requesting it never schedule",
                "set platform.efaDevicePlugin.enabled to true, or set efa: false on those pools",
            )
        )


def _check_engine_images(cfg: StackConfig, add) -> None:
    """EFA pods run the EFA engine image; the host-mount mode is gone."""
    e = cfg.serving.engine
    if e.efa_userspace is not None:
        add(
            Issue(
                key_path("serving", "engine", "efaUserspace"),
                e.efa_userspace,
                "was removed: the EKS AL2023 NVIDIA AMI installs EFA with --minimal (kernel module and rdma-core, no "
                "libfabric; awslabs/amazon-eks-ami templates/al2023/provisioners/install-efa.sh), so there is nothing "
                "on the host for NIXL's LIBFABRIC plugin or aws-ofi-nccl to load",
                "delete serving.engine.efaUserspace and set serving.engine.efaImage to an image built from images/vllm-efa",
            )
        )
    efa_pools = [p.name for p in cfg.gpu_pools if p.role in ROLES and pool_efa(p)]
    if efa_pools and not e.efa_image and e.kind == "vllm":  # tensorrt-llm: validation_trtllm.py
        add(
            Issue(
                key_path("serving", "engine", "efaImage"),
                None,
                f"pools {efa_pools} have EFA, and their engine pods need an image with the EFA user space (libfabric, "
                "aws-ofi-nccl, hwloc); the stock vllm/vllm-openai image has none",
                "build images/vllm-efa (the vllm-efa-image workflow pushes it to ECR, see docs/serving.md) and set "
                "serving.engine.efaImage to it by digest, or set efa: false on those pools",
            )
        )


# Storage classes backed by EBS: a volume attaches to one node at a time (ReadWriteOnce).
_EBS_STORAGE_CLASSES = {"gp2", "gp3", "io1", "io2", "st1", "sc1", "ebs-sc"}
# Grove names pods <pcs>-<i>-[<pcsg>-<j>-]<clique>-<random> and refuses a PodCliqueSet whose PCS, scaling-group and
# clique names add up to more than 45 characters (grove webhook validatePodNameConstraints).
_GROVE_NAME_BUDGET = 45


def _check_serving(cfg: StackConfig, add) -> None:
    """Checks of the serving layer that need the plan, the pools or the platform switches."""
    s = cfg.serving
    pf = cfg.platform
    if s.router.kind == "llm-d":
        add(
            Issue(
                key_path("serving", "router", "kind"),
                "llm-d",
                "the llm-d router (endpoint picker behind Envoy, InferencePool, decode-pod sidecar) is not built by this "
                "stack yet; only vllm-router is deployed",
                "use kind vllm-router (the default)",
            )
        )
    mc = s.model_cache
    if mc.kind == "pvc" and (mc.storage_class is None or mc.storage_class in _EBS_STORAGE_CLASSES):
        add(
            Issue(
                key_path("serving", "modelCache", "storageClass"),
                mc.storage_class,
                "the model cache claim is shared by every engine pod on many nodes (ReadWriteMany); EBS volumes attach "
                "to one node at a time" if mc.storage_class else "kind pvc needs a storage class",
                "name a ReadWriteMany class (EFS or FSx for Lustre CSI), or use modelCache.kind nvme",
            )
        )
    _check_engine_images(cfg, add)
    for role in ROLES:
        rc = s.role(role)
        a = rc.autoscaling
        if a.enabled and pf.workload_api == "grove":
            add(
                Issue(
                    key_path("serving", role, "autoscaling", "enabled"),
                    True,
                    "under Grove KEDA cannot scale a role: a PodClique or PodCliqueScalingGroup publishes the pod "
                    "selector an autoscaler needs only when Grove's own scaleConfig is set (grove v0.1.0-alpha.11 "
                    "podclique/reconcilestatus.go mutateSelector), and that config makes Grove create its own HPAs on "
                    "custom metrics, which need a metrics adapter this stack does not install",
                    f"remove serving.{role}.autoscaling.enabled (it defaults to off under grove), or use workloadApi lws",
                )
            )
        elif autoscaling_enabled(cfg, role) and not (pf.keda.enabled and pf.monitoring.enabled):
            missing = [n for n, on in (("platform.keda", pf.keda.enabled), ("platform.monitoring", pf.monitoring.enabled)) if not on]
            add(
                Issue(
                    key_path("serving", role, "autoscaling", "enabled"),
                    True,
                    f"{role} scales through KEDA on Prometheus metrics, but {' and '.join(missing)} is off",
                    f"turn on {' and '.join(m + '.enabled' for m in missing)}, or set serving.{role}.autoscaling.enabled to false",
                )
            )
        it = instance_type(cfg.pools_for(role)[0].instance_type)
        gpus = rc.gpus_per_replica
        if (gpus <= it.gpus and it.gpus % gpus) or (gpus > it.gpus and gpus % it.gpus):
            continue  # the layout itself is wrong; _check_role_fit reports it
        rp = role_plan(cfg, role)
        # With managed node groups the pools hold what they were given, so every replica the autoscaler may ask for
        # must fit them now, or it would sit Pending on a GPU that does not exist; with Karpenter or EKS Auto Mode
        # nodes are added for pending pods up to the pools' maxNodes.
        grows = node_autoscaling(cfg)
        available = role_nodes_at_max(cfg, role) if grows else role_nodes_available(cfg, role)
        if rp.nodes_needed_at_max > available:
            add(
                Issue(
                    key_path("serving", role, "autoscaling", "maxReplicas"),
                    rp.max_replicas,
                    f"{rp.max_replicas} {role} replicas need {rp.nodes_needed_at_max} {rp.instance_type} nodes but the "
                    f"{role} pools {list(rp.pools)} {'may grow to' if grows else 'have'} {available}",
                    f"lower maxReplicas to what {available} nodes hold, or give the {role} pools "
                    + (f"maxNodes {rp.nodes_needed_at_max} in total" if grows else f"{rp.nodes_needed_at_max} nodes"),
                )
            )
        if pf.workload_api == "grove":
            if rp.multi_node:
                length = len(cfg.name) + len(role) + len(f"{role}-leader")
                parts = f"'{cfg.name}' + scaling group '{role}' + clique '{role}-leader'"
            else:
                length = len(cfg.name) + len(role)
                parts = f"'{cfg.name}' + clique '{role}'"
            if length > _GROVE_NAME_BUDGET:
                add(
                    Issue(
                        key_path("name"),
                        cfg.name,
                        f"Grove refuses the PodCliqueSet: {parts} is {length} characters, over its {_GROVE_NAME_BUDGET}",
                        f"use a deployment name of at most {len(cfg.name) - (length - _GROVE_NAME_BUDGET)} characters",
                    )
                )


def check_aws_region(region: object, aws_region: str | None) -> list[Issue]:
    """`aws:region` (when set) must name the same region as `disagg:region`.

    Every resource goes to `disagg:region` (the stack's explicit AWS provider, stacks/stack.py), but `aws:region`
    is what Pulumi's default AWS provider, `pulumi config`, the Pulumi Cloud console and any tool reading the
    stack's AWS settings see. Two regions in one stack file is always a mistake, usually a copy of another stack.
    Runs on the raw value, so it is reported alongside the model's own errors.
    """
    if not aws_region or not isinstance(region, str) or region == aws_region:
        return []
    return [
        Issue(
            key_path("region"),
            region,
            f"differs from aws:region ({aws_region}): resources are created in {region}, while Pulumi's default AWS "
            f"provider and anything reading the stack's AWS config use {aws_region}",
            f"set both to the same region: `pulumi config set aws:region {region}` (or change disagg:region to {aws_region})",
        )
    ]
