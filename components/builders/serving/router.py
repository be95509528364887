"""The router role around its process: RBAC, pod template, Deployment, client and metrics Services, role Services.

What the router runs (image, command line, ports, probes) is the engine's router (`Engine.router`, e.g.
vllm_router.py for vLLM); this module gives it a pod on the system pool, its Kubernetes API access for discovering
engine pods by label, and its Services.
"""

from __future__ import annotations

from facts.conventions import POOL_LABEL, SYSTEM_POOL
from components.builders.serving.common import HTTP_PORT_NAME, KAI_QUEUE_LABEL, KAI_SCHEDULER, ROUTER_METRICS_PORT_NAME, checkov_skips, endpoint_selector, meta, namespace, pod_labels, role_service_name, router_selector, workload_name
from components.builders.serving.spec import PlatformFacts, ServingSpec
from facts.conventions import DEPLOYMENT_LABEL, ENDPOINT_LABEL, METRICS_LABEL, REVISION_LABEL, ROUTER
from components.builders.serving.engine import engine_for, engine_revision

# The router container's requests and limits unless its process asks for others.
ROUTER_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
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


def api_access(spec: ServingSpec) -> bool:
    """Whether the engine's router finds the engine pods through the Kubernetes API (vllm-router's service discovery);
    TensorRT-LLM's orchestrator reads its discovery store instead and gets no token."""
    return engine_for(spec).router.kubernetes_discovery


def service_account(spec: ServingSpec) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(spec, workload_name(spec, ROUTER), ROUTER), "automountServiceAccountToken": api_access(spec)}


def role(spec: ServingSpec) -> dict:
    # Service discovery watches pods in this namespace only (--service-discovery-namespace), so a namespaced
    # Role with read verbs on pods is all it needs.
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(spec, workload_name(spec, ROUTER), ROUTER),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}] if api_access(spec) else [],
    }


def role_binding(spec: ServingSpec) -> dict:
    name = workload_name(spec, ROUTER)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(spec, name, ROUTER),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace(spec)}],
    }


def discovery_selector(spec: ServingSpec, role: str) -> dict[str, str]:
    """The pods the router sends a role's requests to: the role's HTTP pods (multi-node workers carry the role label
    too but serve no API) of the current engine revision only, so a prefill pod and a decode pod the router pairs
    always run the same engine and connector build, also while a rollout replaces them."""
    return {**endpoint_selector(spec, role), REVISION_LABEL: engine_revision(spec)}


def aggregated_selector(spec: ServingSpec) -> dict[str, str]:
    """`serving.mode: aggregated`: every HTTP engine pod of the deployment serves whole requests, whatever its role."""
    return {DEPLOYMENT_LABEL: spec.name, ENDPOINT_LABEL: "true", REVISION_LABEL: engine_revision(spec)}


def container_security() -> dict:
    """Of every router container: not root, nothing to escalate, no capabilities, a read-only root file system."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
    }


def router_pod_template(spec: ServingSpec, facts: PlatformFacts, *, kai: bool = True) -> dict:
    """Pod template of the router. Under Grove every clique of a PodCliqueSet must use the same scheduler, so the
    router is KAI-scheduled there too; as a Deployment it uses the default scheduler (it needs no gang)."""
    proc = engine_for(spec).router.process(spec)
    container = {
        "name": "router",
        "imagePullPolicy": "IfNotPresent",
        **{k: v for k, v in proc.container.items() if k != "resources"},
        "resources": proc.container.get("resources", ROUTER_RESOURCES),
        "securityContext": container_security(),
    }
    pod: dict = {
        "serviceAccountName": workload_name(spec, ROUTER),
        "automountServiceAccountToken": api_access(spec),
        "enableServiceLinks": False,
        "nodeSelector": {POOL_LABEL: SYSTEM_POOL},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": router_selector(spec)}}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ],
        "containers": [container, *proc.sidecars],
        "volumes": list(proc.volumes),
    }
    if proc.fs_group is not None:
        pod["securityContext"]["fsGroup"] = proc.fs_group
    if proc.init_containers:
        pod["initContainers"] = list(proc.init_containers)
    if kai:
        pod["schedulerName"] = KAI_SCHEDULER
    labels = pod_labels(spec, ROUTER, facts, endpoint=False)
    return {"metadata": {"labels": labels, "annotations": router_checkov_skips(spec)}, "spec": pod}


def router_checkov_skips(spec: ServingSpec) -> dict[str, str]:
    """On the router's pod template wherever it runs (Deployment, or the Grove clique checkov sees lifted out)."""
    if not api_access(spec):
        return checkov_skips(*IMAGE_SKIPS)
    return checkov_skips(
        *IMAGE_SKIPS,
        ("CKV_K8S_38", "the router discovers prefill/decode pods through the Kubernetes API (get/list/watch pods, namespaced Role)"),
    )


