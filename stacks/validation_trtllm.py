"""Rules of `serving.engine.kind: tensorrt-llm` and of `serving.engine.frontend` (registered in stacks/rules.py).

Each rule names the `disagg:` key, the bad value and the fix, and says
which TensorRT-LLM (or Triton) source forces it.
"""

from __future__ import annotations

from stacks.config.base import Issue, key_path
from stacks.config.stack import StackConfig
from stacks.plan import pool_efa, role_efa, role_plan
from stacks.rules import rule
from facts.conventions import ROLES

# The orchestrator's router types (tensorrt_llm/serve/router.py create_router); components/builders/serving/trtllm.py
# renders them and a unit test holds the two lists equal.
TRTLLM_ROUTER_TYPES = ("round_robin", "load_balancing", "kv_cache_aware")

TRITON_SOURCE = (
    "TensorRT-LLM 1.2.1 triton_backend/all_models/disaggregated_serving/README.md, Known Issues: \"Only C++ version of "
    "the backend is supported right now\"; its BLS orchestrator runs the context and generation TensorRT engines as "
    "models of one Triton server and one MPI world (launch_triton_server.py --world_size = context TP x PP + "
    "generation TP x PP + 1, participant_ids), not the PyTorch backend's context and generation servers in separate pods"
)


def _trtllm(cfg: StackConfig) -> bool:
    return cfg.serving.engine.kind == "tensorrt-llm"


@rule("serving.frontend-native", "serving.engine.frontend")
def frontend_native(cfg: StackConfig):
    """The frontend is the engine's own (Triton cannot front disaggregated serving at the pinned releases)."""
    e = cfg.serving.engine
    if e.frontend == "triton":
        yield Issue(
            key_path("serving", "engine", "frontend"),
            "triton",
            f"Triton Inference Server cannot front disaggregated {e.kind} serving at the pinned releases: {TRITON_SOURCE}",
            "use frontend native (the default: vllm-router for vllm, the trtllm-serve disaggregated orchestrator for "
            "tensorrt-llm)",
        )


@rule("serving.trtllm-options-need-trtllm", "serving.<role>.tensorrtLlm", "serving.engine.kind")
def trtllm_options_need_trtllm(cfg: StackConfig):
    """TensorRT-LLM options are set only with engine.kind tensorrt-llm."""
    s = cfg.serving
    if _trtllm(cfg):
        return
    for role in ROLES:
        if not s.role(role).tensorrt_llm.is_default():
            yield Issue(
                key_path("serving", role, "tensorrtLlm"),
                s.role(role).tensorrt_llm.model_dump(by_alias=True, exclude_none=True),
                f"TensorRT-LLM options are set but serving.engine.kind is {s.engine.kind}",
                "set serving.engine.kind to tensorrt-llm, or remove serving." + role + ".tensorrtLlm",
            )


@rule("serving.trtllm-disaggregated-only", "serving.mode", "serving.engine.kind")
def trtllm_disaggregated_only(cfg: StackConfig):
    """TensorRT-LLM serves disaggregated (context and generation servers behind its orchestrator)."""
    s = cfg.serving
    if _trtllm(cfg) and s.mode != "disaggregated":
        yield Issue(
            key_path("serving", "mode"),
            s.mode,
            "the TensorRT-LLM engine is built here as context and generation servers behind its disaggregated "
            "orchestrator only",
            "use mode disaggregated with tensorrt-llm, or engine.kind vllm for aggregated serving",
        )


@rule("serving.trtllm-router-policies", "serving.router.prefillPolicy", "serving.router.decodePolicy")
def trtllm_router_policies(cfg: StackConfig):
    """With tensorrt-llm the router policies are router types of its orchestrator."""
    if not _trtllm(cfg):
        return
    r = cfg.serving.router
    for key, value in (("prefillPolicy", r.prefill_policy), ("decodePolicy", r.decode_policy)):
        if value is not None and value not in TRTLLM_ROUTER_TYPES:
            yield Issue(
                key_path("serving", "router", key),
                value,
                "is not a router type of the TensorRT-LLM orchestrator (tensorrt_llm/serve/router.py)",
                f"use one of {', '.join(TRTLLM_ROUTER_TYPES)}, or remove it (default round_robin)",
            )


@rule("serving.trtllm-no-served-name", "serving.model.servedName")
def trtllm_no_served_name(cfg: StackConfig):
    """trtllm-serve serves the model under its id."""
    m = cfg.serving.model
    if _trtllm(cfg) and m.served_name and m.served_name != m.id:
        yield Issue(
            key_path("serving", "model", "servedName"),
            m.served_name,
            "trtllm-serve 1.2.1 has no option to serve a model under another name (tensorrt_llm/commands/serve.py: "
            "no --served_model_name); clients send the model id",
            "remove servedName with tensorrt-llm",
        )


