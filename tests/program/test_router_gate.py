"""The router's auth gate (components/builders/serving/gate.py) run for real: the rendered script on CPython 3.12
with the aiohttp of the router's pinned, hash-checked closure, in front of a stand-in router.

It must refuse requests without the key or with a wrong one, pass the health paths without a key (GET only),
forward the body intact and the client's key never, stream the answer chunk by chunk (an event reaches the client
before the upstream writes the next one), take a rotated key without a restart and accept bodies beyond aiohttp's
1 MiB default.

In front of TensorRT-LLM's orchestrator the rendered gate (tests/configs/Pulumi.trtllm.yaml with a key) must do the
same on the `http` port with /health as its only open path, and serve the orchestrator's metrics without a key on its
metrics-only port, and nothing else there. The TensorRT-LLM release image's aiohttp is not pinned by this project
(it comes with the release); the script uses only aiohttp 3 APIs the pinned router closure also has.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from components.builders.serving import gate, manifests, trtllm
from components.builders.serving.spec import platform_facts
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256
from stacks.serving_args import serving_spec
from tests.conftest import CONFIGS, ROOT
from tooling.render import load

GATE_VENV = ROOT / ".venv-gate"
# aiohttp and what it imports, as pinned for the router (cp312 manylinux x86_64 wheels: the router image's Python).
GATE_PACKAGES = ("aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "idna", "multidict", "propcache", "typing-extensions", "yarl")


def python312() -> str | None:
    """A CPython 3.12 that runs (a pyenv shim may name one that is not selected)."""
    candidates = [shutil.which("python3.12"), *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for c in filter(None, candidates):
        try:
            out = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.stdout.strip() == "True":
            return c
    return None


def gate_venv() -> Path | None:
    stamp = GATE_VENV / f".aiohttp-{VLLM_ROUTER_PYPI['aiohttp']}"
    py = GATE_VENV / "bin" / "python"
    if stamp.exists():
        return py
    base = python312()
    if base is None:
        return None
    shutil.rmtree(GATE_VENV, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(GATE_VENV)], check=True, timeout=300)
    req = GATE_VENV / "requirements.txt"
    req.write_text("".join(f"{k}=={VLLM_ROUTER_PYPI[k]} --hash=sha256:{VLLM_ROUTER_PYPI_SHA256[k]}\n" for k in GATE_PACKAGES))
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", str(req)],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        shutil.rmtree(GATE_VENV, ignore_errors=True)
        return None
    stamp.touch()
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """A stand-in router: health on /liveness, an SSE stream on POST /v1/completions that sends its second event only
    once the test has seen the first."""

    def __init__(self):
        self.seen: list[dict] = []
        self.first_seen = threading.Event()
        up = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                up.seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                up.seen.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # no length: the body ends when the connection closes
                self.wfile.write(b'data: {"n": 1}\n\n')
                self.wfile.flush()
                up.first_seen.wait(10)
                self.wfile.write(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_gate(py: Path, script: str, env: dict[str, str], *ports: int) -> subprocess.Popen:
    """Run the gate script with `env` until each of `ports` accepts connections."""
    proc = subprocess.Popen([str(py), "-c", script], env={"PATH": os.environ.get("PATH", ""), **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"the gate did not start: {proc.stdout.read()}")
                time.sleep(0.1)
    return proc


def stop_gate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def pinned_gate_python() -> Path:
    py = gate_venv()
    if py is None:
        pytest.skip("no CPython 3.12 or no PyPI access for the gate's pinned aiohttp wheels")
    return py


@pytest.fixture
def running_gate(tmp_path):
    py = pinned_gate_python()
    upstream = Upstream()
    key_file = tmp_path / "key"
    key_file.write_text("right-key\n")
    port = free_port()
    env = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "GATE_PORT": str(port),
        "GATE_UPSTREAM": f"http://127.0.0.1:{upstream.port}",
        "GATE_KEY_FILE": str(key_file),
        "GATE_OPEN_PATHS": ",".join(gate.OPEN_PATHS),
        "GATE_MAX_BODY": str(gate.MAX_BODY),
    }
    proc = start_gate(py, gate.GATE_SCRIPT, env, port)
    try:
        yield f"http://127.0.0.1:{port}", upstream, key_file
    finally:
        upstream.first_seen.set()  # no request left hanging in the stand-in
        stop_gate(proc)
        upstream.server.shutdown()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as it is


def call(url: str, *, method: str = "GET", key: str | None = None, body: bytes | None = None):
    """One request, as a client that does not follow redirects (a redirect to the router's in-pod address would be
    followed here, on loopback, where a client outside the pod could not follow it)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirects())
    try:
        return opener.open(urllib.request.Request(url, data=body, method=method, headers=headers), timeout=20)
    except urllib.error.HTTPError as exc:
        return exc


