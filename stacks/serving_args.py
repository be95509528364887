"""The serving layer's args: the typed config and the plan, narrowed to the `ServingSpec` its builders read."""

from __future__ import annotations

from components.builders.network import subnet_layout
from components.builders.scheduling import gpu_pool_taints
from components.builders.serving.spec import EngineSpec, ModelCacheSpec, ModelSpec, RoleSpec, RouterSpec, ServingSpec, TrtllmRoleSpec
from facts.conventions import ROLES
from stacks.config.stack import StackConfig
from stacks.plan import autoscaling_enabled, kv_backend, kv_transfer, pool_zones, role_efa, role_plan


def serving_zones(cfg: StackConfig, role: str) -> list[str]:
    """Zones a role's pods may use: the zones every prefill and decode pool shares, so KV transfer stays inside one
    AZ. EFA pools always share their single zone (validation); non-EFA pools in disjoint zones are allowed (KV then
    crosses AZs over TCP), and each role then keeps to its own pools' zones."""
    per_pool = [set(pool_zones(cfg, p)) for r in ROLES for p in cfg.pools_for(r)]
    common = set.intersection(*per_pool) if per_pool else set()
    return sorted(common or {z for p in cfg.pools_for(role) for z in pool_zones(cfg, p)})


def nlb_subnet_cidrs(cfg: StackConfig) -> tuple[str, ...]:
    """The private subnets of the stack's VPC, where the Load Balancer Controller puts an internal NLB (the subnets
    tagged kubernetes.io/role/internal-elb, components/builders/network.py subnet_tags): the NLB's health checks
    come from its addresses there. Only when the NLB keeps client addresses (internalNlb with allowedClientCidrs;
    validation refuses that in an existing VPC, whose subnet CIDRs the stack does not know)."""
    r, net = cfg.serving.router, cfg.network
    if r.service_type != "internalNlb" or not r.allowed_client_cidrs or net.existing_vpc_id:
        return ()
    layout = subnet_layout(net.vpc_cidr, cfg.availability_zones, net.private_subnet_prefix_length, net.public_subnet_prefix_length)
    return tuple(layout.private.values())


# Router policies when serving.router.prefillPolicy / decodePolicy are unset, per engine: vllm-router's
# (docs/cli_reference.md) and the TensorRT-LLM orchestrator's router types (tensorrt_llm/serve/router.py; round_robin is
# its own default, llmapi/disagg_utils.py extract_router_config).
DEFAULT_POLICIES = {"vllm": ("cache_aware", "power_of_two"), "tensorrt-llm": ("round_robin", "round_robin")}


def trtllm_role_spec(cfg: StackConfig, role: str) -> TrtllmRoleSpec | None:
    """The role's TensorRT-LLM options with the role defaults filled in; None for other engines."""
    if cfg.serving.engine.kind != "tensorrt-llm":
        return None
    t = cfg.serving.role(role).tensorrt_llm
    generation = role == "decode"
    return TrtllmRoleSpec(
        max_batch_size=t.max_batch_size,
        max_num_tokens=t.max_num_tokens,
        kv_cache_free_gpu_memory_fraction=t.kv_cache_free_gpu_memory_fraction,
        cuda_graphs=t.cuda_graphs if t.cuda_graphs is not None else generation,
        overlap_scheduler=t.overlap_scheduler if t.overlap_scheduler is not None else generation,
        kv_transfer_buffer_tokens=t.kv_transfer_buffer_tokens or cfg.serving.model.max_model_len,
    )


def role_spec(cfg: StackConfig, role: str) -> RoleSpec:
    rp = role_plan(cfg, role)
    rc = cfg.serving.role(role)
    return RoleSpec(
        role=role,
        replicas=rp.replicas,
        max_replicas=rp.max_replicas,
        tensor_parallel=rp.tensor_parallel,
        pipeline_parallel=rp.pipeline_parallel,
        data_parallel=rp.data_parallel,
        expert_parallel=rp.expert_parallel,
        nodes_per_replica=rp.nodes_per_replica,
        gpus_per_pod=rp.gpus_per_pod,
        efa_per_pod=rp.efa_per_pod,
        instance_type=rp.instance_type,
        efa=role_efa(cfg, role),
        zones=tuple(serving_zones(cfg, role)),
        taints=tuple(t for p in cfg.pools_for(role) for t in gpu_pool_taints(p)),
        extra_args=tuple(rc.extra_args),
        autoscaling=autoscaling_enabled(cfg, role),
        min_replicas=rc.autoscaling.min_replicas,
        scaling_metric=rc.autoscaling.metric,
        scaling_target=rc.autoscaling.target,
        tensorrt_llm=trtllm_role_spec(cfg, role),
    )


def serving_spec(cfg: StackConfig) -> ServingSpec:
    """What the serving layer builds from. Call only on a validated config (like `stacks.plan.plan`)."""
    s, pf = cfg.serving, cfg.platform
    e, r, mc = s.engine, s.router, s.model_cache
    return ServingSpec(
        name=cfg.name,
        namespace=cfg.namespace,
        mode=s.mode,
        model=ModelSpec(
            id=s.model.id,
            served_name=s.model.served_name or s.model.id,
            parameters_billions=s.model.parameters_billions,
            max_model_len=s.model.max_model_len,
            revision_inputs=s.model.model_dump(mode="json"),
        ),
        engine=EngineSpec(
            kind=e.kind,
            image=e.image,
            efa_image=e.efa_image,
            port=e.port,
            master_port=e.master_port,
            data_parallel_rpc_port=e.data_parallel_rpc_port,
            gpu_memory_utilization=e.gpu_memory_utilization,
            prefix_caching=e.prefix_caching,
            read_only_root_filesystem=e.read_only_root_filesystem,
            extra_args=tuple(e.extra_args),
        ),
        router=RouterSpec(
            kind=r.kind,
            replicas=r.replicas,
            image=r.image,
            service_type=r.service_type,
            port=r.port,
            prefill_policy=r.prefill_policy or DEFAULT_POLICIES[e.kind][0],
            decode_policy=r.decode_policy or DEFAULT_POLICIES[e.kind][1],
            api_key=r.api_key is not None,
            allowed_client_cidrs=None if r.allowed_client_cidrs is None else tuple(r.allowed_client_cidrs),
            allowed_client_namespaces=None if r.allowed_client_namespaces is None else tuple(r.allowed_client_namespaces),
            nlb_subnet_cidrs=nlb_subnet_cidrs(cfg),
        ),
        roles={role: role_spec(cfg, role) for role in ROLES},
        model_cache=ModelCacheSpec(kind=mc.kind, host_path=mc.host_path, pvc_size_gb=mc.pvc_size_gb, storage_class=mc.storage_class),
        kv_transfer=kv_transfer(cfg),
        kv_connector=s.kv_transfer.connector,
        kv_backend=kv_backend(cfg),
        kv_side_channel_port=s.kv_transfer.side_channel_port,
        workload_api=pf.workload_api,
        keda=pf.keda.enabled,
        monitoring=pf.monitoring.enabled,
        grove_topology_aware=pf.grove.topology_aware_scheduling,
        hf_token=cfg.hf_token is not None,
    )
