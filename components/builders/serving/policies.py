"""Everything around the workloads: namespace, token Secret, cache claim, disruption budgets, network policies and
the engine scrape config."""

from __future__ import annotations

from components.builders.serving.common import HTTP_PORT_NAME, ROUTER_METRICS_PORT_NAME, hf_secret_name, labels, meta, model_cache_claim_name, namespace, role_selector, router_api_key_secret_name, router_selector, workload_name
from facts.conventions import METRICS_LABEL, NAMESPACE_NAME_LABEL, PART_OF, ROLES, ROUTER
from components.builders.serving.engine import engine_for
from components.builders.serving.spec import PlatformFacts, ServingSpec



def namespace_object(spec: ServingSpec) -> dict:
    # Pod Security admission at `privileged` enforcement: engine pods mount a host path (the NVMe model cache) and
    # EFA pods add IPC_LOCK, which `baseline` refuses; `restricted` is still audited and warned about so anything
    # else that drifts from it shows up.
    lbl = {
        **labels(spec, "serving", spec.namespace),
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace(spec), "labels": lbl}}


def hf_secret(spec: ServingSpec) -> dict:
    """The Secret carrying the Hugging Face token, without its value: the component adds `stringData` from the
    Pulumi secret, so the value never exists in plain data."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(spec, hf_secret_name(spec), "serving"), "type": "Opaque"}


def router_api_key_secret(spec: ServingSpec) -> dict:
    """The Secret holding the router's API key (serving.router.apiKey), without its value, like `hf_secret`."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(spec, router_api_key_secret_name(spec), ROUTER), "type": "Opaque"}


def model_cache_claim(spec: ServingSpec) -> dict:
    """One claim shared by every engine pod (ReadWriteMany: pods of both roles on many nodes mount it at once)."""
    mc = spec.model_cache
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(spec, model_cache_claim_name(spec), "serving"),
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": mc.storage_class,
            "resources": {"requests": {"storage": f"{mc.pvc_size_gb}Gi"}},
        },
    }


def pdb(spec: ServingSpec, component: str) -> dict:
    """At most one pod of a role (or of the router) evicted at a time by drains and node upgrades. For a
    multi-node role, evicting any pod restarts its whole group, so one pod is one replica."""
    selector = router_selector(spec) if component == ROUTER else role_selector(spec, component)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(spec, workload_name(spec, component), component),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def _pods(selector: dict[str, str]) -> dict:
    return {"podSelector": {"matchLabels": selector}}


def _monitoring(facts: PlatformFacts) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: facts.monitoring_namespace}}}


def router_ingress(spec: ServingSpec, facts: PlatformFacts) -> list[dict]:
    """Who reaches the router: clients on its HTTP port, the metrics stack on its metrics port.

    Without `allowedClientCidrs` / `allowedClientNamespaces` any source reaches the HTTP port (in-cluster clients of
    every namespace, and an internal NLB, whose `ip` targets see the NLB's own addresses: the target group of a TCP
    listener does not keep client addresses by default, AWS ELB docs, network/load-balancer-target-groups.html
    "Client IP preservation"). With them, only those CIDRs (ipBlock) and the pods of those namespaces. An internal
    NLB then keeps client addresses (router.service: preserve_client_ip.enabled=true), so what arrives from it is the
    client's own address, checked against the same CIDRs; the NLB's health checks still come from its own addresses
    in the private subnets and go to the metrics port (router.service), which is admitted from those subnets only.
    """
    r = spec.router
    http = [{"protocol": "TCP", "port": HTTP_PORT_NAME}]
    metrics = [{"protocol": "TCP", "port": ROUTER_METRICS_PORT_NAME}]
    if not r.restricted:
        clients: dict = {"ports": http}
    else:
        peers = [{"ipBlock": {"cidr": c}} for c in r.allowed_client_cidrs or ()]
        peers += [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}} for ns in r.allowed_client_namespaces or ()]
        clients = {"from": peers, "ports": http}
    out = [clients, {"from": [_monitoring(facts)], "ports": metrics}]
    if r.nlb_keeps_client_ip:
        out.append({"from": [{"ipBlock": {"cidr": c}} for c in r.nlb_subnet_cidrs], "ports": metrics})
    return out


def network_policies(spec: ServingSpec, facts: PlatformFacts) -> list[dict]:
    """Ingress allow-list on top of a namespace-wide default deny.

    clients -> router (`router_ingress`: any source, or the configured CIDRs and namespaces); router ->
    prefill/decode HTTP; prefill <-> decode on every port (the NIXL side channel, and UCX's TCP transport, which
    picks ephemeral ports; RDMA over EFA bypasses the pod network altogether); pods of one role <-> each other on
    every port (torch.distributed, the DP coordinator and NCCL bootstrap inside a multi-node group); the metrics
    stack -> engine and router metrics.
    """
    port = engine_for(spec).port(spec)

    def policy(name: str, component: str, selector: dict, ingress: list[dict]) -> dict:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(spec, f"{spec.name}-{name}", component),
            "spec": {"podSelector": {"matchLabels": selector} if selector else {}, "policyTypes": ["Ingress"], "ingress": ingress},
        }

    out = [policy("default-deny", "serving", {}, [])]
    out.append(policy("router", ROUTER, router_selector(spec), router_ingress(spec, facts)))
    for role in ROLES:
        peer = "decode" if role == "prefill" else "prefill"
        out.append(
            policy(
                role,
                role,
                role_selector(spec, role),
                [
                    {"from": [_pods(router_selector(spec)), _monitoring(facts)], "ports": [{"protocol": "TCP", "port": port}]},
                    {"from": [_pods(role_selector(spec, peer)), _pods(role_selector(spec, role))]},
                ],
            )
        )
    return out


def service_monitor(spec: ServingSpec, facts: PlatformFacts) -> dict:
    """Scrapes the engines (through the role Services, `http` port) and the router (its metrics Service)."""
    engine = engine_for(spec)
    m = meta(spec, f"{spec.name}-serving", "serving")
    # kube-prometheus-stack's Prometheus selects ServiceMonitors by its release label.
    m["labels"]["release"] = facts.monitoring_release_label
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": m,
        "spec": {
            "namespaceSelector": {"matchNames": [namespace(spec)]},
            "selector": {"matchLabels": {METRICS_LABEL: "true", "app.kubernetes.io/part-of": PART_OF}},
            # Keep the role on every series, so dashboards and the KEDA queries can split prefill from decode.
            "targetLabels": ["app.kubernetes.io/component"],
            "endpoints": [
                {"port": HTTP_PORT_NAME, "path": engine.metrics_path, "interval": "15s"},
                {"port": ROUTER_METRICS_PORT_NAME, "path": engine.router.metrics_path, "interval": "15s"},
            ],
        },
    }
