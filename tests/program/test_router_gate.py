"""The router's auth gate (components/builders/serving/gate.py) run for real: the rendered script on CPython 3.12
with the aiohttp of the router's pinned, hash-checked closure, in front of a stand-in router.

It must refuse requests without the key or with a wrong one, pass the health paths without a key (GET only),
forward the body intact and the client's key never, stream the answer chunk by chunk (an event reaches the client
before the upstream writes the next one), take a rotated key without a restart and accept bodies beyond aiohttp's
1 MiB default.
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

from components.builders.serving import gate
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256
from tests.conftest import ROOT

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


@pytest.fixture
def running_gate(tmp_path):
    py = gate_venv()
    if py is None:
        pytest.skip("no CPython 3.12 or no PyPI access for the gate's pinned aiohttp wheels")
    upstream = Upstream()
    key_file = tmp_path / "key"
    key_file.write_text("right-key\n")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "GATE_PORT": str(port),
        "GATE_UPSTREAM": f"http://127.0.0.1:{upstream.port}",
        "GATE_KEY_FILE": str(key_file),
        "GATE_OPEN_PATHS": ",".join(gate.OPEN_PATHS),
        "GATE_MAX_BODY": str(gate.MAX_BODY),
    }
    proc = subprocess.Popen([str(py), "-c", gate.GATE_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the gate did not start: {proc.stdout.read()}")
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", upstream, key_file
    finally:
        upstream.first_seen.set()  # no request left hanging in the stand-in
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        upstream.server.shutdown()


def call(url: str, *, method: str = "GET", key: str | None = None, body: bytes | None = None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
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
