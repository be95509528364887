"""vllm-router (vllm-project/router): the router of the vLLM engine, in prefill/decode mode or over one pool.

vllm-router sends each request to a prefill pod (max_tokens=1, which produces the KV cache and its NIXL transfer
parameters) and then to a decode pod that pulls the KV blocks over NIXL and streams the answer. With
`--service-discovery` it watches pods in the namespace (RBAC: get/list/watch pods) and adds the ones matching
`--prefill-selector` / `--decode-selector` (docs/environment/kubernetes.md, docs/cli_reference.md).

Image: vllm-project/router publishes only floating `nightly` images, so by default the router runs from its
pinned PyPI wheel and pinned dependency closure (`facts.versions.VLLM_ROUTER_PYPI`, each wheel by its sha256),
installed by an init container onto a pinned Python image. `serving.router.image` replaces both with an image that
already has the `vllm-router` entry point (e.g. one built from the same wheel for air-gapped clusters).

Only the vLLM engine module (vllm.py) uses this one: it is that engine's `router`.
"""

from __future__ import annotations

import shlex

from components.builders.serving import gate
from components.builders.serving.common import HTTP_PORT_NAME, ROUTER_METRICS_PORT_NAME, namespace, router_api_key_secret_name, selector_args, startup_minutes
from components.builders.serving.engine import RouterProcess, engine_for
from components.builders.serving.router import RUN_AS, aggregated_selector, container_security, discovery_selector
from components.builders.serving.spec import ServingSpec
from facts.conventions import ROLES
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256, pin

CONTAINER_PORT = 8080
# vllm-router serves Prometheus metrics on its own listener (default 127.0.0.1:29000); bound to the pod IP here
# so the metrics stack can scrape it.
METRICS_PORT = 29000
LIB_DIR = "/opt/vllm-router"
REQUIREMENTS_FILE = "/tmp/router-requirements.txt"


def router_args(spec: ServingSpec) -> list[str]:
    r = spec.router
    engine = engine_for(spec)
    worker_wait = max(startup_minutes(spec, role) for role in ROLES) * 60
    # With an API key the auth gate (gate.py) owns the pod's HTTP port and the router listens inside the pod only.
    host, port = (gate.ROUTER_HOST, gate.ROUTER_PORT) if r.api_key else ("0.0.0.0", CONTAINER_PORT)
    args = [
        "--host", host,
        "--port", str(port),
        "--service-discovery",
        "--service-discovery-namespace", namespace(spec),
        "--service-discovery-port", str(engine.port(spec)),
    ]
    if spec.kv_transfer:
        args += [
            "--vllm-pd-disaggregation",
            "--prefill-selector", *selector_args(discovery_selector(spec, "prefill")),
            "--decode-selector", *selector_args(discovery_selector(spec, "decode")),
            "--prefill-policy", r.prefill_policy,
            "--decode-policy", r.decode_policy,
        ]
    else:
        # Aggregated: one pool of workers; the prefill policy (cache_aware by default) keeps prefix-cache locality.
        args += ["--selector", *selector_args(aggregated_selector(spec)), "--policy", r.prefill_policy]
    return args + [
        "--worker-startup-timeout-secs", str(worker_wait),
        "--prometheus-host", "0.0.0.0",
        "--prometheus-port", str(METRICS_PORT),
    ]


def requirements() -> list[str]:
    """One requirements line per package: exact version and the sha256 of its wheel. pip takes `--hash` only from a
    requirements file, and with --require-hashes installs nothing whose bytes differ from what was resolved."""
    return [f"{k}=={v} --hash=sha256:{VLLM_ROUTER_PYPI_SHA256[k]}" for k, v in VLLM_ROUTER_PYPI.items()]


