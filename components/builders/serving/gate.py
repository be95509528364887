"""The router's auth gate: a small reverse proxy in the router pod that admits only clients with the API key.

vllm-router 0.1.17 (the pin) cannot authenticate its clients when run the way this stack runs it: its `--api-key`
is "the API key used for authorization with workers" (vllm_router/router_args.py), which the vLLM P/D router sends
to the engines, never checks on requests; client checks (`authorize_request`, src/server.rs) run only with
`api_key_validation_urls`, which only the Rust binary's own CLI sets (src/main.rs `--api-key-validation-urls` /
API_KEY_VALIDATION_URLS, not shipped in the wheel); the Python launcher's `RouterArgs` has no such field and the
pyo3 `Router` defaults it to none (src/lib.rs), and even there every route, /liveness and /readiness included, asks
for a token, which kubelet probes cannot send without writing the key into the pod spec. So with
`serving.router.apiKey` the router listens on 127.0.0.1:ROUTER_PORT, reachable from inside the pod only (its probes
are exec probes), and this gate takes the pod's `http` port:

- every request must carry `Authorization: Bearer <key>` (compared in constant time), else 401; the key is read
  from the mounted Secret on each request, so a rotated Secret (the kubelet updates the volume) needs no restart;
- OPEN_PATHS (GET/HEAD) pass without a key: the router's health paths, which the probes and the NLB call;
- the client's Authorization header is not forwarded (the router authenticates to the engines by itself);
- request bodies are read whole (up to MAX_BODY, vllm-router's own default max payload, src/lib.rs
  `max_payload_size = 512 * 1024 * 1024`) and responses streamed back chunk by chunk, undecoded, so server-sent
  events reach the client as the router writes them.

It runs on the router's own Python with aiohttp, which is in the router's pinned, hash-checked dependency closure
(facts/versions.py VLLM_ROUTER_PYPI aiohttp 3.14.5; aiohttp web.Application(client_max_size=...),
web.StreamResponse, ClientSession(auto_decompress=False), StreamReader.iter_any).

TensorRT-LLM's orchestrator (`trtllm-serve disaggregated` 1.2.1, trtllm.py) checks no client key either, and runs
behind the same gate on its image's Python (trtllm.py says why aiohttp is there): its config file's hostname/port
are ROUTER_HOST:ROUTER_PORT and /health is its open path. It serves its Prometheus metrics on that one listener, so
the gate opens a second, metrics-only listener for it on METRICS_PORT, the pod's `metrics` port (_METRICS_LINES).
"""

from __future__ import annotations

from components.builders.serving.common import HTTP_PORT_NAME, ROUTER_METRICS_PORT_NAME
from components.builders.serving.spec import ServingSpec

# The router's own listener when the gate is in front of it: inside the pod only (127.0.0.1).
ROUTER_HOST = "127.0.0.1"
ROUTER_PORT = 8081
KEY_DIR = "/var/run/secrets/router-api-key"
KEY_FILE = "key"
OPEN_PATHS = ("/liveness", "/readiness", "/health")
MAX_BODY = 512 * 1024 * 1024
CONTAINER = "auth-gate"
# The metrics-only listener of gate_container(metrics=...): vllm-router's own metrics port, so the metrics Service
# of either router reads alike.
METRICS_PORT = 29000

