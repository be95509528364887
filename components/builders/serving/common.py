"""Names, labels and selectors shared by every serving builder, and the platform facts they read.

Selectors use only `disagg.io/*` labels: Grove overwrites `app.kubernetes.io/name`, `component` and
`part-of` on the PodCliques and pods it creates (and finds its own pods by `part-of`), so a selector on those
would match nothing under `grove` (grove `operator/internal/controller/podcliqueset/components/podclique`,
`getLabels`). The standard `app.kubernetes.io/*` labels go on the objects this project authors.
"""

from __future__ import annotations

from facts.conventions import ROUTER, PART_OF, ENDPOINT_LABEL, PART_LABEL, DEPLOYMENT_LABEL
from dataclasses import dataclass, field

from components.builders.platform_objects import Pack, role_packs
from components.builders.platform_values import KAI_SCHEDULER_NAME
from facts.conventions import ROLE_LABEL
from stacks.config.stack import StackConfig



KAI_SCHEDULER = KAI_SCHEDULER_NAME  # the scheduler the platform installs
KAI_QUEUE_LABEL = "kai.scheduler/queue"
# KAI's priority class for serving: non-preemptible, uses only in-quota GPUs (the platform gives the serving
# queue a GPU quota; KAI docs/priority/README.md).
KAI_PRIORITY_CLASS = "inference"

HTTP_PORT_NAME = "http"
ROUTER_METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class PlatformFacts:
    """What serving needs to know from the platform, as plain values (the component reads them off the Platform)."""

    queue_name: str
    topology_name: str
    # Grove ClusterTopologyBinding domain and KAI Topology node label a multi-node replica prefers to pack into.
    pack_domain: str = "block"
    pack_node_label: str = "topology.k8s.aws/network-node-layer-2"
    prometheus_url: str = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
    monitoring_namespace: str = "monitoring"
    monitoring_release_label: str = "kube-prometheus-stack"
    # Per role: the Topology its pools all satisfy and the level to pack on (platform_objects.role_packs). KAI drops
    # nodes lacking any level label of a workload's Topology, so a role must never name levels its nodes lack.
    packs: dict[str, Pack] = field(default_factory=dict)

    @classmethod
    def defaults(cls, cfg: StackConfig) -> PlatformFacts:
        kai = cfg.platform.kai
        packs = role_packs(cfg.gpu_pools, topology=kai.topology_name, workload_api=cfg.platform.workload_api)
        return cls(queue_name=kai.queue.name, topology_name=kai.topology_name, packs=packs)

    def pack_for(self, role: str) -> Pack:
        """The role's pack; without per-role facts, the single topology and level of the fields above."""
        if role in self.packs:
            return self.packs[role]
        return Pack(self.topology_name, self.pack_domain, self.pack_node_label, 3)


def namespace(cfg: StackConfig) -> str:
    return cfg.namespace


def workload_name(cfg: StackConfig, role: str) -> str:
    """`<deployment>-prefill`, `<deployment>-decode`, `<deployment>-router`."""
    return f"{cfg.name}-{role}"


def role_service_name(cfg: StackConfig, role: str) -> str:
    """`<deployment>-<role>-api`: the headless Service over a role's HTTP pods (scrape target, stable DNS). Not the
    workload's name: LWS creates (or reuses, if it exists) a headless Service named after the LeaderWorkerSet for its
    pods' hostnames (lws v0.10.0 pkg/utils/controller/controller_utils.go CreateHeadlessServiceIfNotExists), and the
    two would fight over one object."""
    return f"{workload_name(cfg, role)}-api"


def hf_secret_name(cfg: StackConfig) -> str:
    return f"{cfg.name}-hf-token"


def model_cache_claim_name(cfg: StackConfig) -> str:
    return f"{cfg.name}-model-cache"


def served_model_name(cfg: StackConfig) -> str:
    return cfg.serving.model.served_name or cfg.serving.model.id


def labels(cfg: StackConfig, component: str, name: str | None = None) -> dict[str, str]:
    """Standard labels of an object this project authors (component: prefill | decode | router | serving)."""
    return {
        "app.kubernetes.io/name": name or workload_name(cfg, component),
        "app.kubernetes.io/instance": cfg.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        ROLE_LABEL: component,
        DEPLOYMENT_LABEL: cfg.name,
    }


def meta(cfg: StackConfig, name: str, component: str, **extra) -> dict:
    """metadata of a namespaced object: explicit name and namespace, standard labels."""
    m = {"name": name, "namespace": namespace(cfg), "labels": labels(cfg, component, name)}
    m.update({k: v for k, v in extra.items() if v})
    return m


def role_selector(cfg: StackConfig, role: str) -> dict[str, str]:
    """Every pod of a role (workers included)."""
    return {ROLE_LABEL: role, DEPLOYMENT_LABEL: cfg.name}


def endpoint_selector(cfg: StackConfig, role: str) -> dict[str, str]:
    """The pods of a role that serve HTTP (what the router, the role Service and the scrape target)."""
    return {**role_selector(cfg, role), ENDPOINT_LABEL: "true"}


def router_selector(cfg: StackConfig) -> dict[str, str]:
    return role_selector(cfg, ROUTER)


def pod_labels(cfg: StackConfig, role: str, facts: PlatformFacts, *, endpoint: bool, part: str | None = None) -> dict[str, str]:
    """Labels of a pod template: the selector labels, the KAI queue, and the standard labels for humans."""
    out = {**labels(cfg, role), **role_selector(cfg, role), KAI_QUEUE_LABEL: facts.queue_name}
    if endpoint:
        out[ENDPOINT_LABEL] = "true"
    if part:
        out[PART_LABEL] = part
    return out


def selector_args(selector: dict[str, str]) -> list[str]:
    """`{"a": "b"}` -> `["a=b"]`, sorted: the `key=value` form the router's selector flags take."""
    return [f"{k}={v}" for k, v in sorted(selector.items())]


def checkov_skips(*skips: tuple[str, str]) -> dict[str, str]:
    """Checkov suppressions as annotations (`checkov.io/skip<N>: CKV_K8S_xx=<reason>`), each with its reason."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, start=1)}