def deployment(spec: ServingSpec, facts: PlatformFacts) -> dict:
    name = workload_name(spec, ROUTER)
    tpl = router_pod_template(spec, facts, kai=False)
    # Outside KAI: the router is plain CPU work on the system pool and needs neither gang nor GPU quota.
    tpl["metadata"]["labels"] = {k: v for k, v in tpl["metadata"]["labels"].items() if k != KAI_QUEUE_LABEL}
    skips = router_checkov_skips(spec)
    # Pulumi's await for a Deployment waits for ready replicas (10 min by default); the router is Ready only once the
    # engines serve, which a first model load takes far longer than.
    m = meta(spec, name, ROUTER, annotations={**skips, "pulumi.com/skipAwait": "true"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": m,
        "spec": {
            "replicas": spec.router.replicas,
            "selector": {"matchLabels": router_selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": tpl,
        },
    }


def service(spec: ServingSpec) -> dict:
    r = spec.router
    name = workload_name(spec, ROUTER)
    nlb = r.service_type == "internalNlb"
    svc: dict = {
        "type": "LoadBalancer" if nlb else "ClusterIP",
        "selector": router_selector(spec),
        "ports": [{"name": HTTP_PORT_NAME, "port": r.port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
    }
    annotations = dict(NLB_ANNOTATIONS) if nlb else None
    if annotations is not None and r.nlb_keeps_client_ip:
        # Only the allowed CIDRs reach the NLB: the controller writes spec.loadBalancerSourceRanges into the inbound
        # rules of the NLB's frontend security group. The NLB keeps client addresses, so the router's NetworkPolicy
        # checks the same CIDRs (policies.router_ingress), and health-checks the router on its metrics port, which
        # that policy admits from the NLB's subnets only (AWS Load Balancer Controller guide/service/annotations:
        # target-group-attributes, healthcheck-port/-protocol/-path; loadBalancerSourceRanges).
        svc["loadBalancerSourceRanges"] = list(r.allowed_client_cidrs or ())
        annotations.update(
            {
                "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=true",
                "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port": str(engine_for(spec).router.metrics_port(spec)),
                "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": "http",
                "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path": engine_for(spec).router.metrics_path,
            }
        )
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(spec, name, ROUTER, annotations=annotations), "spec": svc}


def metrics_service(spec: ServingSpec) -> dict:
    """Headless Service the ServiceMonitor scrapes the router through (the client Service may be an NLB and must not
    expose metrics)."""
    m = meta(spec, f"{workload_name(spec, ROUTER)}-metrics", ROUTER)
    m["labels"][METRICS_LABEL] = "true"
    rt = engine_for(spec).router
    # A router that serves its metrics on its HTTP listener has no separate `metrics` container port.
    port = rt.metrics_port(spec)
    target = ROUTER_METRICS_PORT_NAME if port != rt.container_port else HTTP_PORT_NAME
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": m,
        "spec": {
            "clusterIP": "None",
            "selector": router_selector(spec),
            "ports": [{"name": ROUTER_METRICS_PORT_NAME, "port": port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def role_service(spec: ServingSpec, role: str) -> dict:
    """Headless Service over a role's HTTP pods: stable DNS for debugging and the engines' scrape target. Named
    `role_service_name` (`<deployment>-<role>-api`), never the LeaderWorkerSet's name, which LWS takes for its own
    headless Service."""
    m = meta(spec, role_service_name(spec, role), role)
    m["labels"][METRICS_LABEL] = "true"
    port = engine_for(spec).port(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": m,
        "spec": {
            "clusterIP": "None",
            # Not-ready pods too: a loading engine's /metrics shows its progress.
            "publishNotReadyAddresses": True,
            "selector": endpoint_selector(spec, role),
            "ports": [{"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }


def router_url(spec: ServingSpec) -> str:
    return f"http://{workload_name(spec, ROUTER)}.{namespace(spec)}.svc.cluster.local:{spec.router.port}"