def install_command() -> list[str]:
    pip = [
        "python", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-deps",
        "--only-binary=:all:", "--require-hashes", "--target", LIB_DIR, "-r", REQUIREMENTS_FILE,
    ]
    script = f"printf '%s\\n' {shlex.join(requirements())} > {REQUIREMENTS_FILE} && exec {shlex.join(pip)}"
    return ["/bin/sh", "-c", script]


class VllmRouter:
    kind = "vllm-router"
    container_port = CONTAINER_PORT
    metrics_path = "/metrics"
    kubernetes_discovery = True  # --service-discovery watches pods

    def metrics_port(self, spec: ServingSpec) -> int:
        return METRICS_PORT

    def process(self, spec: ServingSpec) -> RouterProcess:
        http = {"port": HTTP_PORT_NAME}
        tmp = {"name": "tmp", "mountPath": "/tmp"}
        container = {
            "args": router_args(spec),
            "env": [{"name": "HOME", "value": "/tmp"}],
            "ports": [
                {"name": HTTP_PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"},
                {"name": ROUTER_METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
            ],
            "livenessProbe": {"httpGet": {**http, "path": "/liveness"}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
            # Readiness on the backends: /readiness is true once the router has a healthy prefill and decode pod of
            # the revision it selects (vllm-router 0.1.17, measured with no workers: 503 {"status":"not_ready",
            # "reason":"no healthy prefill workers, no healthy decode workers",...}; /liveness 200). That is what
            # makes an engine rollout coordinated: a new router pod (new revision in its selectors) takes traffic only
            # when new-revision pods of both roles serve, and until then the old router pods keep pairing
            # old-revision pods (maxUnavailable 0). `pulumi up` does not wait for it (skipAwait on the Deployment): a
            # first model load takes up to an hour; `python -m ops verify` checks the router afterwards.
            "readinessProbe": {"httpGet": {**http, "path": "/readiness"}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
            "volumeMounts": [tmp],
        }
        volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
        lib = {"name": "router-lib", "mountPath": LIB_DIR}
        if spec.router.image:
            image, python = spec.router.image, ["python3"]
            container.update(image=image, command=["vllm-router"])
            py_env: list[dict] = []
        else:
            image, python = pin("vllm-router-python").image_ref, ["python"]
            container.update(image=image, command=["python", "-m", "vllm_router.launch_router"])
            py_env = [{"name": "PYTHONPATH", "value": LIB_DIR}]
            container["env"] += py_env
            container["volumeMounts"].append({**lib, "readOnly": True})
            volumes.append({"name": "router-lib", "emptyDir": {"sizeLimit": "1Gi"}})
        sidecars: list[dict] = []
        if spec.router.api_key:
            # The gate takes the `http` port; the router serves inside the pod, probed there (gate.py).
            container["ports"] = [p for p in container["ports"] if p["name"] != HTTP_PORT_NAME]
            container["livenessProbe"] = {**gate.local_probe(python, "/liveness"), "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
            container["readinessProbe"] = {**gate.local_probe(python, "/readiness"), "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5}
            key_vol, key_mount = gate.key_volume(router_api_key_secret_name(spec))
            volumes.append(key_vol)
            mounts = [tmp, key_mount] + ([{**lib, "readOnly": True}] if not spec.router.image else [])
            env = [{"name": "HOME", "value": "/tmp"}, *py_env]
            sidecars.append(gate.gate_container(spec, image=image, python=python, listen_port=CONTAINER_PORT, env=env, mounts=mounts, security=container_security()))
        fs_group = RUN_AS if spec.router.api_key else None
        if spec.router.image:
            return RouterProcess(container=container, volumes=volumes, sidecars=sidecars, fs_group=fs_group)
        install = {
            "name": "install-router",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": install_command(),
            "env": [{"name": "HOME", "value": "/tmp"}],
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "securityContext": container_security(),
            "volumeMounts": [lib, tmp],
        }
        return RouterProcess(container=container, volumes=volumes, init_containers=[install], sidecars=sidecars, fs_group=fs_group)


VLLM_ROUTER = VllmRouter()