_LINES = (
    "import hmac, os",
    "from aiohttp import ClientError, ClientSession, ClientTimeout, web",
    "from multidict import CIMultiDict",
    'UPSTREAM = os.environ["GATE_UPSTREAM"]',
    'KEY_FILE = os.environ["GATE_KEY_FILE"]',
    'OPEN = frozenset(os.environ["GATE_OPEN_PATHS"].split(","))',
    # Hop-by-hop fields (RFC 9110 7.6.1) and what aiohttp sets itself from the body it sends.
    'HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",'
    ' "transfer-encoding", "upgrade", "host", "content-length"))',
    "def error(status, message, kind):",
    '    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status,'
    ' headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)',
    "def authorized(request):",
    '    scheme, _, token = request.headers.get("Authorization", "").partition(" ")',
    '    if scheme.lower() != "bearer" or not token.strip():',
    "        return False",
    '    with open(KEY_FILE, "rb") as f:',
    "        key = f.read().strip()",
    "    return bool(key) and hmac.compare_digest(token.strip().encode(), key)",
    "async def proxy(request):",
    '    if not (request.method in ("GET", "HEAD") and request.path in OPEN) and not authorized(request):',
    '        return error(401, "missing or wrong API key: send Authorization: Bearer <serving.router.apiKey>",'
    ' "authentication_error")',
    '    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP and k.lower() != "authorization")',
    "    body = await request.read()",
    "    try:",
    '        up = await request.app["session"].request(request.method, UPSTREAM + request.path_qs, headers=headers,'
    " data=body or None, allow_redirects=False)",
    "    except ClientError as exc:",
    '        return error(502, f"the router is not reachable: {exc}", "bad_gateway")',
    "    async with up:",
    "        resp = web.StreamResponse(status=up.status, reason=up.reason,"
    " headers=CIMultiDict((k, v) for k, v in up.headers.items() if k.lower() not in HOP))",
    "        await resp.prepare(request)",
    "        async for chunk in up.content.iter_any():",
    "            await resp.write(chunk)",
    "        await resp.write_eof()",
    "        return resp",
    "async def session(app):",
    # No total timeout: a long generation streams for as long as it takes; connecting to the router is local.
    '    app["session"] = ClientSession(auto_decompress=False, timeout=ClientTimeout(total=None, sock_connect=10))',
    "    yield",
    '    await app["session"].close()',
    'app = web.Application(client_max_size=int(os.environ["GATE_MAX_BODY"]))',
    "app.cleanup_ctx.append(session)",
    'app.router.add_route("*", "/{tail:.*}", proxy)',
)
_RUN = 'web.run_app(app, host="0.0.0.0", port=int(os.environ["GATE_PORT"]), access_log=None, print=None)'
# A router that serves its Prometheus metrics on its one HTTP listener (TensorRT-LLM's orchestrator) gets a second
# listener in the gate, on the pod's `metrics` port: GET/HEAD of the metrics paths only, without a key, anything else
# 404 and never forwarded. The metrics stay off the client port (and the client Service, which may be an NLB), and the
# router's NetworkPolicy admits the `metrics` port from the monitoring namespace (and the NLB's subnets) only.
# Redirects are followed upstream: Starlette answers a Mount's bare path with a 307 to the path plus "/", whose
# Location names the router's in-pod address, which a scraper outside the pod could not follow.
_METRICS_LINES = (
    'METRICS = frozenset(os.environ["GATE_METRICS_PATHS"].split(","))',
    "async def metrics(request):",
    '    if request.method not in ("GET", "HEAD") or request.path not in METRICS:',
    '        return error(404, "this port serves only " + ", ".join(sorted(METRICS)), "not_found")',
    '    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP and k.lower() != "authorization")',
    "    try:",
    '        async with app["session"].request(request.method, UPSTREAM + request.path_qs, headers=headers) as up:',
    "            body = await up.read()",
    "    except ClientError as exc:",
    '        return error(502, f"the router is not reachable: {exc}", "bad_gateway")',
    "    return web.Response(status=up.status, reason=up.reason, body=body,"
    " headers=CIMultiDict((k, v) for k, v in up.headers.items() if k.lower() not in HOP))",
    # Started and stopped with the gate's app (cleanup_ctx), so run_app's signal handling covers both listeners.
    "async def metrics_listener(app):",
    "    m = web.Application()",
    '    m.router.add_route("*", "/{tail:.*}", metrics)',
    "    runner = web.AppRunner(m, access_log=None)",
    "    await runner.setup()",
    '    await web.TCPSite(runner, "0.0.0.0", int(os.environ["GATE_METRICS_PORT"])).start()',
    "    yield",
    "    await runner.cleanup()",
    "app.cleanup_ctx.append(metrics_listener)",
)
GATE_SCRIPT = "\n".join([*_LINES, _RUN])
# The gate with the metrics listener (gate_container(metrics=...)).
METRICS_GATE_SCRIPT = "\n".join([*_LINES, *_METRICS_LINES, _RUN])


