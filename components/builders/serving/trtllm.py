"""TensorRT-LLM: the only module that knows `trtllm-serve`'s command line, its LLM API options and its orchestrator.

Disaggregated serving with TensorRT-LLM 1.2.1 and the PyTorch backend (docs/source/features/disagg-serving.md,
examples/disaggregated/README.md): prefill runs as *context servers* and decode as *generation servers*, each a
`trtllm-serve <model> --server_role context|generation` with its own parallelism; the KV cache moves from context to
generation through the cache transceiver (`cache_transceiver_config.backend: NIXL`, whose own backend is
`TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC|UCX`). In front runs the disaggregated orchestrator, `trtllm-serve
disaggregated -c <config>` (tensorrt_llm/commands/serve.py `disaggregated`), which sends each request to a context
server and then to a generation server.

Membership follows replica changes: every server registers itself in a discovery store and heartbeats
(tensorrt_llm/serve/disagg_auto_scaling.py `DisaggClusterWorker`: re-registers when a heartbeat fails), and every
orchestrator replica watches the same store (`disagg_cluster` in its config, llmapi/disagg_utils.py
`extract_disagg_cluster_config`). The store is etcd (`etcd://`, serve/cluster_storage.py `Etcd3ClusterStorage`): the
`http://` store lives inside one orchestrator process, which several replicas cannot share. A static
`context_servers.urls` list would be read once at start and never see KEDA's replicas. The cluster name is the engine
revision, so an orchestrator only ever pairs servers of its own revision, as the vLLM router does with its selectors.

The LLM API options of each role are typed config (`serving.<role>.tensorrtLlm`) rendered as a ConfigMap that
`trtllm-serve --extra_llm_api_options` reads; tests/tools/trtllm_options.json (derived from the release's source by
tests/tools/trtllm_options.py) holds every flag and key these functions may render.

Multi-node replicas run as one MPI world, TensorRT-LLM's multi-node launch (examples/llm-api/llm_mgmn_trtllm_serve.sh:
`trtllm-llmapi-launch trtllm-serve ...` under srun/mpirun; rank 0 serves HTTP, the other ranks join through MPI): the
leader pod runs `mpirun` over every pod of its LWS group / Grove scaling-group replica, with `kubectl exec` as OpenMPI's
rsh agent (the pattern of kubernetes-sigs/lws docs/examples/tensorrt-llm, `-mca plm_rsh_agent kubessh`), and the
worker pods wait to be joined. kubectl and aws-ofi-nccl come from the EFA image (images/tensorrt-llm-efa).
"""

from __future__ import annotations

import hashlib
import json

import yaml

from components.builders.serving import gate
from components.builders.serving.common import HTTP_PORT_NAME, checkov_skips, meta, namespace, role_selector, router_api_key_secret_name, router_selector, startup_minutes, workload_name
from components.builders.serving.engine import Group, HttpEngine, Part, RouterProcess, ScalingTrigger, engine_revision, register
from components.builders.serving.router import RUN_AS, container_security
from components.builders.serving.spec import PlatformFacts, ServingSpec
from facts.conventions import DEPLOYMENT_LABEL, POOL_LABEL, ROLE_LABEL, ROLES, ROUTER, SYSTEM_POOL
from facts.versions import pin

KIND = "tensorrt-llm"
# Where the model cache is mounted and the image's $HOME (the NGC release image runs as root).
CACHE_MOUNT = "/model-cache"
HOME = "/root"
OPTIONS_DIR = "/etc/disagg/trtllm"
OPTIONS_FILE = "llm-api-options.yaml"
ORCHESTRATOR_FILE = "orchestrator.yaml"
# `--server_role` values (serve.py: `ServerRole[server_role.upper()]`, llmapi/disagg_utils.py ServerRole).
SERVER_ROLE = {"prefill": "context", "decode": "generation"}

# The discovery store (etcd) and its client port.
DISCOVERY = "discovery"
ETCD_CLIENT_PORT = 2379
ETCD_UID = 65534

