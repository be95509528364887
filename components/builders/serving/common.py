"""Names, labels and selectors shared by every serving builder.

Selectors use only `disagg.io/*` labels: Grove overwrites `app.kubernetes.io/name`, `component` and
`part-of` on the PodCliques and pods it creates (and finds its own pods by `part-of`), so a selector on those
would match nothing under `grove` (grove `operator/internal/controller/podcliqueset/components/podclique`,
`getLabels`). The standard `app.kubernetes.io/*` labels go on the objects this project authors.
"""

from __future__ import annotations

from facts.conventions import DEPLOYMENT_LABEL, ENDPOINT_LABEL, PART_LABEL, PART_OF, ROLE_LABEL, ROUTER

from components.builders.platform_values import KAI_SCHEDULER_NAME
from components.builders.serving.spec import PlatformFacts, ServingSpec

KAI_SCHEDULER = KAI_SCHEDULER_NAME  # the scheduler the platform installs
KAI_QUEUE_LABEL = "kai.scheduler/queue"
# KAI's priority class for serving: non-preemptible, uses only in-quota GPUs (the platform gives the serving
# queue a GPU quota; KAI docs/priority/README.md).
KAI_PRIORITY_CLASS = "inference"

HTTP_PORT_NAME = "http"
ROUTER_METRICS_PORT_NAME = "metrics"


def namespace(spec: ServingSpec) -> str:
    return spec.namespace


def workload_name(spec: ServingSpec, role: str) -> str:
    """`<deployment>-prefill`, `<deployment>-decode`, `<deployment>-router`."""
    return f"{spec.name}-{role}"


def role_service_name(spec: ServingSpec, role: str) -> str:
    """`<deployment>-<role>-api`: the headless Service over a role's HTTP pods (scrape target, stable DNS). Not the
    workload's name: LWS creates (or reuses, if it exists) a headless Service named after the LeaderWorkerSet for its
    pods' hostnames (lws v0.10.0 pkg/utils/controller/controller_utils.go CreateHeadlessServiceIfNotExists), and the
    two would fight over one object."""
    return f"{workload_name(spec, role)}-api"


def hf_secret_name(spec: ServingSpec) -> str:
    return f"{spec.name}-hf-token"


def router_api_key_secret_name(spec: ServingSpec) -> str:
    return f"{spec.name}-router-api-key"


def model_cache_claim_name(spec: ServingSpec) -> str:
    return f"{spec.name}-model-cache"


def served_model_name(spec: ServingSpec) -> str:
    return spec.model.served_name


def labels(spec: ServingSpec, component: str, name: str | None = None) -> dict[str, str]:
    """Standard labels of an object this project authors (component: prefill | decode | router | serving)."""
    return {
        "app.kubernetes.io/name": name or workload_name(spec, component),
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        ROLE_LABEL: component,
        DEPLOYMENT_LABEL: spec.name,
    }


def meta(spec: ServingSpec, name: str, component: str, **extra) -> dict:
    """metadata of a namespaced object: explicit name and namespace, standard labels."""
    m = {"name": name, "namespace": namespace(spec), "labels": labels(spec, component, name)}
    m.update({k: v for k, v in extra.items() if v})
    return m


def role_selector(spec: ServingSpec, role: str) -> dict[str, str]:
    """Every pod of a role (workers included)."""
    return {ROLE_LABEL: role, DEPLOYMENT_LABEL: spec.name}


def endpoint_selector(spec: ServingSpec, role: str) -> dict[str, str]:
    """The pods of a role that serve HTTP (what the router, the role Service and the scrape target)."""
    return {**role_selector(spec, role), ENDPOINT_LABEL: "true"}


def router_selector(spec: ServingSpec) -> dict[str, str]:
    return role_selector(spec, ROUTER)


def pod_labels(spec: ServingSpec, role: str, facts: PlatformFacts, *, endpoint: bool, part: str | None = None) -> dict[str, str]:
    """Labels of a pod template: the selector labels, the KAI queue, and the standard labels for humans."""
    out = {**labels(spec, role), **role_selector(spec, role), KAI_QUEUE_LABEL: facts.queue_name}
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


def startup_minutes(spec: ServingSpec, role: str) -> int:
    """Time allowed for download + load + warm-up before liveness applies: 60 min for 70B-class and larger
    models (tens to hundreds of GiB from the hub onto an empty cache), 30 min below; multi-node groups also wait
    for every node to join."""
    minutes = 60 if spec.model.parameters_billions >= 70 else 30
    return minutes + (30 if spec.role(role).multi_node else 0)
