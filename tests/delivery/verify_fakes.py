"""Test doubles for `ops verify`: kubectl answered from the recorded fixtures, and a router on loopback that streams a
recorded SSE body (vLLM's, or trtllm-serve's for the TensorRT-LLM stack). No cluster, no network beyond 127.0.0.1."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verify"
NAMESPACE = "prod"
CONTAINER = "engine"


def fixture(rel: str) -> str:
    return (FIXTURES / rel).read_text()


TRTLLM_ROUTER_KEY = "trtllm-fixture-router-key"


@dataclass
class World:
    """What the prod stack's cluster answers: per pod, the /metrics pages (one per scrape, the last repeats), the EFA
    counters of its node (read through the first pod on each node), and its log."""

    metrics: dict[str, list[str]]
    efa: dict[str, list[str]]
    logs: dict[str, str]
    pods: dict = field(default_factory=lambda: json.loads(fixture("pods.json")))
    namespace: str = NAMESPACE
    metrics_url: str = "http://127.0.0.1:8000/metrics"
    secrets: dict[str, str] = field(default_factory=dict)  # Secret name -> its `key` value

    @classmethod
    def scenario(cls, kind: str) -> World:
        """`efa`: the probe's KV went prefill-0 -> decode-2 over EFA RDMA. `tcp`: the engines run NIXL over UCX, so the
        same transfer went over TCP and no EFA counter moved (the silent fallback)."""
        m = f"metrics/{kind}"
        metrics = {
            "prod-prefill-0": [fixture(f"{m}/prefill-0.before.prom"), fixture(f"{m}/prefill-0.after.prom")],
            "prod-prefill-1": [fixture(f"{m}/prefill-1.prom")],
            "prod-decode-0": [fixture(f"{m}/decode-0.prom")],
            "prod-decode-1": [fixture(f"{m}/decode-1.prom")],
            "prod-decode-2": [fixture(f"{m}/decode-2.before.prom"), fixture(f"{m}/decode-2.after.prom")],
            "prod-decode-3": [fixture(f"{m}/decode-3.prom")],
        }
        if kind == "efa":
            efa = {
                "prod-prefill-0": [fixture("efa/prefill-node.before.txt"), fixture("efa/prefill-node.after.txt")],
                "prod-decode-0": [fixture("efa/decode-node.before.txt"), fixture("efa/decode-node.after.txt")],
            }
            backend = "libfabric"
        else:
            efa = {p: [fixture("efa/idle-node.txt")] for p in ("prod-prefill-0", "prod-decode-0")}
            backend = "ucx"
        logs = {p: fixture(f"logs/{p.split('-')[1]}.{backend}.log") for p in metrics}
        return cls(metrics, efa, logs)

    @classmethod
    def trtllm(cls, kind: str) -> World:
        """The trtllm stack (tests/configs/Pulumi.trtllm.yaml, the prod layout on TensorRT-LLM 1.2.1): the probe's
        context phase ran on trtllm-prefill-0 and its generation phase on trtllm-decode-2. `efa`: its KV went over
        EFA RDMA (NIXL WRITEs from the context node into the generation node). `tcp`: the servers created NIXL's UCX
        backend, the same request went through both roles and no EFA counter moved (the silent fallback)."""
        m = "trtllm/metrics"
        metrics = {
            "trtllm-prefill-0": [fixture(f"{m}/context-0.before.prom"), fixture(f"{m}/context-0.after.prom")],
            "trtllm-prefill-1": [fixture(f"{m}/context-1.prom")],
            "trtllm-decode-0": [fixture(f"{m}/generation-0.prom")],
            "trtllm-decode-1": [fixture(f"{m}/generation-1.prom")],
            "trtllm-decode-2": [fixture(f"{m}/generation-2.before.prom"), fixture(f"{m}/generation-2.after.prom")],
            "trtllm-decode-3": [fixture(f"{m}/generation-3.prom")],
        }
        if kind == "efa":
            efa = {
                "trtllm-prefill-0": [fixture("trtllm/efa/context-node.before.txt"), fixture("trtllm/efa/context-node.after.txt")],
                "trtllm-decode-0": [fixture("trtllm/efa/generation-node.before.txt"), fixture("trtllm/efa/generation-node.after.txt")],
            }
            backend = "libfabric"
        else:
            efa = {p: [fixture("efa/idle-node.txt")] for p in ("trtllm-prefill-0", "trtllm-decode-0")}
            backend = "ucx"
        role = {"prefill": "context", "decode": "generation"}
        logs = {p: fixture(f"trtllm/logs/{role[p.split('-')[1]]}.{backend}.log") for p in metrics}
        return cls(
            metrics, efa, logs, pods=json.loads(fixture("trtllm/pods.json")), namespace="trtllm",
            metrics_url="http://127.0.0.1:8000/prometheus/metrics",
            # tests/configs/Pulumi.trtllm.yaml sets serving.router.apiKey: verify reads it from the stack's Secret.
            secrets={"trtllm-router-api-key": TRTLLM_ROUTER_KEY},
        )


class FakeKubectl:
    """A `subprocess.run` that answers the kubectl commands ops/verify_io.py runs, and records them."""

    def __init__(self, world: World):
        self.world = world
        self.calls: list[list[str]] = []
        self._reads: dict[tuple[str, str], int] = {}

    def _next(self, kind: str, pod: str, pages: dict[str, list[str]]) -> str:
        i = self._reads.get((kind, pod), 0)
        self._reads[(kind, pod)] = i + 1
        return pages[pod][min(i, len(pages[pod]) - 1)]

    def __call__(self, cmd, capture_output=True, text=True, timeout=None, **_):
        cmd = list(cmd)
        self.calls.append(cmd)
        assert cmd[0] == "kubectl" and cmd[1] == "--kubeconfig", cmd
        args = cmd[cmd.index("--request-timeout=60s") + 1 :]
        ns = args[args.index("-n") + 1]
        if ns != self.world.namespace:
            return subprocess.CompletedProcess(cmd, 1, "", f'Error from server (NotFound): namespaces "{ns}" not found')
        verb = args[0]
        if args[:2] == ["get", "pods"]:
            selector = dict(kv.split("=", 1) for kv in args[args.index("-l") + 1].split(","))
            items = [i for i in self.world.pods["items"] if all(i["metadata"]["labels"].get(k) == v for k, v in selector.items())]
            return subprocess.CompletedProcess(cmd, 0, json.dumps({**self.world.pods, "items": items}), "")
        if args[:2] == ["get", "secret"]:
            # The router key Secret (serving.router.apiKey), as `kubectl get secret -o jsonpath={.data.key}` prints it.
            name = args[4]
            if name not in self.world.secrets:
                return subprocess.CompletedProcess(cmd, 1, "", f'Error from server (NotFound): secrets "{name}" not found')
            return subprocess.CompletedProcess(cmd, 0, base64.b64encode(self.world.secrets[name].encode()).decode(), "")
        pod = args[3]
        if args[4:6] != ["-c", CONTAINER]:
            return subprocess.CompletedProcess(cmd, 1, "", f'error: container {args[5]} is not valid for pod {pod}')
        if verb == "exec":
            argv = args[args.index("--") + 1 :]
            if argv[0] == "python3":
                assert repr(self.world.metrics_url) in argv[2], argv
                return subprocess.CompletedProcess(cmd, 0, self._next("metrics", pod, self.world.metrics), "")
            if argv[:2] == ["sh", "-c"] and "/sys/class/infiniband" in argv[2]:
                if pod not in self.world.efa:
                    raise AssertionError(f"EFA counters read twice on one node (through {pod})")
                return subprocess.CompletedProcess(cmd, 0, self._next("efa", pod, self.world.efa), "")
        if verb == "logs":
            return subprocess.CompletedProcess(cmd, 0, self.world.logs[pod], "")
        raise AssertionError(f"unexpected kubectl call: {cmd}")


class FakeRouter:
    """vllm-router's /v1/completions on 127.0.0.1: answers every streamed request with a recorded SSE body, an event
    every `gap` seconds after `first` seconds; records the request bodies."""

    def __init__(self, body: str | None = None, *, first: float = 0.03, gap: float = 0.002, status: int = 200):
        self.body = body if body is not None else fixture("sse/completion.sse")
        self.first, self.gap, self.status = first, gap, status
        self.requests: list[dict] = []
        router = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                router.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length)), "headers": dict(self.headers)})
                if router.status != 200:
                    self.send_response(router.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": "no available decode workers", "code": router.status}}).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                time.sleep(router.first)
                for event in router.body.split("\n\n"):
                    if event:
                        self.wfile.write((event + "\n\n").encode())
                        self.wfile.flush()
                        time.sleep(router.gap)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRouter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