def test_the_gate_admits_only_the_key_and_streams_what_the_router_sends(running_gate):
    url, upstream, key_file = running_gate
    assert call(f"{url}/liveness").status == 200  # open: the probes carry no key
    assert call(f"{url}/liveness", method="POST", body=b"{}").status == 401  # only GET/HEAD of a health path
    no_key = call(f"{url}/v1/completions", method="POST", body=b"{}")
    assert no_key.status == 401 and no_key.headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(no_key.read())["error"]["type"] == "authentication_error"
    assert call(f"{url}/v1/models", key="wrong-key").status == 401
    assert call(f"{url}/v1/models", key="right-keyx").status == 401
    assert [s["path"] for s in upstream.seen] == ["/liveness"]  # nothing refused reached the router

    body = json.dumps({"model": "m", "prompt": "hello", "stream": True}).encode()
    start = time.monotonic()
    resp = call(f"{url}/v1/completions?x=1", method="POST", key="right-key", body=body)
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    first = resp.readline()
    # Arrived while the upstream still holds the rest back (for up to 10 s): streamed, not buffered.
    assert first == b'data: {"n": 1}\n' and time.monotonic() - start < 5
    upstream.first_seen.set()
    rest = resp.read()
    assert b'data: {"n": 2}' in rest and rest.rstrip().endswith(b"data: [DONE]")
    sent = upstream.seen[-1]
    assert sent["path"] == "/v1/completions?x=1" and sent["body"] == body
    assert "Authorization" not in sent["headers"]  # the client's key stays at the gate


def test_the_gate_takes_a_rotated_key_and_large_bodies(running_gate):
    url, upstream, key_file = running_gate
    key_file.write_text("new-key")
    assert call(f"{url}/v1/models", key="right-key").status == 401
    assert call(f"{url}/v1/models", key="new-key").status == 200
    upstream.first_seen.set()
    big = json.dumps({"prompt": "x" * (3 * 1024 * 1024)}).encode()
    resp = call(f"{url}/v1/completions", method="POST", key="new-key", body=big)
    assert resp.status == 200
    resp.read()
    assert upstream.seen[-1]["body"] == big


# ---- the same gate in front of TensorRT-LLM's orchestrator ----------------------------------------------------------


