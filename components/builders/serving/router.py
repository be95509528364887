"""The P/D router: vllm-router in prefill/decode mode, discovering prefill and decode pods by label.

vllm-router (vllm-project/router) sends each request to a prefill pod (max_tokens=1, which produces the KV cache
and its NIXL transfer parameters) and then to a decode pod that pulls the KV blocks over NIXL and streams the
answer. With `--service-discovery` it watches pods in the namespace (RBAC: get/list/watch pods) and adds the
ones matching `--prefill-selector` / `--decode-selector` (docs/environment/kubernetes.md, docs/cli_reference.md).

Image: vllm-project/router publishes only floating `nightly` images, so by default the router runs from its
pinned PyPI wheel and pinned dependency closure (`facts.versions.VLLM_ROUTER_PYPI`, each wheel by its sha256),
installed by an init container onto a pinned Python image. `serving.router.image` replaces both with an image that already has the
`vllm-router` entry point (e.g. one built from the same wheel for air-gapped clusters).
"""

from __future__ import annotations

import shlex

from facts.conventions import POOL_LABEL, SYSTEM_POOL
from components.builders.serving.common import HTTP_PORT_NAME, KAI_QUEUE_LABEL, KAI_SCHEDULER, ROUTER_METRICS_PORT_NAME, PlatformFacts, checkov_skips, endpoint_selector, meta, namespace, pod_labels, role_service_name, router_selector, selector_args, workload_name
from facts.conventions import DEPLOYMENT_LABEL, ENDPOINT_LABEL, METRICS_LABEL, REVISION_LABEL, ROLES, ROUTER
from components.builders.serving.engine import engine_for, engine_revision
from components.builders.serving.pods import startup_minutes
from stacks.config.stack import StackConfig
from stacks.plan import kv_transfer
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256, pin

CONTAINER_PORT = 8080
# vllm-router serves Prometheus metrics on its own listener (default 127.0.0.1:29000); bound to the pod IP here
# so the metrics stack can scrape it.
METRICS_PORT = 29000
LIB_DIR = "/opt/vllm-router"
RUN_AS = 65534  # nobody: the router needs no privileges and no writable root filesystem

NLB_ANNOTATIONS = {
    # AWS Load Balancer Controller (not the in-tree controller) provisions an NLB for `external`; `ip` targets
    # register pod IPs directly (no NodePort hop); `internal` keeps it off the internet.
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
}

IMAGE_SKIPS = (
    ("CKV_K8S_43", "images are pinned by tag in facts/versions.py; digests cannot be resolved in the offline render"),
    ("CKV_K8S_15", "IfNotPresent with a pinned tag: re-pulling on every start only adds registry round trips and rate-limit hits"),
)


def service_account(cfg: StackConfig) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(cfg, workload_name(cfg, ROUTER), ROUTER), "automountServiceAccountToken": True}


def role(cfg: StackConfig) -> dict:
    # Service discovery watches pods in this namespace only (--service-discovery-namespace), so a namespaced
    # Role with read verbs on pods is all it needs.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(cfg, workload_name(cfg, ROUTER), ROUTER),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }


def role_binding(cfg: StackConfig) -> dict:
    name = workload_name(cfg, ROUTER)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(cfg, name, ROUTER),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace(cfg)}],
    }


def discovery_selector(cfg: StackConfig, role: str) -> dict[str, str]:
    """The pods the router sends a role's requests to: the role's HTTP pods (multi-node workers carry the role label
    too but serve no API) of the current engine revision only, so a prefill pod and a decode pod the router pairs
    always run the same engine and connector build, also while a rollout replaces them."""
    return {**endpoint_selector(cfg, role), REVISION_LABEL: engine_revision(cfg)}


