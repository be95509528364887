"""The cluster and HTTP side of `ops verify`, kept thin: everything that decides is in ops/verify.py.

kubectl (over the stack's kubeconfig, or one written by `aws eks update-kubeconfig` like `ops teardown` does) lists
the engine pods, runs the two read-only commands inside them (the engine's /metrics on localhost, the EFA sysfs
counters), reads their logs and port-forwards to the router Service; urllib streams the completion.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from typing import Iterator, Mapping

from components.builders.serving.common import selector_args
from ops.kube import KubeError, Kubectl
from ops.verify import Pod, Target, pods_from_json

# client-go tools/portforward/portforward.go (PortForwarder.getListener) prints this line once it listens.
_FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> \d+")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def forwarded_port(line: str) -> int | None:
    """The local port of a `kubectl port-forward` "Forwarding from 127.0.0.1:<port> -> <remote>" line."""
    m = _FORWARDING.match(line.strip())
    return int(m.group(1)) if m else None


def normalize_router_url(text: str, default_port: int) -> str:
    """`host`, `host:port` or a URL (the internal NLB hostname, a port-forward, the in-cluster URL) -> base URL."""
    text = text.strip().rstrip("/")
    if "://" not in text:
        host = text if ":" in text.split("]")[-1] else f"{text}:{default_port}"
        text = f"http://{host}"
    return text


def _reason(exc: KubeError) -> str:
    # Kubectl._kubectl says "kubectl <all args> failed: <stderr>"; the args of an exec carry a whole script.
    return str(exc).split(" failed: ", 1)[-1]


class KubectlCluster(Kubectl):
    """ops.verify.Cluster over the kubectl CLI."""

    def pods(self, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
        doc = json.loads(self._kubectl("get", "pods", "-n", namespace, "-l", ",".join(selector_args(dict(selector))), "-o", "json"))
        return pods_from_json(doc)

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
        try:
            return self._kubectl("exec", "-n", namespace, pod, "-c", container, "--", *argv)
        except KubeError as exc:
            raise KubeError(f"kubectl exec {pod} -c {container} -- {argv[0]}: {_reason(exc)}") from None

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        """One data value of a Secret, decoded (kubectl get secret -o jsonpath)."""
        try:
            encoded = self._kubectl("get", "secret", "-n", namespace, name, "-o", f"jsonpath={{.data.{key}}}")
        except KubeError as exc:
            raise KubeError(f"kubectl get secret {name}: {_reason(exc)}") from None
        return base64.b64decode(encoded.strip()).decode()

    def logs(self, namespace: str, pod: str, container: str) -> str:
        try:
            return self._kubectl("logs", "-n", namespace, pod, "-c", container)
        except KubeError as exc:
            raise KubeError(f"kubectl logs {pod} -c {container}: {_reason(exc)}") from None

    @contextmanager
    def port_forward(self, namespace: str, resource: str, port: int, *, popen=None, wait: float = 30.0) -> Iterator[str]:
        """`kubectl port-forward <resource> :<port>` on a free local port; yields its base URL, stops it on exit."""
        popen = popen or subprocess.Popen
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig, "port-forward", "-n", namespace, resource, f":{port}", "--address", "127.0.0.1"]
        proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()

        def drain() -> None:
            # Keep reading for the whole run: kubectl prints a line per connection and would block on a full pipe.
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        try:
            deadline = time.monotonic() + wait
            local = None
            while local is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise KubeError(f"kubectl port-forward {resource} printed no local port within {wait:.0f} s") from None
                if line is None:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise KubeError(f"kubectl port-forward {resource} exited: {err.strip()}")
                local = forwarded_port(line)
            yield f"http://127.0.0.1:{local}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def connect(kubeconfig: str | None, cluster: str, region: str, *, run=None) -> KubectlCluster:
    run = run or subprocess.run
    return KubectlCluster(kubeconfig, run=run) if kubeconfig else KubectlCluster.for_eks(cluster, region, run=run)


@contextmanager
def router(cluster: KubectlCluster, target: Target, url: str | None) -> Iterator[str]:
    """The router's base URL: the one given (e.g. the internal NLB's hostname), else a port-forward to its Service."""
    if url:
        yield normalize_router_url(url, target.router_port)
        return
    with cluster.port_forward(target.namespace, f"service/{target.router_service}", target.router_port) as local:
        yield local


class HttpError(RuntimeError):
    """The router answered with an error status."""


def stream_lines(url: str, body: dict, timeout: float, *, api_key: str | None = None) -> Iterator[tuple[float, str]]:
    """POST `body` and yield (seconds since the request was sent, line) as each line of the response arrives; with
    `api_key`, as the bearer token the router's auth gate checks."""
    # A port-forward listens on loopback: never send that through an HTTP(S)_PROXY from the environment.
    handlers = [urllib.request.ProxyHandler({})] if urllib.parse.urlsplit(url).hostname in LOOPBACK else []
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "text/event-stream", **({"Authorization": f"Bearer {api_key}"} if api_key else {})},
    )
    start = time.perf_counter()
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        raise HttpError(f"HTTP {exc.code} from {url}: {detail}") from None
    with resp:
        for raw in resp:
            yield time.perf_counter() - start, raw.decode("utf-8", "replace")
