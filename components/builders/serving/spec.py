"""The narrow, typed args of the serving layer: what its builders read, as plain frozen values.

The stack composition (stacks/serving_args.py) builds a `ServingSpec` from the typed config and the plan; the
builders read nothing else of the config. `PlatformFacts` is what serving reads off the installed platform
(`Platform.serving_facts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from components.builders import platform_values as pv
from components.builders.platform_objects import AWS_TOPOLOGY, Pack

# The topology level a multi-node replica prefers to pack into: the platform's `block` level, one above the
# instance's own network node.
PACK_DOMAIN = "block"


@dataclass(frozen=True)
class PlatformFacts:
    """What serving needs to know from the platform, as plain values."""

    queue_name: str
    topology_name: str
    # Grove ClusterTopologyBinding domain and KAI Topology node label a multi-node replica prefers to pack into.
    pack_domain: str = PACK_DOMAIN
    pack_node_label: str = "topology.k8s.aws/network-node-layer-2"
    prometheus_url: str = field(default_factory=pv.prometheus_url)
    monitoring_namespace: str = pv.MONITORING_NAMESPACE
    monitoring_release_label: str = pv.MONITORING_RELEASE
    # Per role: the Topology its pools all satisfy and the level to pack on (platform_objects.role_packs). KAI drops
    # nodes lacking any level label of a workload's Topology, so a role must never name levels its nodes lack.
    packs: dict[str, Pack] = field(default_factory=dict)

    def pack_for(self, role: str) -> Pack:
        """The role's pack; without per-role facts, the single topology and level of the fields above."""
        if role in self.packs:
            return self.packs[role]
        return Pack(self.topology_name, self.pack_domain, self.pack_node_label, 3)


def platform_facts(queue_name: str, topology_name: str, packs: dict[str, Pack]) -> PlatformFacts:
    """The facts of a platform with this KAI queue and Topology and these per-role packs. The monitoring stack's
    names are the chart's fixed ones (platform_values), whether or not it is installed: the network policies admit
    its namespace either way."""
    label = next((lv.key for lv in AWS_TOPOLOGY if lv.domain == PACK_DOMAIN), PlatformFacts.pack_node_label)
    return PlatformFacts(queue_name=queue_name, topology_name=topology_name, pack_node_label=label, packs=dict(packs))


@dataclass(frozen=True)
class ModelSpec:
    id: str
    served_name: str  # what clients send in `model` (the id unless set)
    parameters_billions: float
    max_model_len: int | None
    # The model section as configured (JSON form): part of the engine revision both roles must share.
    revision_inputs: dict[str, Any]


@dataclass(frozen=True)
class EngineSpec:
    kind: str
    image: str | None  # engine image on pools without EFA (None: the engine's pinned default)
    efa_image: str | None  # engine image on EFA pools
    port: int
    master_port: int
    data_parallel_rpc_port: int
    gpu_memory_utilization: float
    prefix_caching: bool
    read_only_root_filesystem: bool
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrtllmRoleSpec:
    """The TensorRT-LLM LLM API options of one role, resolved (None: TensorRT-LLM's own default)."""

    max_batch_size: int | None = None
    max_num_tokens: int | None = None
    kv_cache_free_gpu_memory_fraction: float | None = None
    cuda_graphs: bool = False
    overlap_scheduler: bool = False
    kv_transfer_buffer_tokens: int | None = None


@dataclass(frozen=True)
class RoleSpec:
    """One serving role (prefill or decode) as the plan lands it on its pools."""

    role: str
    replicas: int
    max_replicas: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    expert_parallel: bool
    nodes_per_replica: int
    gpus_per_pod: int
    efa_per_pod: int
    instance_type: str
    efa: bool  # the role's pods request EFA devices
    zones: tuple[str, ...]  # zones its pods may use
    taints: tuple[dict[str, str], ...]  # every taint of its pools, in pool order
    extra_args: tuple[str, ...] = ()
    # KEDA scaling on an engine metric; metric / target None: the engine's default for the role.
    autoscaling: bool = False
    min_replicas: int | None = None
    scaling_metric: str | None = None
    scaling_target: float | None = None
    # Engine kind tensorrt-llm: the role's LLM API options.
    tensorrt_llm: TrtllmRoleSpec | None = None

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1


@dataclass(frozen=True)
class RouterSpec:
    kind: str
    replicas: int
    image: str | None  # an image with the router's entry point (None: the pinned wheel on the pinned Python image)
    service_type: Literal["clusterIP", "internalNlb"]
    port: int  # port of the client Service
    prefill_policy: str
    decode_policy: str
    # Clients must send this key (`serving.router.apiKey`, a Kubernetes Secret the router pod mounts).
    api_key: bool = False
    # Who may connect (NetworkPolicy; with the NLB also its source ranges); both None: any source.
    allowed_client_cidrs: tuple[str, ...] | None = None
    allowed_client_namespaces: tuple[str, ...] | None = None
    # The subnets an internal NLB sits in (its health checks come from there); set when it keeps client addresses.
    nlb_subnet_cidrs: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        """Clients are admitted from the allow-lists only."""
        return self.allowed_client_cidrs is not None or self.allowed_client_namespaces is not None

    @property
    def nlb_keeps_client_ip(self) -> bool:
        """An internal NLB with client CIDRs: it keeps client addresses, so the router's policy can check them."""
        return self.service_type == "internalNlb" and bool(self.allowed_client_cidrs)


@dataclass(frozen=True)
class ModelCacheSpec:
    kind: Literal["nvme", "pvc"]
    host_path: str
    pvc_size_gb: int
    storage_class: str | None


@dataclass(frozen=True)
class ServingSpec:
    name: str  # deployment name: prefix of every object
    namespace: str
    mode: Literal["disaggregated", "aggregated"]
    model: ModelSpec
    engine: EngineSpec
    router: RouterSpec
    roles: dict[str, RoleSpec]
    model_cache: ModelCacheSpec
    kv_transfer: bool  # KV moves between pods (disaggregated mode)
    kv_connector: str
    kv_backend: str  # NIXL backend (LIBFABRIC | UCX), `none` without KV transfer
    kv_side_channel_port: int
    workload_api: Literal["lws", "grove"]
    keda: bool
    monitoring: bool
    grove_topology_aware: bool
    hf_token: bool  # a Hugging Face token Secret is created and mounted

    def role(self, name: str) -> RoleSpec:
        return self.roles[name]