@rule("serving.trtllm-efa-image", "serving.engine.efaImage", "gpuPools[].efa")
def trtllm_efa_image(cfg: StackConfig):
    """TensorRT-LLM pods on EFA pools run an image with the EFA user space."""
    e = cfg.serving.engine
    efa_pools = [p.name for p in cfg.gpu_pools if p.role in ROLES and pool_efa(p)]
    if _trtllm(cfg) and efa_pools and not e.efa_image:
        yield Issue(
            key_path("serving", "engine", "efaImage"),
            None,
            f"pools {efa_pools} have EFA, and their engine pods need an image with the EFA user space (libfabric, "
            "aws-ofi-nccl, hwloc): the TensorRT-LLM release image has no libfabric, so NIXL's LIBFABRIC plugin "
            "cannot load (TensorRT-LLM docker/common/install_nixl.sh builds it only against an EFA libfabric)",
            "build images/tensorrt-llm-efa (docs/serving.md) and set serving.engine.efaImage to it by digest, or "
            "set efa: false on those pools",
        )


@rule("serving.trtllm-no-data-parallel", "serving.<role>.dataParallel", scope="role")
def trtllm_no_data_parallel(cfg: StackConfig, role: str):
    """A TensorRT-LLM replica is TP x PP GPUs, without vLLM's data-parallel ranks."""
    rc = cfg.serving.role(role)
    if _trtllm(cfg) and rc.data_parallel > 1:
        yield Issue(
            key_path("serving", role, "dataParallel"),
            rc.data_parallel,
            "data-parallel ranks are a vLLM layout; a TensorRT-LLM replica is TP x PP GPUs",
            f"set serving.{role}.dataParallel to 1 and shard experts with expertParallel (--ep_size) over the "
            "tensor-parallel GPUs, or run more replicas",
        )


@rule("serving.trtllm-multinode-needs-efa", "serving.<role>.tensorParallel", "gpuPools[].efa", scope="role")
def trtllm_multinode_needs_efa(cfg: StackConfig, role: str):
    """A TensorRT-LLM replica that spans nodes runs on EFA pools (its MPI world and NCCL need the EFA image)."""
    if _trtllm(cfg) and role_plan(cfg, role).multi_node and not role_efa(cfg, role):
        yield Issue(
            key_path("serving", role, "tensorParallel"),
            cfg.serving.role(role).tensor_parallel,
            f"a {role} replica spans nodes, which TensorRT-LLM runs as one MPI world started with kubectl exec "
            "and NCCL over aws-ofi-nccl: both come from images/tensorrt-llm-efa on EFA pools, and without EFA "
            "the tensor-parallel traffic between nodes would run over TCP sockets",
            f"put the {role} pools on EFA instance types, or fit the replica on one node",
        )



@rule("serving.trtllm-restricted-router-needs-api-key", "serving.router.allowedClientCidrs", "serving.router.allowedClientNamespaces", "serving.router.apiKey", "serving.engine.kind")
def trtllm_restricted_router_needs_api_key(cfg: StackConfig):
    """A TensorRT-LLM orchestrator whose clients are narrowed has the API-key gate in front of it.

    The orchestrator serves /health and its Prometheus metrics on its API listener (serve/openai_disagg_server.py
    register_routes), so it has no separate metrics port; the router NetworkPolicy admits Prometheus and the internal
    NLB's health checks on the metrics port only (components/builders/serving/policies.py router_ingress). Narrowed to
    the client CIDRs and namespaces, the API port would then refuse both: no metrics, and an NLB whose targets all fail
    their health checks. With `serving.router.apiKey` the gate gives the metrics their own port (gate.py).
    """
    r = cfg.serving.router
    if not _trtllm(cfg) or r.api_key is not None:
        return
    for key, value in (("allowedClientCidrs", r.allowed_client_cidrs), ("allowedClientNamespaces", r.allowed_client_namespaces)):
        if value:
            yield Issue(
                key_path("serving", "router", key),
                list(value),
                "narrows the clients of TensorRT-LLM's orchestrator, which serves its metrics and health on the API port "
                "itself: Prometheus and the internal NLB's health checks would be refused there",
                "also set serving.router.apiKey (pulumi config set --secret --path 'disagg:serving.router.apiKey' <key>): "
                "its gate serves the metrics on their own port; or remove " + key,
            )