def aggregated_selector(cfg: StackConfig) -> dict[str, str]:
    """`serving.mode: aggregated`: every HTTP engine pod of the deployment serves whole requests, whatever its role."""
    return {DEPLOYMENT_LABEL: cfg.name, ENDPOINT_LABEL: "true", REVISION_LABEL: engine_revision(cfg)}


def router_args(cfg: StackConfig) -> list[str]:
    r = cfg.serving.router
    engine = engine_for(cfg)
    worker_wait = max(startup_minutes(cfg, role) for role in ROLES) * 60
    args = [
        "--host", "0.0.0.0",
        "--port", str(CONTAINER_PORT),
        "--service-discovery",
        "--service-discovery-namespace", namespace(cfg),
        "--service-discovery-port", str(engine.port(cfg)),
    ]
    if kv_transfer(cfg):
        args += [
            "--vllm-pd-disaggregation",
            "--prefill-selector", *selector_args(discovery_selector(cfg, "prefill")),
            "--decode-selector", *selector_args(discovery_selector(cfg, "decode")),
            "--prefill-policy", r.prefill_policy,
            "--decode-policy", r.decode_policy,
        ]
    else:
        # Aggregated: one pool of workers; the prefill policy (cache_aware by default) keeps prefix-cache locality.
        args += ["--selector", *selector_args(aggregated_selector(cfg)), "--policy", r.prefill_policy]
    return args + [
        "--worker-startup-timeout-secs", str(worker_wait),
        "--prometheus-host", "0.0.0.0",
        "--prometheus-port", str(METRICS_PORT),
    ]


def _security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
    }


REQUIREMENTS_FILE = "/tmp/router-requirements.txt"


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


