"""vLLM: the only module that knows vLLM's command line, environment, ports, health and metrics paths.

Disaggregated prefill/decode with the NixlConnector (vllm docs/features/nixl_connector_usage.md): both roles
run the same server with `kv_role: kv_both` (the connector does not distinguish roles; the router decides which
pod prefills and which decodes). The NIXL backend is LIBFABRIC on EFA pools (the only NIXL backend validated on
AWS EFA, nixl src/plugins/libfabric/README.md; UCX over EFA falls back to TCP) and UCX elsewhere.

Multi-node replicas follow vLLM's documented multi-node recipe (docs.vllm.ai "multi-node-serving", the script
examples/online_serving/multi-node-serving.sh used by the LWS vLLM example): the leader starts a Ray head and
waits until the whole group has joined, then runs `vllm serve` with the Ray executor; workers join the head.
"""

from __future__ import annotations

import json
import shlex

from components.builders.serving.common import HTTP_PORT_NAME, served_model_name
from components.builders.serving.engine import Group, Part, register
from stacks.config.stack import StackConfig
from stacks.plan import kv_backend, role_plan
from stacks.versions import pin

RAY_PORT = 6379
NIXL_PORT_NAME = "nixl"
RAY_PORT_NAME = "ray"
# Where the Hugging Face hub cache lives inside the pod (the model-cache volume is mounted at CACHE_MOUNT).
CACHE_MOUNT = "/model-cache"


class Vllm:
    kind = "vllm"
    health_path = "/health"
    metrics_path = "/metrics"

    def image(self, cfg: StackConfig) -> str:
        return cfg.serving.engine.image or pin("vllm").image_ref

    def port(self, cfg: StackConfig) -> int:
        return cfg.serving.engine.port

    def serves_http(self, part: Part) -> bool:
        return part in ("single", "leader")

    def leader_ready_startup(self, cfg: StackConfig, role: str) -> bool:
        # The leader only becomes Ready after every worker joined its Ray cluster, so holding workers back
        # until the leader is Ready (LWS LeaderReady, Grove startsAfter) would deadlock the group.
        return False

    def default_scaling_metric(self, role: str) -> tuple[str, float]:
        # Prefill is compute-bound: a queue of waiting prompts is the signal. Decode is bound by KV-cache
        # memory: usage near full means new sequences will queue (vllm docs/design/metrics.md).
        return ("vllm:num_requests_waiting", 4.0) if role == "prefill" else ("vllm:kv_cache_usage_perc", 0.8)

    # ---- command line ---------------------------------------------------------------------------------------
    def kv_transfer_config(self, cfg: StackConfig) -> dict:
        return {
            "kv_connector": cfg.serving.kv_transfer.connector,
            "kv_role": "kv_both",
            "kv_connector_extra_config": {"backends": [kv_backend(cfg)]},
        }

    def serve_args(self, cfg: StackConfig, role: str, *, ray: bool = False) -> list[str]:
        s = cfg.serving
        rp = role_plan(cfg, role)
        args = [
            s.model.id,
            "--host", "0.0.0.0",
            "--port", str(self.port(cfg)),
            "--served-model-name", served_model_name(cfg),
            "--tensor-parallel-size", str(rp.tensor_parallel),
            "--pipeline-parallel-size", str(rp.pipeline_parallel),
            "--kv-transfer-config", json.dumps(self.kv_transfer_config(cfg), separators=(",", ":"), sort_keys=True),
            "--gpu-memory-utilization", str(s.engine.gpu_memory_utilization),
            "--enable-prefix-caching" if s.engine.prefix_caching else "--no-enable-prefix-caching",
        ]
        if s.model.max_model_len:
            args += ["--max-model-len", str(s.model.max_model_len)]
        if ray:
            args += ["--distributed-executor-backend", "ray"]
        return args + list(s.engine.extra_args) + list(s.role(role).extra_args)

    def process(self, cfg: StackConfig, role: str, part: Part, group: Group | None) -> dict:
        port = self.port(cfg)
        side_port = cfg.serving.kv_transfer.side_channel_port
        env = [
            {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
            # NIXL's side channel (handshake of KV-cache metadata) listens on localhost by default; the peer
            # role runs in another pod, so it must advertise the pod IP (vllm nixl_connector_usage.md).
            {"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(side_port)},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        ]
        ports = [{"name": NIXL_PORT_NAME, "containerPort": side_port, "protocol": "TCP"}]
        if self.serves_http(part):
            ports.insert(0, {"name": HTTP_PORT_NAME, "containerPort": port, "protocol": "TCP"})
        if part == "single":
            return {"command": ["vllm", "serve"], "args": self.serve_args(cfg, role), "env": env, "ports": ports}
        if group is None:
            raise ValueError(f"{role}: a {part} pod needs its group's leader address and size")
        # Ray advertises this address to the other nodes of the group.
        env.append({"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        if part == "leader":
            ports.append({"name": RAY_PORT_NAME, "containerPort": RAY_PORT, "protocol": "TCP"})
            wait = (
                "import os, ray, sys; ray.init(address='auto', logging_level='ERROR'); "
                "sys.exit(0 if sum(n['Alive'] for n in ray.nodes()) >= int(os.environ['GROUP_SIZE']) else 1)"
            )
            script = "\n".join(
                [
                    "set -eu",
                    f'export GROUP_SIZE="{group.size}"',
                    f'ray start --head --port={RAY_PORT} --node-ip-address="$VLLM_HOST_IP" --disable-usage-stats',
                    'echo "waiting for $GROUP_SIZE nodes in the Ray cluster"',
                    f"until python3 -c {shlex.quote(wait)}; do sleep 5; done",
                    "exec vllm serve " + shlex.join(self.serve_args(cfg, role, ray=True)),
                ]
            )
        else:
            script = "\n".join(
                [
                    "set -u",
                    # The head may not be up yet (pods of a group start together): retry until it is.
                    f'until ray start --address="{group.leader_address}:{RAY_PORT}" --node-ip-address="$VLLM_HOST_IP" '
                    "--disable-usage-stats --block; do",
                    '  echo "Ray head not reachable yet, retrying"; sleep 5',
                    "done",
                ]
            )
        return {"command": ["/bin/bash", "-c", script], "env": env, "ports": ports}


VLLM = register(Vllm())