# The NIXL plugin directory of the TensorRT-LLM images (TensorRT-LLM docker/common/install_nixl.sh:
# PLUGIN_DIR="/opt/nvidia/nvda_nixl/lib/${ARCH_NAME}/plugins"; it builds libplugin_LIBFABRIC only against an EFA
# libfabric, which images/tensorrt-llm-efa provides).
NIXL_PLUGIN_GLOB = "/opt/nvidia/nvda_nixl/lib/*/plugins/libplugin_LIBFABRIC.so"
EFA_BIN = "/opt/amazon/efa/bin"
OFI_NCCL_LIB = "/opt/amazon/ofi-nccl/lib"
# OpenMPI's rsh agent of a multi-node group, written by the leader's wrapper into its writable /tmp.
KUBESSH = "/tmp/kubessh"
LEADER_DNS_WAIT_SECONDS = 600

# The lines the option checks recognise: the engine starts with exactly one of these.
EXEC_SINGLE = 'exec trtllm-serve "$@" --host "$POD_IP"'
EXEC_GROUP = (
    'exec mpirun --allow-run-as-root --mca plm_rsh_agent ' + KUBESSH + ' --host "$MPI_HOSTS" -np "$MPI_RANKS" '
    '--bind-to none trtllm-llmapi-launch trtllm-serve "$@" --host "$POD_IP"'
)

# Prometheus metrics of trtllm-serve 1.2.1, on /prometheus/metrics once `return_perf_metrics` is on
# (tensorrt_llm/metrics/collector.py MetricsCollector, "Adapted from vllm"; NVIDIA/TensorRT-LLM#5785 added the endpoint;
# the KV-cache and queue gauges came later, NVIDIA/TensorRT-LLM#11243 (2026-02) and #12545, in 1.3).
METRICS_PATH = "/prometheus/metrics"
HISTOGRAMS = (
    "trtllm_e2e_request_latency_seconds",
    "trtllm_time_to_first_token_seconds",
    "trtllm_time_per_output_token_seconds",
    "trtllm_request_queue_time_seconds",
)
# Mean over this window for a histogram trigger.
SCALING_WINDOW = "2m"

# The orchestrator's router types (tensorrt_llm/serve/router.py create_router).
ROUTER_TYPES = ("round_robin", "load_balancing", "kv_cache_aware")
ORCHESTRATOR_PORT = 8000
ORCHESTRATOR_REQUEST_TIMEOUT_SECONDS = 180
# trtllm-serve disaggregated imports the whole tensorrt_llm package (torch included): a router-sized 2Gi is too small.
ORCHESTRATOR_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}

IMAGE_SKIPS = (
    ("CKV_K8S_43", "images are pinned by tag in facts/versions.py; digests cannot be resolved in the offline render"),
    ("CKV_K8S_15", "IfNotPresent with a pinned tag: re-pulling on every start only adds registry round trips and rate-limit hits"),
)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def options_configmap_name(spec: ServingSpec, role: str) -> str:
    return f"{workload_name(spec, role)}-trtllm"


def discovery_name(spec: ServingSpec) -> str:
    return f"{spec.name}-{DISCOVERY}"


def launcher_name(spec: ServingSpec) -> str:
    return f"{spec.name}-launcher"


def discovery_uri(spec: ServingSpec) -> str:
    """`etcd://<host>:<port>` (serve/cluster_storage.py create_cluster_storage_client)."""
    return f"etcd://{discovery_name(spec)}.{namespace(spec)}.svc.cluster.local:{ETCD_CLIENT_PORT}"


def cluster_name(spec: ServingSpec) -> str:
    """The namespace of the servers' keys in the store (`/trtllm-disagg/<cluster_name>/workers`,
    serve/disagg_auto_scaling.py get_worker_key_prefix): deployment and engine revision."""
    return f"{spec.name}-{engine_revision(spec)}"


def cache_transceiver_config(spec: ServingSpec, role: str) -> dict:
    """llmapi/llm_args.py CacheTransceiverConfig. `backend` must be set: without it a server starts but brings up no
    transceiver and refuses disaggregated requests."""
    t = spec.role(role).tensorrt_llm
    out: dict = {"backend": "NIXL"}
    if t is not None and t.kv_transfer_buffer_tokens:
        out["max_tokens_in_buffer"] = t.kv_transfer_buffer_tokens
    return out


def _cuda_graphs(on: bool, max_batch_size: int | None) -> dict | None:
    """CudaGraphConfig: padded batches (round up to a captured size), captured up to the role's batch size;
    `None` (YAML null) turns CUDA graphs off."""
    if not on:
        return None
    return {"enable_padding": True, **({"max_batch_size": max_batch_size} if max_batch_size else {})}


