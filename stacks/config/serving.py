"""Config of the serving workloads: the model, the engine, prefill, decode, router and KV transfer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, model_validator

from stacks.config.aws import Cidr
from stacks.config.base import DnsLabel, Model

WeightDtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]

BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}


class ModelConfig(Model):
    id: str = Field(description="Hugging Face model id, e.g. `nvidia/Llama-3.3-70B-Instruct-FP8`.")
    served_name: str | None = Field(None, description="Name clients send in `model`. Default: the model id.")
    parameters_billions: PositiveFloat | None = Field(
        None,
        description=(
            "Parameter count in billions (for the memory check and sizing). Default: the count of `id` in the sizing "
            "model catalog (`python -m tooling.sizing models`); required for a model the catalog does not list."
        ),
    )
    weight_dtype: WeightDtype = Field(description="Dtype of the weights as loaded: fp32, bf16, fp16, fp8, int8, int4 or fp4.")
    max_model_len: PositiveInt | None = Field(None, description="Maximum context length passed to the engine. Default: the model's own.")

    @model_validator(mode="before")
    @classmethod
    def _catalog_parameters(cls, data):
        # The one place an omitted parameter count is resolved, so every reader sees a number. The catalog module
        # is pure data (no planner, no third-party imports): safe on the Pulumi program's path. An id the catalog
        # does not know leaves it unset, which the rule serving.model-parameters-known reports.
        if not isinstance(data, dict) or data.get("parametersBillions", data.get("parameters_billions")) is not None:
            return data
        model_id = data.get("id")
        if not isinstance(model_id, str):
            return data  # the id's own error is reported
        from facts.models import lookup

        arch = lookup(model_id)
        if arch is None:
            return data
        return {**data, "parametersBillions": round(arch.params_billions, 2)}


class EngineConfig(Model):
    kind: Literal["vllm", "tensorrt-llm"] = Field(
        "vllm",
        description=(
            "Inference engine: `vllm` (prefill and decode `vllm serve` with the NixlConnector, vllm-router in front) or "
            "`tensorrt-llm` (prefill as TensorRT-LLM context servers and decode as generation servers, `trtllm-serve` "
            "with the PyTorch backend, its disaggregated orchestrator in front; docs/serving.md). Default vllm."
        ),
    )
    frontend: Literal["native", "triton"] = Field(
        "native",
        description=(
            "The serving frontend in front of the engines: `native` (default: vllm-router for vllm, the "
            "`trtllm-serve disaggregated` orchestrator for tensorrt-llm) or `triton` (Triton Inference Server with the "
            "TensorRT-LLM backend), which validation refuses with the reason: at the pinned releases Triton's "
            "disaggregated serving runs only the C++ TensorRT-engine backend, not the PyTorch backend."
        ),
    )
    image: str | None = Field(
        None,
        description=(
            "Engine image of the pods on pools without EFA. Default: the engine's pin of the versions table "
            "(`vllm`: vllm/vllm-openai; `tensorrt-llm`: nvcr.io/nvidia/tensorrt-llm/release), neither of which has "
            "the EFA user space."
        ),
    )
    efa_image: str | None = Field(
        None,
        description=(
            "Engine image of the pods on EFA pools: the pinned engine image plus the AWS EFA user space "
            "(libfabric, rdma-core, aws-ofi-nccl, hwloc), built from images/vllm-efa (vllm) or "
            "images/tensorrt-llm-efa (tensorrt-llm). Required when a prefill or decode pool has EFA; pin it by "
            "digest. No default: no public image carries the pinned engine with the EFA user space (docs/serving.md)."
        ),
    )
    efa_userspace: str | None = Field(
        None,
        description=(
            "Removed. EFA pods always run `efaImage` (the EKS AL2023 NVIDIA AMI installs EFA with --minimal: no "
            "libfabric to mount from the host). Any value is refused with the fix."
        ),
    )
    extra_args: list[str] = Field(default_factory=list, description="Extra engine arguments appended to both roles.")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="Fraction of GPU memory the engine may use. Default 0.9.")
    prefix_caching: bool = Field(True, description="Turn on prefix caching. Default true.")
    port: int = Field(8000, ge=1024, le=65535, description="Engine HTTP port. Default 8000.")
    master_port: int = Field(
        29501,
        ge=1024,
        le=65535,
        description="torch.distributed port on the leader of a multi-node replica (vLLM `--master-port`). Default 29501.",
    )
    data_parallel_rpc_port: int = Field(
        29550,
        ge=1024,
        le=65535,
        description="Data-parallel RPC port on the leader of a multi-node DP replica (vLLM `--data-parallel-rpc-port`). Default 29550.",
    )
    read_only_root_filesystem: bool = Field(
        True,
        description=(
            "Run the engine container with a read-only root file system; $HOME and /tmp are writable emptyDirs "
            "(vLLM, torch.compile, Triton and FlashInfer caches). Default true; turn off only if an engine version "
            "writes elsewhere."
        ),
    )


class AutoscalingConfig(Model):
    enabled: bool | None = Field(
        None,
        description=(
            "Scale this role on an engine metric through KEDA. Default: on with `workloadApi: lws`, off with `grove` "
            "(a Grove PodClique exposes no scale selector to KEDA; turning it on there is refused)."
        ),
    )
    min_replicas: PositiveInt | None = Field(None, description="Lower bound. Default: the role's `replicas`.")
    max_replicas: PositiveInt | None = Field(None, description="Upper bound. Default: the role's `replicas` (the GPU pools must fit it).")
    metric: str | None = Field(
        None,
        description="Prometheus metric per replica. Default: `vllm:num_requests_waiting` for prefill, `vllm:kv_cache_usage_perc` for decode.",
    )
    target: PositiveFloat | None = Field(None, description="Target value per replica. Default: 4 waiting requests (prefill), 0.8 KV-cache usage (decode).")


class TensorrtLlmRoleConfig(Model):
    """The LLM API options of one TensorRT-LLM role, rendered into the YAML its `trtllm-serve` reads
    (`--extra_llm_api_options`); each key is checked against the release's own option list."""

    max_batch_size: PositiveInt | None = Field(
        None, description="Most requests the engine schedules at once (`--max_batch_size`). Default: TensorRT-LLM's (2048)."
    )
    max_num_tokens: PositiveInt | None = Field(
        None, description="Most batched tokens per iteration (`--max_num_tokens`). Default: TensorRT-LLM's (8192)."
    )
    kv_cache_free_gpu_memory_fraction: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description=(
            "Share of the GPU memory left free after the weights that the KV cache takes "
            "(`kv_cache_config.free_gpu_memory_fraction`). Default: TensorRT-LLM's (0.9)."
        ),
    )
    cuda_graphs: bool | None = Field(
        None,
        description=(
            "Capture CUDA graphs of generation steps up to maxBatchSize, padded (`cuda_graph_config`). Default: on "
            "for decode (generation servers), off for prefill (context servers run no generation steps)."
        ),
    )
    overlap_scheduler: bool | None = Field(
        None,
        description=(
            "Overlap the host scheduling of the next step with the GPU work of this one (`disable_overlap_scheduler` "
            "false). Default: on for decode, off for prefill: TensorRT-LLM does not support it on disaggregated "
            "context servers (examples/disaggregated/README.md)."
        ),
    )
    kv_transfer_buffer_tokens: PositiveInt | None = Field(
        None,
        description=(
            "Tokens of the preallocated KV transfer buffer (`cache_transceiver_config.max_tokens_in_buffer`; best at "
            "least the longest prompt). Default: serving.model.maxModelLen when set, else TensorRT-LLM's."
        ),
    )

    def is_default(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class RoleConfig(Model):
    tensor_parallel: PositiveInt = Field(1, description="Tensor-parallel size (GPUs a layer is split over).")
    pipeline_parallel: PositiveInt = Field(
        1,
        description=(
            "Pipeline-parallel size (stages). TP x PP above a node's GPUs spans whole nodes. PP > 1 only with "
            "`serving.mode: aggregated`: vLLM's NixlConnector cannot move KV between pipeline stages."
        ),
    )
    data_parallel: PositiveInt = Field(
        1,
        description=(
            "Data-parallel ranks per replica (vLLM `--data-parallel-size`), each TP x PP GPUs; a replica of "
            "DP x TP x PP GPUs above a node spans whole nodes, one pod per node. Default 1."
        ),
    )
    expert_parallel: bool = Field(
        False,
        description=(
            "Shard the MoE experts over all DP x TP GPUs of the replica (vLLM `--enable-expert-parallel`): wide "
            "expert parallelism for MoE models such as GLM-5 or DeepSeek-V3. Default false."
        ),
    )
    replicas: PositiveInt = Field(1, description="Number of engine replicas of this role.")
    efa_per_pod: PositiveInt | None = Field(
        None,
        description=(
            "EFA devices per pod. Default: the node's EFA interfaces shared evenly by the pods of a node (p5: 16 for "
            "a 4-GPU pod, 32 for a whole node; p4d: 2 for a 4-GPU pod)."
        ),
    )
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="Per-role scaling on an engine metric.")
    extra_args: list[str] = Field(default_factory=list, description="Extra engine arguments for this role only.")
    tensorrt_llm: TensorrtLlmRoleConfig = Field(
        default_factory=TensorrtLlmRoleConfig,
        description="LLM API options of this role when serving.engine.kind is tensorrt-llm (refused with vllm).",
    )

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel


class RouterConfig(Model):
    kind: Literal["vllm-router"] = Field("vllm-router", description="P/D-aware router: `vllm-router` (the only one this stack builds).")
    replicas: PositiveInt = Field(2, description="Router replicas on the system pool. Default 2.")
    image: str | None = Field(None, description="Router image. Default: the pin of the versions table.")
    service_type: Literal["clusterIP", "internalNlb"] = Field(
        "clusterIP", description="`clusterIP` (default) or `internalNlb` (an internal NLB through the AWS Load Balancer Controller)."
    )
    port: int = Field(8080, ge=1, le=65535, description="Port of the router Service. Default 8080.")
    prefill_policy: str | None = Field(
        None,
        description=(
            "Policy for picking a prefill pod. vllm-router: default cache_aware; tensorrt-llm orchestrator: "
            "round_robin (default), load_balancing or kv_cache_aware."
        ),
    )
    decode_policy: str | None = Field(
        None,
        description=(
            "Policy for picking a decode pod. vllm-router: default power_of_two; tensorrt-llm orchestrator: "
            "round_robin (default), load_balancing or kv_cache_aware."
        ),
    )
    api_key: SecretStr | None = Field(
        None,
        description=(
            "API key clients must send (`Authorization: Bearer <key>`) to the router. Set it only as a secret: "
            "`pulumi config set --secret --path disagg:serving.router.apiKey <key>`. The stack keeps it in a Kubernetes "
            "Secret and an auth gate in the router pod checks it (neither vllm-router nor TensorRT-LLM's orchestrator "
            "authenticates clients at its pinned version, docs/serving.md); health paths stay open for the probes. "
            "With engine.kind tensorrt-llm it is required when allowedClientCidrs or allowedClientNamespaces is set. "
            "Default: none (no key)."
        ),
    )
    allowed_client_cidrs: list[Cidr] | None = Field(
        None,
        description=(
            "IPv4 CIDR blocks the router accepts clients from (NetworkPolicy; with `internalNlb` also the NLB's "
            "source ranges, and the NLB keeps client addresses). Default: unset, with `allowedClientNamespaces` "
            "unset too any source is admitted."
        ),
    )
    allowed_client_namespaces: list[DnsLabel] | None = Field(
        None,
        description=(
            "Namespaces whose pods may call the router (NetworkPolicy), e.g. `[gateway]`; the serving namespace is not "
            "implied. Default: unset, with `allowedClientCidrs` unset too any source is admitted."
        ),
    )


