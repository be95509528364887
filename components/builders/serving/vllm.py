"""vLLM: the only module that knows vLLM's command line, environment, ports, health and metrics paths.

Disaggregated prefill/decode with the NixlConnector (vllm docs/features/nixl_connector_usage.md): both roles
run the same server with `kv_role: kv_both` (the connector does not distinguish roles; the router decides which
pod prefills and which decodes). The NIXL backend is LIBFABRIC when every engine pod has EFA devices (the only NIXL
backend validated on AWS EFA, nixl src/plugins/libfabric/README.md; UCX over EFA falls back to TCP) and UCX
elsewhere. In `serving.mode: aggregated` there is no KV connector: every replica serves whole requests.

Multi-node replicas use vLLM's native multi-node runtime, no Ray (the vllm 0.30.0 wheel declares no ray dependency
and the stock image has none since v0.19, kubernetes-sigs/lws#835): every node runs `vllm serve` with `--nnodes N --node-rank R --master-addr <leader> --master-port P`, the
workers with `--headless` (vllm v0.30.0 docs/serving/parallelism_scaling.md "Running vLLM with MultiProcessing";
engine/arg_utils.py requires the `mp` backend for `--nnodes > 1`). Data parallelism across nodes rides on the same
flags: with `--data-parallel-size`, vLLM infers each node's local DP size and start rank from `--nnodes` and
`--node-rank` and uses the master address for its DP coordinator (arg_utils.py `create_engine_config`).

The container runs a short bash wrapper, then `exec vllm serve "$@"`: the static argv is the container's `args`
(what the real-parser check feeds to vLLM's own parser), and only the per-pod values (node rank, leader address)
are appended by the wrapper from the workload API's env. Before the engine starts the wrapper proves the fabric
(`preflight`): a pod that cannot use EFA exits with the reason instead of moving KV or NCCL traffic over TCP.
"""

from __future__ import annotations

import json
import shlex

from components.builders.serving import vllm_router
from components.builders.serving.common import HTTP_PORT_NAME, served_model_name, startup_minutes
from components.builders.serving.engine import Group, HttpEngine, Part, ScalingTrigger, register
from components.builders.serving.spec import ServingSpec

NIXL_PORT_NAME = "nixl"
DIST_PORT_NAME = "dist"
DP_RPC_PORT_NAME = "dp-rpc"
# Where the Hugging Face hub cache lives inside the pod (the model-cache volume is mounted at CACHE_MOUNT).
CACHE_MOUNT = "/model-cache"
# $HOME of the image's user (vllm/vllm-openai runs as root): vLLM, torch.compile, Triton, FlashInfer and CUDA keep
# their caches under it, so it is a writable emptyDir when the root file system is read-only.
HOME = "/root"

# aws-efa-installer prefix inside the EFA image (images/vllm-efa/Dockerfile).
EFA_BIN = "/opt/amazon/efa/bin"
OFI_NCCL_LIB = "/opt/amazon/ofi-nccl/lib"

# Wrapper lines the real-tool checks recognise: the engine starts with exactly this line (the argv in `args`, plus
# the per-pod flags of a multi-node group).
EXEC_SINGLE = 'exec vllm serve "$@"'
EXEC_GROUP = 'exec vllm serve "$@" --node-rank "$NODE_RANK" --master-addr "$LEADER_ADDR"'
# How long a group member waits for the leader's DNS record (LWS/Grove headless Services publish not-ready pods, but
# the record appears only once the leader pod has an IP).
LEADER_DNS_WAIT_SECONDS = 600

# Run inside the engine container before the engine: create a NIXL agent with the LIBFABRIC backend and register
# GPU memory with it, as NixlConnector does (vllm v0.30.0 distributed/nixl_utils.py imports `nixl._api`;
# nixl_agent_config(backends=[...]), get_reg_descs / register_memory(..., backends=[...]) as in
# kv_connector/v1/nixl/base_worker.py). nixl's nixl_agent only logs a warning and skips a backend whose plugin
# failed to load (nixl-cu13 1.5.1 _api.py "Skipping backend registration"), so the check looks for it explicitly.
NIXL_PREFLIGHT = "\n".join(
    [
        "import sys",
        "import torch",
        "from nixl._api import nixl_agent, nixl_agent_config",
        "if not torch.cuda.is_available():",
        '    sys.exit("no CUDA device is visible in the engine container")',
        'agent = nixl_agent("disagg-preflight", nixl_agent_config(backends=["LIBFABRIC"]))',
        'if "LIBFABRIC" not in agent.backends:',
        '    sys.exit("NIXL has no LIBFABRIC backend (plugins: %s): libplugin_LIBFABRIC.so needs libfabric.so.1 "',
        '             "and libhwloc.so.15 from the EFA image" % sorted(agent.plugin_list))',
        'buf = torch.empty(1 << 24, dtype=torch.uint8, device="cuda")',
        'descs = agent.register_memory([buf], backends=["LIBFABRIC"])',
        'agent.deregister_memory(descs, backends=["LIBFABRIC"])',
        'print("preflight: NIXL LIBFABRIC agent registered 16 MiB of GPU memory")',
    ]
)