def llm_api_options(spec: ServingSpec, role: str) -> dict:
    """The YAML of `--extra_llm_api_options` for one role: fields of llmapi/llm_args.py TorchLlmArgs (and its nested
    KvCacheConfig, CudaGraphConfig, CacheTransceiverConfig), plus `disagg_cluster`, which serve.py pops off the merged
    options before building the LLM (`llm_args.pop("disagg_cluster", None)`)."""
    t = spec.role(role).tensorrt_llm
    if t is None:
        raise ValueError(f"{role}: no TensorRT-LLM options in the spec (engine kind {spec.engine.kind})")
    kv: dict = {"enable_block_reuse": spec.engine.prefix_caching}
    if t.kv_cache_free_gpu_memory_fraction is not None:
        kv["free_gpu_memory_fraction"] = t.kv_cache_free_gpu_memory_fraction
    opts: dict = {
        "kv_cache_config": kv,
        "disable_overlap_scheduler": not t.overlap_scheduler,
        # `null` turns CUDA graphs off (TorchLlmArgs.cuda_graph_config: Optional[CudaGraphConfig]).
        "cuda_graph_config": _cuda_graphs(t.cuda_graphs, t.max_batch_size),
        "cache_transceiver_config": cache_transceiver_config(spec, role),
        # The per-request metrics the Prometheus endpoint exports (TTFT, TPOT, queue time).
        "return_perf_metrics": True,
        "disagg_cluster": {"cluster_uri": discovery_uri(spec), "cluster_name": cluster_name(spec)},
    }
    return opts


def serve_args(spec: ServingSpec, role: str) -> list[str]:
    """The argv after `trtllm-serve`, without `--host` (the wrapper appends the pod IP: a server registers the host
    it binds, serve/openai_server.py `DisaggClusterWorker(self.server_role, self.host, self.port, ...)`)."""
    rp = spec.role(role)
    t = rp.tensorrt_llm
    args = [
        spec.model.id,
        "--backend", "pytorch",
        "--port", str(spec.engine.port),
        "--tp_size", str(rp.tensor_parallel),
        "--pp_size", str(rp.pipeline_parallel),
    ]
    if rp.expert_parallel:
        args += ["--ep_size", str(rp.tensor_parallel * rp.data_parallel)]
    if t is not None and t.max_batch_size:
        args += ["--max_batch_size", str(t.max_batch_size)]
    if t is not None and t.max_num_tokens:
        args += ["--max_num_tokens", str(t.max_num_tokens)]
    if spec.model.max_model_len:
        args += ["--max_seq_len", str(spec.model.max_model_len)]
    if rp.multi_node:
        # The GPUs of one node: without it trtllm-serve takes torch.cuda.device_count() of rank 0's pod.
        args += ["--gpus_per_node", str(rp.gpus_per_pod)]
    args += [
        "--extra_llm_api_options", f"{OPTIONS_DIR}/{OPTIONS_FILE}",
        "--server_role", SERVER_ROLE[role],
    ]
    return args + list(spec.engine.extra_args) + list(rp.extra_args)


def kubessh_script() -> str:
    """OpenMPI's rsh agent: `kubessh <host> <command...>` runs the command in the `engine` container of the pod whose
    IP the host resolves to (the LWS and Grove hostnames are the pods' DNS names, not always their pod names)."""
    return "\n".join(
        [
            "#!/bin/sh",
            "set -eu",
            'host="$1"',
            "shift",
            "ip=\"$(getent hosts \"$host\" | awk '{print $1; exit}')\"",
            '[ -n "$ip" ] || { echo "kubessh: $host does not resolve" >&2; exit 1; }',
            "pod=\"$(kubectl get pods --field-selector \"status.podIP=$ip\" -o 'jsonpath={.items[0].metadata.name}')\"",
            '[ -n "$pod" ] || { echo "kubessh: no pod has IP $ip ($host)" >&2; exit 1; }',
            'exec kubectl exec -i "$pod" -c engine -- /bin/sh -c "$*"',
        ]
    )