def router_pod_template(cfg: StackConfig, facts: PlatformFacts, *, kai: bool = True) -> dict:
    """Pod template of the router. Under Grove every clique of a PodCliqueSet must use the same scheduler, so the
    router is KAI-scheduled there too; as a Deployment it uses the default scheduler (it needs no gang)."""
    r = cfg.serving.router
    http = {"port": HTTP_PORT_NAME}
    tmp = {"name": "tmp", "mountPath": "/tmp"}
    container = {
        "name": "router",
        "imagePullPolicy": "IfNotPresent",
        "args": router_args(cfg),
        "env": [{"name": "HOME", "value": "/tmp"}],
        "ports": [
            {"name": HTTP_PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"},
            {"name": ROUTER_METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "securityContext": _security(),
        "livenessProbe": {"httpGet": {**http, "path": "/liveness"}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
        # Readiness on the backends: /readiness is true once the router has a healthy prefill and decode pod of the
        # revision it selects (vllm-router 0.1.17, measured with no workers: 503 {"status":"not_ready","reason":"no
        # healthy prefill workers, no healthy decode workers",...}; /liveness 200). That is what makes an engine rollout coordinated: a new router pod (new revision in
        # its selectors) takes traffic only when new-revision pods of both roles serve, and until then the old router
        # pods keep pairing old-revision pods (maxUnavailable 0). `pulumi up` does not wait for it (skipAwait on the
        # Deployment): a first model load takes up to an hour; `python -m ops verify` checks the router afterwards.
        "readinessProbe": {"httpGet": {**http, "path": "/readiness"}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        "volumeMounts": [tmp],
    }
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    spec: dict = {
        "serviceAccountName": workload_name(cfg, ROUTER),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "nodeSelector": {POOL_LABEL: SYSTEM_POOL},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": router_selector(cfg)}}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ],
        "containers": [container],
        "volumes": volumes,
    }
    if r.image:
        container.update(image=r.image, command=["vllm-router"])
    else:
        image = pin("vllm-router-python").image_ref
        container.update(image=image, command=["python", "-m", "vllm_router.launch_router"])
        container["env"].append({"name": "PYTHONPATH", "value": LIB_DIR})
        lib = {"name": "router-lib", "mountPath": LIB_DIR}
        container["volumeMounts"].append({**lib, "readOnly": True})
        volumes.append({"name": "router-lib", "emptyDir": {"sizeLimit": "1Gi"}})
        spec["initContainers"] = [
            {
                "name": "install-router",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": install_command(),
                "env": [{"name": "HOME", "value": "/tmp"}],
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                "securityContext": _security(),
                "volumeMounts": [lib, tmp],
            }
        ]
    if kai:
        spec["schedulerName"] = KAI_SCHEDULER
    labels = pod_labels(cfg, ROUTER, facts, endpoint=False)
    return {"metadata": {"labels": labels, "annotations": router_checkov_skips()}, "spec": spec}


def router_checkov_skips() -> dict[str, str]:
    """On the router's pod template wherever it runs (Deployment, or the Grove clique checkov sees lifted out)."""
    return checkov_skips(
        *IMAGE_SKIPS,
        ("CKV_K8S_38", "the router discovers prefill/decode pods through the Kubernetes API (get/list/watch pods, namespaced Role)"),
    )


def deployment(cfg: StackConfig, facts: PlatformFacts) -> dict:
    name = workload_name(cfg, ROUTER)
    tpl = router_pod_template(cfg, facts, kai=False)
    # Outside KAI: the router is plain CPU work on the system pool and needs neither gang nor GPU quota.
    tpl["metadata"]["labels"] = {k: v for k, v in tpl["metadata"]["labels"].items() if k != KAI_QUEUE_LABEL}
    skips = router_checkov_skips()
    # Pulumi's await for a Deployment waits for ready replicas (10 min by default); the router is Ready only once the
    # engines serve, which a first model load takes far longer than.
    m = meta(cfg, name, ROUTER, annotations={**skips, "pulumi.com/skipAwait": "true"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": m,
        "spec": {
            "replicas": cfg.serving.router.replicas,
            "selector": {"matchLabels": router_selector(cfg)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": tpl,
        },
    }


def service(cfg: StackConfig) -> dict:
    r = cfg.serving.router
    name = workload_name(cfg, ROUTER)
    nlb = r.service_type == "internalNlb"
    spec: dict = {
        "type": "LoadBalancer" if nlb else "ClusterIP",
        "selector": router_selector(cfg),
        "ports": [{"name": HTTP_PORT_NAME, "port": r.port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(cfg, name, ROUTER, annotations=NLB_ANNOTATIONS if nlb else None), "spec": spec}


def metrics_service(cfg: StackConfig) -> dict:
    """Headless Service the ServiceMonitor scrapes the router through (the client Service may be an NLB and must not
    expose metrics)."""
    m = meta(cfg, f"{workload_name(cfg, ROUTER)}-metrics", ROUTER)
    m["labels"][METRICS_LABEL] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": m,
        "spec": {
            "clusterIP": "None",
            "selector": router_selector(cfg),
            "ports": [{"name": ROUTER_METRICS_PORT_NAME, "port": METRICS_PORT, "targetPort": ROUTER_METRICS_PORT_NAME, "protocol": "TCP"}],
        },
    }


def role_service(cfg: StackConfig, role: str) -> dict:
    """Headless Service over a role's HTTP pods: stable DNS for debugging and the engines' scrape target. Named
    `role_service_name` (`<deployment>-<role>-api`), never the LeaderWorkerSet's name, which LWS takes for its own
    headless Service."""
    m = meta(cfg, role_service_name(cfg, role), role)
    m["labels"][METRICS_LABEL] = "true"
    port = engine_for(cfg).port(cfg)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": m,
        "spec": {
            "clusterIP": "None",
            # Not-ready pods too: a loading engine's /metrics shows its progress.
            "publishNotReadyAddresses": True,
            "selector": endpoint_selector(cfg, role),
            "ports": [{"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }


def router_url(cfg: StackConfig) -> str:
    return f"http://{workload_name(cfg, ROUTER)}.{namespace(cfg)}.svc.cluster.local:{cfg.serving.router.port}"