class FakeOrchestrator:
    """A stand-in `trtllm-serve disaggregated`: /health (503 until `ready`), an OpenAI route, and its Prometheus app
    mounted at /prometheus/metrics, which Starlette answers at the bare path with a 307 to the path plus "/" whose
    Location names the address the request was sent to (the orchestrator's in-pod listener)."""

    def __init__(self):
        self.seen: list[dict] = []
        self.ready = True
        orch = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                orch.seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                if self.path == "/health":
                    self.answer(200 if orch.ready else 503)
                elif self.path == trtllm.METRICS_PATH:
                    self.answer(307, headers={"Location": f"http://{self.headers['Host']}{trtllm.METRICS_PATH}/"})
                elif self.path == trtllm.METRICS_PATH + "/":
                    self.answer(200, b"trtllm_request_success_total 3.0\n", {"Content-Type": "text/plain; version=0.0.4"})
                else:
                    self.answer(404, b'{"detail":"Not Found"}', {"Content-Type": "application/json"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                orch.seen.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                self.answer(200, b'{"choices": [{"text": "hi"}]}', {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def rendered_orchestrator_gate() -> tuple[dict, dict]:
    """The gate container and the orchestrator's config file of tests/configs/Pulumi.trtllm.yaml (which sets a key)."""
    cfg = load(CONFIGS / "Pulumi.trtllm.yaml", "trtllm", "a-canary-never-used")[2]
    assert cfg.serving.router.api_key is not None  # its `secure:` value
    spec = serving_spec(cfg)
    ms = {(m.kind, m.name): m.obj for m in manifests(spec, platform_facts("serving", "aws-network", {}))}
    pod = ms[("Deployment", "trtllm-router")]["spec"]["template"]["spec"]
    config = yaml.safe_load(ms[("ConfigMap", "trtllm-router-trtllm")]["data"][trtllm.ORCHESTRATOR_FILE])
    return next(c for c in pod["containers"] if c["name"] == gate.CONTAINER), config


@pytest.fixture
def gated_orchestrator(tmp_path):
    """The rendered gate (its command and env) on the pinned aiohttp, in front of a FakeOrchestrator. The listening
    ports and the key file are the test's own (free ports on loopback, a file under tmp_path): the rendered ones
    (8000, 29000, the orchestrator on 127.0.0.1:8081, /var/run/secrets/...) are checked, then replaced."""
    py = pinned_gate_python()
    container, config = rendered_orchestrator_gate()
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GATE_UPSTREAM"] == f"http://{config['hostname']}:{config['port']}" == "http://127.0.0.1:8081"
    assert (env["GATE_PORT"], env["GATE_METRICS_PORT"]) == (str(trtllm.ORCHESTRATOR_PORT), str(gate.METRICS_PORT))
    assert container["command"][:2] == ["python3", "-c"]
    orch = FakeOrchestrator()
    key_file = tmp_path / "key"
    key_file.write_text("right-key\n")
    port, metrics_port = free_port(), free_port()
    env.update(
        HOME=str(tmp_path), GATE_PORT=str(port), GATE_METRICS_PORT=str(metrics_port),
        GATE_UPSTREAM=f"http://127.0.0.1:{orch.port}", GATE_KEY_FILE=str(key_file),
    )
    proc = start_gate(py, container["command"][2], env, port, metrics_port)
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", orch
    finally:
        stop_gate(proc)
        orch.server.shutdown()


def test_the_orchestrator_gate_admits_only_the_key_and_keeps_health_open(gated_orchestrator):
    url, _, orch = gated_orchestrator
    assert call(f"{url}/health").status == 200  # the probes and the gate's readiness carry no key
    orch.ready = False
    assert call(f"{url}/health").status == 503  # the orchestrator's own answer: not ready until both roles serve
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    no_key = call(f"{url}/v1/chat/completions", method="POST", body=body)
    assert no_key.status == 401 and json.loads(no_key.read())["error"]["type"] == "authentication_error"
    assert call(f"{url}/v1/chat/completions", method="POST", key="wrong-key", body=body).status == 401
    # /liveness and /readiness are vllm-router's: not open here. Nor are the metrics on the client port.
    assert call(f"{url}/readiness").status == 401 and call(f"{url}{trtllm.METRICS_PATH}").status == 401
    assert [s["path"] for s in orch.seen] == ["/health", "/health"]
    ok = call(f"{url}/v1/chat/completions", method="POST", key="right-key", body=body)
    assert ok.status == 200 and json.loads(ok.read())["choices"][0]["text"] == "hi"
    assert orch.seen[-1]["body"] == body and "Authorization" not in orch.seen[-1]["headers"]


def test_the_orchestrator_metrics_are_scraped_without_the_key_on_the_metrics_port_only(gated_orchestrator):
    _, metrics, orch = gated_orchestrator
    scrape = call(f"{metrics}{trtllm.METRICS_PATH}")  # as Prometheus and the NLB health check call it: no key
    assert scrape.status == 200 and scrape.read() == b"trtllm_request_success_total 3.0\n"
    assert scrape.headers["Content-Type"].startswith("text/plain")
    # The orchestrator's redirect to its in-pod address was followed by the gate, never handed to the scraper.
    assert [s["path"] for s in orch.seen] == [trtllm.METRICS_PATH, trtllm.METRICS_PATH + "/"]
    # Nothing else on that port, key or not: 404 and never forwarded.
    assert call(f"{metrics}{trtllm.METRICS_PATH}", method="POST", body=b"{}").status == 404
    for path in ("/health", "/v1/models", "/cluster_info"):
        assert call(f"{metrics}{path}").status == 404 and call(f"{metrics}{path}", key="right-key").status == 404
    assert len(orch.seen) == 2
