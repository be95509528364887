"""Checks of `serving.engine.kind: tensorrt-llm` and of `serving.engine.frontend`, all reported at once.

Called from one line of stacks/validation.py; each check names the `disagg:` key, the bad value and the fix, and says
which TensorRT-LLM (or Triton) source forces it.
"""

from __future__ import annotations

from stacks.config.base import Issue, key_path
from stacks.config.stack import StackConfig
from stacks.plan import pool_efa, role_efa, role_plan
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


def check_tensorrt_llm(cfg: StackConfig, add) -> None:
    s = cfg.serving
    e = s.engine
    if e.frontend == "triton":
        add(
            Issue(
                key_path("serving", "engine", "frontend"),
                "triton",
                f"Triton Inference Server cannot front disaggregated {e.kind} serving at the pinned releases: {TRITON_SOURCE}",
                "use frontend native (the default: vllm-router for vllm, the trtllm-serve disaggregated orchestrator for "
                "tensorrt-llm)",
            )
        )
    if e.kind != "tensorrt-llm":
        for role in ROLES:
            if not s.role(role).tensorrt_llm.is_default():
                add(
                    Issue(
                        key_path("serving", role, "tensorrtLlm"),
                        s.role(role).tensorrt_llm.model_dump(by_alias=True, exclude_none=True),
                        f"TensorRT-LLM options are set but serving.engine.kind is {e.kind}",
                        "set serving.engine.kind to tensorrt-llm, or remove serving." + role + ".tensorrtLlm",
                    )
                )
        return
    if s.mode != "disaggregated":
        add(
            Issue(
                key_path("serving", "mode"),
                s.mode,
                "the TensorRT-LLM engine is built here as context and generation servers behind its disaggregated "
                "orchestrator only",
                "use mode disaggregated with tensorrt-llm, or engine.kind vllm for aggregated serving",
            )
        )
    for key, value in (("prefillPolicy", s.router.prefill_policy), ("decodePolicy", s.router.decode_policy)):
        if value is not None and value not in TRTLLM_ROUTER_TYPES:
            add(
                Issue(
                    key_path("serving", "router", key),
                    value,
                    "is not a router type of the TensorRT-LLM orchestrator (tensorrt_llm/serve/router.py)",
                    f"use one of {', '.join(TRTLLM_ROUTER_TYPES)}, or remove it (default round_robin)",
                )
            )
    if s.model.served_name and s.model.served_name != s.model.id:
        add(
            Issue(
                key_path("serving", "model", "servedName"),
                s.model.served_name,
                "trtllm-serve 1.2.1 has no option to serve a model under another name (tensorrt_llm/commands/serve.py: "
                "no --served_model_name); clients send the model id",
                "remove servedName with tensorrt-llm",
            )
        )
    efa_pools = [p.name for p in cfg.gpu_pools if p.role in ROLES and pool_efa(p)]
    if efa_pools and not e.efa_image:
        add(
            Issue(
                key_path("serving", "engine", "efaImage"),
                None,
                f"pools {efa_pools} have EFA, and their engine pods need an image with the EFA user space (libfabric, "
                "aws-ofi-nccl, hwloc): the TensorRT-LLM release image has no libfabric, so NIXL's LIBFABRIC plugin "
                "cannot load (TensorRT-LLM docker/common/install_nixl.sh builds it only against an EFA libfabric)",
                "build images/tensorrt-llm-efa (docs/serving.md) and set serving.engine.efaImage to it by digest, or "
                "set efa: false on those pools",
            )
        )
    for role in ROLES:
        rc = s.role(role)
        if rc.data_parallel > 1:
            add(
                Issue(
                    key_path("serving", role, "dataParallel"),
                    rc.data_parallel,
                    "data-parallel ranks are a vLLM layout; a TensorRT-LLM replica is TP x PP GPUs",
                    f"set serving.{role}.dataParallel to 1 and shard experts with expertParallel (--ep_size) over the "
                    "tensor-parallel GPUs, or run more replicas",
                )
            )
        if role_plan(cfg, role).multi_node and not role_efa(cfg, role):
            add(
                Issue(
                    key_path("serving", role, "tensorParallel"),
                    rc.tensor_parallel,
                    f"a {role} replica spans nodes, which TensorRT-LLM runs as one MPI world started with kubectl exec "
                    "and NCCL over aws-ofi-nccl: both come from images/tensorrt-llm-efa on EFA pools, and without EFA "
                    "the tensor-parallel traffic between nodes would run over TCP sockets",
                    f"put the {role} pools on EFA instance types, or fit the replica on one node",
                )
            )