class Vllm(HttpEngine):
    pin_name = "vllm"
    kind = "vllm"
    health_path = "/health"
    metrics_path = "/metrics"
    cache_mount = CACHE_MOUNT
    home = HOME
    router = vllm_router.VLLM_ROUTER

    def leader_ready_startup(self, spec: ServingSpec, role: str) -> bool:
        # The leader serves /health only once every node of the group joined its torch.distributed group and the
        # model is loaded, so holding workers back until the leader is Ready (LWS LeaderReady, Grove startsAfter)
        # would deadlock the group.
        return False

    def default_scaling_metric(self, role: str) -> tuple[str, float]:
        # Prefill is compute-bound: a queue of waiting prompts is the signal. Decode is bound by KV-cache
        # memory: usage near full means new sequences will queue (vllm docs/design/metrics.md).
        return ("vllm:num_requests_waiting", 4.0) if role == "prefill" else ("vllm:kv_cache_usage_perc", 0.8)

    def revision_inputs(self, spec: ServingSpec) -> dict:
        return {
            "images": sorted({self.image(spec, r) for r in ("prefill", "decode")}),
            "model": spec.model.revision_inputs,
            "mode": spec.mode,
            "kv_transfer": self.kv_transfer_config(spec) if spec.kv_transfer else None,
            "extra_args": list(spec.engine.extra_args),
        }

    # ---- command line ---------------------------------------------------------------------------------------
    def kv_transfer_config(self, spec: ServingSpec) -> dict:
        return {
            "kv_connector": spec.kv_connector,
            "kv_role": "kv_both",
            "kv_connector_extra_config": {"backends": [spec.kv_backend]},
        }

    def serve_args(self, spec: ServingSpec, role: str, part: Part = "single") -> list[str]:
        """The argv after `vllm serve`, without the per-pod flags of a multi-node group (node rank, leader)."""
        e = spec.engine
        rp = spec.role(role)
        args = [
            spec.model.id,
            "--host", "0.0.0.0",
            "--port", str(self.port(spec)),
            "--served-model-name", served_model_name(spec),
            "--tensor-parallel-size", str(rp.tensor_parallel),
            "--pipeline-parallel-size", str(rp.pipeline_parallel),
        ]
        if rp.data_parallel > 1:
            args += ["--data-parallel-size", str(rp.data_parallel)]
            if rp.multi_node:
                args += ["--data-parallel-rpc-port", str(e.data_parallel_rpc_port)]
        if rp.expert_parallel:
            args += ["--enable-expert-parallel"]
        if spec.kv_transfer:
            args += ["--kv-transfer-config", json.dumps(self.kv_transfer_config(spec), separators=(",", ":"), sort_keys=True)]
        args += [
            "--gpu-memory-utilization", str(e.gpu_memory_utilization),
            "--enable-prefix-caching" if e.prefix_caching else "--no-enable-prefix-caching",
        ]
        if spec.model.max_model_len:
            args += ["--max-model-len", str(spec.model.max_model_len)]
        if rp.multi_node:
            args += ["--nnodes", str(rp.nodes_per_replica), "--master-port", str(e.master_port)]
            if part == "worker":
                args += ["--headless"]
        return args + list(e.extra_args) + list(rp.extra_args)

    def wrapper(self, spec: ServingSpec, role: str, part: Part, group: Group | None) -> str:
        """The bash script that proves the fabric, then execs the engine with the container's args."""
        efa = spec.role(role).efa
        lines = [
            "set -euo pipefail",
            'fail() { echo "disagg preflight failed: $*" >&2; exit 1; }',
        ]
        if efa:
            lines += [
                "shopt -s nullglob",
                "efa_devices=(/dev/infiniband/uverbs*)",
                '[ "${#efa_devices[@]}" -gt 0 ] || fail "no EFA device in the container (/dev/infiniband/uverbs*): the pod '
                'got no vpc.amazonaws.com/efa devices; check the EFA device plugin on this node"',
                f'command -v fi_info >/dev/null || fail "fi_info is missing: this image has no EFA libfabric; set '
                f'serving.engine.efaImage to an image built from images/vllm-efa (PATH={EFA_BIN})"',
                # FI_HMEM: the EFA provider must accept GPU memory, or every KV block would bounce through the host.
                'fi_info -p efa -c FI_HMEM >/dev/null || fail "libfabric cannot open the EFA provider with FI_HMEM (GPU '
                'memory): check the EFA devices of the pod and the efa kernel module of the node"',
            ]
            if spec.kv_backend == "LIBFABRIC":
                lines += [
                    f"python3 -c {shlex.quote(NIXL_PREFLIGHT)} || fail \"NIXL could not register GPU memory with its "
                    'LIBFABRIC backend (reason above); KV transfer would not use EFA"',
                ]
        if part != "single":
            if group is None:
                raise ValueError(f"{role}: a {part} pod needs its group's leader address and node rank")
            if efa:
                lines += [
                    f"compgen -G '{OFI_NCCL_LIB}/libnccl-net*.so' >/dev/null || fail \"aws-ofi-nccl is missing under "
                    f'{OFI_NCCL_LIB}: NCCL between the nodes of this group would run over TCP sockets"',
                ]
            wait = LEADER_DNS_WAIT_SECONDS // 5
            lines += [
                f'NODE_RANK="{group.node_rank}"',
                f'LEADER_ADDR="{group.leader_address}"',
                f"for _ in $(seq {wait}); do getent hosts \"$LEADER_ADDR\" >/dev/null && break; sleep 5; done",
                'getent hosts "$LEADER_ADDR" >/dev/null || fail "the group leader $LEADER_ADDR does not resolve"',
                'echo "node $NODE_RANK of the group led by $LEADER_ADDR"',
                EXEC_GROUP,
            ]
        else:
            lines.append(EXEC_SINGLE)
        return "\n".join(lines) + "\n"

    def process(self, spec: ServingSpec, role: str, part: Part, group: Group | None) -> dict:
        e = spec.engine
        port = self.port(spec)
        env = [
            {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
            {"name": "HOME", "value": HOME},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        ]
        ports: list[dict] = []
        if self.serves_http(part):
            ports.append({"name": HTTP_PORT_NAME, "containerPort": port, "protocol": "TCP"})
        if spec.kv_transfer:
            side_port = spec.kv_side_channel_port
            env += [
                # NIXL's side channel (handshake of KV-cache metadata) listens on localhost by default; the peer
                # role runs in another pod, so it must advertise the pod IP (vllm nixl_connector_usage.md).
                {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(side_port)},
            ]
            ports.append({"name": NIXL_PORT_NAME, "containerPort": side_port, "protocol": "TCP"})
        if part == "leader":
            ports.append({"name": DIST_PORT_NAME, "containerPort": e.master_port, "protocol": "TCP"})
            if spec.role(role).data_parallel > 1:
                ports.append({"name": DP_RPC_PORT_NAME, "containerPort": e.data_parallel_rpc_port, "protocol": "TCP"})
        if part != "single":
            # torch.distributed and NCCL's bootstrap between the nodes of the group advertise the pod's address.
            env.append({"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        return {
            "command": ["/bin/bash", "-c", self.wrapper(spec, role, part, group), "vllm-serve"],
            "args": self.serve_args(spec, role, part),
            "env": env,
            "ports": ports,
        }

    def scaling_trigger(self, metric: str, selector: str) -> ScalingTrigger:
        # vLLM's load metrics are gauges per engine: summed over the role, divided per replica by KEDA.
        return ScalingTrigger(f"sum({metric}{selector})")

    def extra_objects(self, spec: ServingSpec, facts) -> list[dict]:
        return []

    def probes(self, spec: ServingSpec, role: str) -> dict:
        http = {"path": self.health_path, "port": HTTP_PORT_NAME}
        period = 10
        return {
            "startupProbe": {"httpGet": http, "periodSeconds": period, "failureThreshold": startup_minutes(spec, role) * 60 // period, "timeoutSeconds": 5},
            "readinessProbe": {"httpGet": http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
            # Generous: a busy engine answers /health late; restarting it costs a full model load.
            "livenessProbe": {"httpGet": http, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 10},
        }


VLLM = register(Vllm())