def wrapper(spec: ServingSpec, role: str, part: Part, group: Group | None) -> str:
    """The bash script that proves the fabric, then execs the engine (single pod or MPI leader) or waits to be joined
    (MPI worker)."""
    rp = spec.role(role)
    lines = [
        "set -euo pipefail",
        'fail() { echo "disagg preflight failed: $*" >&2; exit 1; }',
    ]
    if rp.efa:
        lines += [
            "shopt -s nullglob",
            "efa_devices=(/dev/infiniband/uverbs*)",
            '[ "${#efa_devices[@]}" -gt 0 ] || fail "no EFA device in the container (/dev/infiniband/uverbs*): the pod '
            'got no vpc.amazonaws.com/efa devices; check the EFA device plugin on this node"',
            f'command -v fi_info >/dev/null || fail "fi_info is missing: this image has no EFA libfabric; set '
            f'serving.engine.efaImage to an image built from images/tensorrt-llm-efa (PATH={EFA_BIN})"',
            'fi_info -p efa -c FI_HMEM >/dev/null || fail "libfabric cannot open the EFA provider with FI_HMEM (GPU '
            'memory): check the EFA devices of the pod and the efa kernel module of the node"',
        ]
        if spec.kv_backend == "LIBFABRIC":
            # NIXL only warns and falls back when a backend plugin does not load; prove it loads before serving.
            lines += [
                f"plugins=({NIXL_PLUGIN_GLOB})",
                '[ "${#plugins[@]}" -gt 0 ] || fail "NIXL has no LIBFABRIC plugin under /opt/nvidia/nvda_nixl: KV '
                'transfer would not use EFA; use an image built from images/tensorrt-llm-efa"',
                "if ldd \"${plugins[0]}\" | grep 'not found'; then fail \"the NIXL LIBFABRIC plugin misses libraries "
                '(above): KV transfer would not use EFA"; fi',
            ]
    if part == "single":
        lines.append(EXEC_SINGLE)
        return "\n".join(lines) + "\n"
    if group is None:
        raise ValueError(f"{role}: a {part} pod needs its group's leader address and worker addresses")
    if rp.efa:
        lines += [
            f"compgen -G '{OFI_NCCL_LIB}/libnccl-net*.so' >/dev/null || fail \"aws-ofi-nccl is missing under "
            f'{OFI_NCCL_LIB}: NCCL between the nodes of this group would run over TCP sockets"',
        ]
    if part == "worker":
        lines += [
            f'echo "node {group.node_rank} of the group led by {group.leader_address}: waiting for its MPI ranks '
            '(the leader starts them with kubectl exec)"',
            # PID 1 ignores signals it has no handler for: trap TERM so the pod stops at once.
            "trap 'exit 0' TERM INT",
            "while true; do sleep 3600 & wait $!; done",
        ]
        return "\n".join(lines) + "\n"
    wait = LEADER_DNS_WAIT_SECONDS // 5
    hosts = [group.leader_address, *group.workers]
    lines += [
        'command -v mpirun >/dev/null || fail "mpirun is missing: the TensorRT-LLM release image ships HPC-X OpenMPI"',
        'command -v kubectl >/dev/null || fail "kubectl is missing: use an image built from images/tensorrt-llm-efa"',
        f"cat > {KUBESSH} <<'KUBESSH'\n{kubessh_script()}\nKUBESSH",
        f"chmod 0755 {KUBESSH}",
        "workers=(" + " ".join(f'"{w}"' for w in group.workers) + ")",
        'for w in "${workers[@]}"; do',
        f"  for _ in $(seq {wait}); do {KUBESSH} \"$w\" true >/dev/null 2>&1 && break; sleep 5; done",
        f'  {KUBESSH} "$w" true || fail "worker $w of this group cannot be reached with kubectl exec"',
        "done",
        'MPI_HOSTS="' + ",".join(f"{h}:{rp.gpus_per_pod}" for h in hosts) + '"',
        f'MPI_RANKS="{rp.gpus_per_pod * group.nodes}"',
        'echo "MPI world of $MPI_RANKS ranks on $MPI_HOSTS"',
        EXEC_GROUP,
    ]
    return "\n".join(lines) + "\n"