class KvTransferConfig(Model):
    connector: Literal["NixlConnector"] = Field("NixlConnector", description="vLLM KV connector. NixlConnector.")
    backend: Literal["auto", "LIBFABRIC", "UCX"] = Field(
        "auto",
        description=(
            "NIXL backend: `auto` (LIBFABRIC when every prefill and decode pod gets EFA devices, UCX otherwise), "
            "`LIBFABRIC` or `UCX`. UCX over EFA falls back to TCP."
        ),
    )
    side_channel_port: int = Field(5600, ge=1024, le=65535, description="NIXL side-channel port. Default 5600.")


class ModelCacheConfig(Model):
    kind: Literal["nvme", "pvc"] = Field("nvme", description="`nvme` (hostPath on the node's instance-store RAID0, default) or `pvc`.")
    host_path: str = Field("/mnt/k8s-disks/0/model-cache", description="hostPath of the cache on the NVMe RAID.")
    pvc_size_gb: PositiveInt = Field(500, description="Size of the cache PVC when `kind` is `pvc`.")
    storage_class: str | None = Field(
        None,
        description=(
            "Storage class of the cache PVC when `kind` is `pvc`: one ReadWriteMany claim is shared by every engine "
            "pod, so use an RWX class (EFS or FSx for Lustre CSI), not EBS. Required with `pvc`."
        ),
    )


class ServingConfig(Model):
    namespace: DnsLabel | None = Field(None, description="Namespace of the workloads. Default: the deployment name.")
    mode: Literal["disaggregated", "aggregated"] = Field(
        "disaggregated",
        description=(
            "`disaggregated` (default): prefill pods compute the KV cache, decode pods pull it over NIXL and the "
            "router pairs them. `aggregated`: every replica of both roles serves whole requests (no KV transfer) "
            "behind the router; for layouts the KV connector cannot serve, such as pipeline parallelism."
        ),
    )
    model: ModelConfig = Field(description="The model served.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="The inference engine.")
    prefill: RoleConfig = Field(default_factory=RoleConfig, description="Prefill workers (compute-bound).")
    decode: RoleConfig = Field(default_factory=RoleConfig, description="Decode workers (memory-bandwidth-bound).")
    router: RouterConfig = Field(default_factory=RouterConfig, description="The P/D router in front.")
    kv_transfer: KvTransferConfig = Field(default_factory=KvTransferConfig, description="KV-cache transfer from prefill to decode.")
    model_cache: ModelCacheConfig = Field(default_factory=ModelCacheConfig, description="Where model weights are cached on the node.")

    def role(self, name: str) -> RoleConfig:
        return {"prefill": self.prefill, "decode": self.decode}[name]