def key_volume(secret_name: str) -> tuple[dict, dict]:
    """(pod volume, gate mount) of the API key Secret. Group-readable: the pod's fsGroup (the gate's group) owns the
    files of a Secret volume."""
    secret = {"secretName": secret_name, "items": [{"key": KEY_FILE, "path": KEY_FILE}], "defaultMode": 0o440}
    return {"name": "router-api-key", "secret": secret}, {"name": "router-api-key", "mountPath": KEY_DIR, "readOnly": True}


def gate_container(
    spec: ServingSpec, *, image: str, python: list[str], listen_port: int, env: list[dict], mounts: list[dict], security: dict,
    open_paths: tuple[str, ...] = OPEN_PATHS, ready_path: str = "/readiness", metrics: tuple[int, tuple[str, ...]] | None = None,
) -> dict:
    """The gate as a container of the router pod, on the `http` port, in front of the router on ROUTER_PORT.

    open_paths: the router's health paths, passed without a key; ready_path: the one of them that says the router
    serves. metrics (port, paths): the router serves its metrics on its HTTP listener, and the gate opens a second,
    metrics-only listener on that port, the pod's `metrics` port."""
    http = {"port": HTTP_PORT_NAME}
    ports = [{"name": HTTP_PORT_NAME, "containerPort": listen_port, "protocol": "TCP"}]
    gate_env = [
        *env,
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "GATE_PORT", "value": str(listen_port)},
        {"name": "GATE_UPSTREAM", "value": f"http://{ROUTER_HOST}:{ROUTER_PORT}"},
        {"name": "GATE_KEY_FILE", "value": f"{KEY_DIR}/{KEY_FILE}"},
        {"name": "GATE_OPEN_PATHS", "value": ",".join(open_paths)},
        {"name": "GATE_MAX_BODY", "value": str(MAX_BODY)},
    ]
    if metrics is not None:
        metrics_port, metrics_paths = metrics
        ports.append({"name": ROUTER_METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"})
        gate_env += [{"name": "GATE_METRICS_PORT", "value": str(metrics_port)}, {"name": "GATE_METRICS_PATHS", "value": ",".join(metrics_paths)}]
    return {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*python, "-c", GATE_SCRIPT if metrics is None else METRICS_GATE_SCRIPT],
        "env": gate_env,
        "ports": ports,
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": security,
        # Readiness through the gate: the pod takes traffic once the gate answers and the router behind it is ready.
        "readinessProbe": {"httpGet": {**http, "path": ready_path}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        # Liveness of the gate alone (the router has its own): the listener accepts connections.
        "livenessProbe": {"tcpSocket": http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
        "volumeMounts": mounts,
    }


def local_probe(python: list[str], path: str) -> dict:
    """An exec probe that GETs `path` from the router on its in-pod listener (a kubelet httpGet cannot reach
    127.0.0.1 of the pod); any error or a status other than 2xx fails it."""
    code = f"import urllib.request; urllib.request.urlopen('http://{ROUTER_HOST}:{ROUTER_PORT}{path}', timeout=4)"
    return {"exec": {"command": [*python, "-c", code]}}


def local_tcp_probe(python: list[str]) -> dict:
    """An exec probe that connects to the router's in-pod listener, as a kubelet tcpSocket probe would: for a
    router whose health path fails until its backends serve, which must not restart it while they load."""
    code = f"import socket; socket.create_connection(('{ROUTER_HOST}', {ROUTER_PORT}), timeout=4).close()"
    return {"exec": {"command": [*python, "-c", code]}}