class TrtllmOrchestrator:
    """`trtllm-serve disaggregated`: the router role of the TensorRT-LLM engine."""

    kind = "trtllm-disaggregated"
    container_port = ORCHESTRATOR_PORT
    metrics_path = METRICS_PATH
    # It finds the servers in its discovery store, not through the Kubernetes API: no token, an empty Role.
    kubernetes_discovery = False

    def metrics_port(self, spec: ServingSpec) -> int:
        # The orchestrator serves Prometheus metrics on its HTTP listener (serve/openai_disagg_server.py
        # register_routes: `self.app.mount("/prometheus/metrics", ...)`). Behind the auth gate that listener is
        # inside the pod, and the gate's metrics-only listener serves them without the key (gate.py).
        return gate.METRICS_PORT if spec.router.api_key else ORCHESTRATOR_PORT

    def config(self, spec: ServingSpec) -> dict:
        """The `-c` file: llmapi/disagg_utils.py extract_disagg_cfg keys. With `disagg_cluster` the server lists come
        from the store, not from `context_servers.urls`; the routers come from the `router` of each section."""
        r = spec.router
        # With an API key the auth gate (gate.py) owns the pod's HTTP port and the orchestrator listens inside the pod.
        host, port = (gate.ROUTER_HOST, gate.ROUTER_PORT) if r.api_key else ("0.0.0.0", ORCHESTRATOR_PORT)
        return {
            "hostname": host,
            "port": port,
            "context_servers": {"router": {"type": r.prefill_policy}},
            "generation_servers": {"router": {"type": r.decode_policy}},
            "disagg_cluster": {
                "cluster_uri": discovery_uri(spec),
                "cluster_name": cluster_name(spec),
                # Ready (and /health 200) once one server of each role is registered (disagg_utils MinimalInstances).
                "minimal_instances": {"context_servers": 1, "generation_servers": 1},
            },
        }

    def args(self, spec: ServingSpec) -> list[str]:
        start = max(startup_minutes(spec, role) for role in ROLES) * 60
        return [
            "disaggregated",
            "-c", f"{OPTIONS_DIR}/{ORCHESTRATOR_FILE}",
            "-t", str(start),
            "-r", str(ORCHESTRATOR_REQUEST_TIMEOUT_SECONDS),
        ]

    def process(self, spec: ServingSpec) -> RouterProcess:
        http = {"port": HTTP_PORT_NAME, "path": "/health"}
        image = spec.router.image or spec.engine.image or pin("tensorrt-llm").image_ref
        container = {
            "image": image,
            "command": ["trtllm-serve"],
            "args": self.args(spec),
            "env": [
                {"name": "HOME", "value": "/tmp"},
                # The config map's content: a change rolls the orchestrator (a mounted ConfigMap alone would not).
                {"name": "DISAGG_CONFIG_SHA", "value": _hash(self.config(spec))},
            ],
            "ports": [{"name": HTTP_PORT_NAME, "containerPort": ORCHESTRATOR_PORT, "protocol": "TCP"}],
            "resources": ORCHESTRATOR_RESOURCES,
            "livenessProbe": {"tcpSocket": {"port": HTTP_PORT_NAME}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
            # /health answers 200 only once the minimal instances of both roles are registered, so a new
            # orchestrator takes traffic only when servers of its revision (its cluster name) serve.
            "readinessProbe": {"httpGet": http, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "trtllm-config", "mountPath": OPTIONS_DIR, "readOnly": True}],
        }
        volumes = [
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "trtllm-config", "configMap": {"name": options_configmap_name(spec, ROUTER)}},
        ]
        if not spec.router.api_key:
            return RouterProcess(container=container, volumes=volumes)
        # The auth gate (gate.py) in front: it takes the `http` port and a metrics-only `metrics` port; the
        # orchestrator serves on 127.0.0.1:gate.ROUTER_PORT (config), probed from inside its container.
        # The gate runs on the orchestrator image's own Python, which has aiohttp and so multidict (aiohttp's own
        # dependency), the gate's two imports: the orchestrator that image runs imports aiohttp itself
        # (tensorrt_llm/serve/openai_client.py `import aiohttp`, OpenAIHttpClient sends to the servers through an
        # aiohttp.ClientSession; openai_disagg_server.py, the `disaggregated` command's server, imports it too), at
        # every version of those files in the code index (v1.2.1 itself could not be fetched, see
        # tests/tools/trtllm_options.json). That Python is `python3`: the release image installs TensorRT-LLM with
        # Ubuntu's python3 (docker/common/install_base.sh: python3-pip, python3-dev, python-is-python3), and the EFA
        # image is built on it.
        python = ["python3"]
        container.pop("ports")
        container["livenessProbe"] = {**gate.local_tcp_probe(python), "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
        container["readinessProbe"] = {**gate.local_probe(python, "/health"), "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
        key_vol, key_mount = gate.key_volume(router_api_key_secret_name(spec))
        volumes.append(key_vol)
        sidecar = gate.gate_container(
            spec, image=image, python=python, listen_port=ORCHESTRATOR_PORT, env=[{"name": "HOME", "value": "/tmp"}],
            mounts=[{"name": "tmp", "mountPath": "/tmp"}, key_mount], security=container_security(),
            open_paths=("/health",), ready_path="/health", metrics=(gate.METRICS_PORT, (METRICS_PATH,)),
        )
        return RouterProcess(container=container, volumes=volumes, sidecars=[sidecar], fs_group=RUN_AS)


ORCHESTRATOR = TrtllmOrchestrator()


class TensorrtLlm(HttpEngine):
    pin_name = "tensorrt-llm"
    kind = KIND
    health_path = "/health"
    metrics_path = METRICS_PATH
    cache_mount = CACHE_MOUNT
    home = HOME
    router = ORCHESTRATOR

    def leader_ready_startup(self, spec: ServingSpec, role: str) -> bool:
        # The leader starts the ranks of its workers: they must run before it can be Ready.
        return False

    def default_scaling_metric(self, role: str) -> tuple[str, float]:
        # What 1.2.1 exports: context servers scale on their mean queue time (seconds a prompt waits to be
        # scheduled), generation servers on their mean time per output token (the decode batch's inter-token time).
        if role == "prefill":
            return "trtllm_request_queue_time_seconds", 1.0
        return "trtllm_time_per_output_token_seconds", 0.05

    def scaling_trigger(self, metric: str, selector: str) -> ScalingTrigger:
        if metric in HISTOGRAMS:
            # A mean over the role: already per role, so KEDA compares it as a Value, not per replica.
            w = SCALING_WINDOW
            q = f"sum(rate({metric}_sum{selector}[{w}])) / clamp_min(sum(rate({metric}_count{selector}[{w}])), 1)"
            return ScalingTrigger(q, "Value")
        return ScalingTrigger(f"sum({metric}{selector})")

    def revision_inputs(self, spec: ServingSpec) -> dict:
        return {
            "engine": KIND,
            "images": sorted({self.image(spec, r) for r in ROLES}),
            "model": spec.model.revision_inputs,
            "mode": spec.mode,
            "kv_backend": spec.kv_backend,
            "cache_transceiver": {r: cache_transceiver_config(spec, r) for r in ROLES},
            "extra_args": list(spec.engine.extra_args),
        }

    def process(self, spec: ServingSpec, role: str, part: Part, group: Group | None) -> dict:
        env = [
            {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
            {"name": "HOME", "value": HOME},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            # NIXL's own backend (docs/source/features/disagg-serving.md, "KV Cache Exchange"): LIBFABRIC on EFA, UCX
            # elsewhere.
            {"name": "TRTLLM_NIXL_KVCACHE_BACKEND", "value": spec.kv_backend},
            # The options' content: a change rolls the role (a mounted ConfigMap alone would not).
            {"name": "DISAGG_OPTIONS_SHA", "value": _hash(llm_api_options(spec, role))},
        ]
        ports: list[dict] = []
        if self.serves_http(part):
            ports.append({"name": HTTP_PORT_NAME, "containerPort": self.port(spec), "protocol": "TCP"})
        out = {
            "command": ["/bin/bash", "-c", wrapper(spec, role, part, group), "trtllm-serve"],
            "args": serve_args(spec, role) if part != "worker" else [],
            "env": env,
            "ports": ports,
            "volumes": [{"name": "trtllm-options", "configMap": {"name": options_configmap_name(spec, role)}}],
            "volumeMounts": [{"name": "trtllm-options", "mountPath": OPTIONS_DIR, "readOnly": True}],
        }
        if part == "leader":
            # kubectl exec into the group's other pods (OpenMPI's rsh agent): the launcher's namespaced Role.
            out["pod"] = {"serviceAccountName": launcher_name(spec), "automountServiceAccountToken": True}
        return out

    def probes(self, spec: ServingSpec, role: str) -> dict:
        http = {"path": self.health_path, "port": HTTP_PORT_NAME}
        period = 10
        return {
            "startupProbe": {"httpGet": http, "periodSeconds": period, "failureThreshold": startup_minutes(spec, role) * 60 // period, "timeoutSeconds": 5},
            "readinessProbe": {"httpGet": http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
            "livenessProbe": {"httpGet": http, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 10},
        }

    # ---- objects beside the workloads ------------------------------------------------------------------------
    def extra_objects(self, spec: ServingSpec, facts: PlatformFacts) -> list[dict]:
        out = [config_map(spec, r, {OPTIONS_FILE: _yaml(llm_api_options(spec, r))}) for r in ROLES]
        out.append(config_map(spec, ROUTER, {ORCHESTRATOR_FILE: _yaml(ORCHESTRATOR.config(spec))}))
        out += discovery_objects(spec)
        if any(spec.role(r).multi_node for r in ROLES):
            out += launcher_rbac(spec)
        return out


def _yaml(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


def config_map(spec: ServingSpec, component: str, data: dict[str, str]) -> dict:
    name = options_configmap_name(spec, component)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(spec, name, component), "data": data}


def discovery_selector(spec: ServingSpec) -> dict[str, str]:
    return {ROLE_LABEL: DISCOVERY, DEPLOYMENT_LABEL: spec.name}


def discovery_objects(spec: ServingSpec) -> list[dict]:
    """A single-member etcd on the system pool, its Service and the network policy that admits the servers and the
    orchestrators. Its data is soft state (registrations with a TTL, refreshed every heartbeat), so it lives in an
    emptyDir: after a restart every server re-registers on its next failed heartbeat (disagg_auto_scaling.py)."""
    name = discovery_name(spec)
    sel = discovery_selector(spec)
    port = {"name": "client", "containerPort": ETCD_CLIENT_PORT, "protocol": "TCP"}
    probe = {"httpGet": {"path": "/health", "port": "client"}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
    container = {
        "name": "etcd",
        "image": pin("etcd").image_ref,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/local/bin/etcd"],
        "args": [
            "--name", "etcd",
            "--data-dir", "/var/lib/etcd",
            "--listen-client-urls", f"http://0.0.0.0:{ETCD_CLIENT_PORT}",
            "--advertise-client-urls", f"http://{name}.{namespace(spec)}.svc.cluster.local:{ETCD_CLIENT_PORT}",
            "--listen-peer-urls", "http://127.0.0.1:2380",
        ],
        "ports": [port],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 30},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": ETCD_UID,
            "runAsGroup": ETCD_UID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/etcd"}],
    }
    template = {
        "metadata": {"labels": {**meta(spec, name, DISCOVERY)["labels"], **sel}, "annotations": checkov_skips(*IMAGE_SKIPS)},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "nodeSelector": {POOL_LABEL: SYSTEM_POOL},
            "securityContext": {"runAsNonRoot": True, "runAsUser": ETCD_UID, "fsGroup": ETCD_UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(spec, name, DISCOVERY, annotations=checkov_skips(*IMAGE_SKIPS)),
        # One member: two would need a quorum of persistent peers for soft state the servers rebuild in seconds.
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": sel}, "template": template},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(spec, name, DISCOVERY),
        "spec": {"type": "ClusterIP", "selector": sel, "ports": [{"name": "client", "port": ETCD_CLIENT_PORT, "targetPort": "client", "protocol": "TCP"}]},
    }
    peers = [{"podSelector": {"matchLabels": role_selector(spec, r)}} for r in ROLES] + [{"podSelector": {"matchLabels": router_selector(spec)}}]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(spec, name, DISCOVERY),
        "spec": {
            "podSelector": {"matchLabels": sel},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": "client"}]}],
        },
    }
    return [deployment, service, policy]


def launcher_rbac(spec: ServingSpec) -> list[dict]:
    """The service account of multi-node leaders: find a pod by IP and exec into it (kubessh_script)."""
    name = launcher_name(spec)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(spec, name, "serving"), "automountServiceAccountToken": False}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(spec, name, "serving"),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(spec, name, "serving"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace(spec)}],
    }
    return [sa, role, binding]


def command_lines(spec: ServingSpec) -> dict[str, list[str]]:
    """Every `trtllm-serve` argv the stack renders, for the option checks: the roles' and the orchestrator's."""
    out = {r: ["trtllm-serve", *serve_args(spec, r), "--host", "$POD_IP"] for r in ROLES}
    out[ROUTER] = ["trtllm-serve", *ORCHESTRATOR.args(spec)]
    return out


TENSORRT_LLM = register(TensorrtLlm())
