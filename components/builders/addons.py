"""The platform as data: one `AddonSpec` per Helm add-on, computed from the typed config.

`components/platform.py` installs each spec the same way (a `helm.v3.Release`), so adding an add-on is a row here
plus a values function, never new resource code. Chart, repository and version come only from stacks/versions.py
(or the `platform.<addon>.version` override); dependencies between add-ons are spec data, in install order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from components.builders import platform_values as pv
from components.builders.tags import default_tags
from stacks.config.platform import AddonConfig
from stacks.config.stack import StackConfig
from stacks.versions import pin

# Helm waits for the chart's Deployments/DaemonSets; the GPU and Network Operators roll DaemonSets over every GPU
# node (and the Network Operator may build a driver container), which outlasts Helm's 300 s default
# (METR/hawk#1363 in pulumi-pains B2). The others come up in a minute or two.
SLOW_TIMEOUT = 1800
DEFAULT_TIMEOUT = 600

# Releases keep this many revisions (Helm secrets); the default is unbounded.
MAX_HISTORY = 10

# Namespaces whose pods need host access (hostPath, hostNetwork, privileged): labelled for Pod Security Admission so
# a cluster-wide `restricted` default cannot block the operators' daemons.
PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}


@dataclass(frozen=True)
class AddonSpec:
    """One Helm add-on, exactly as the generic installer needs it."""

    key: str  # pin key in stacks/versions.py, Helm release name and `Platform.releases` key
    chart: str  # chart name, or the full oci:// reference
    repository: str | None  # https chart repository; None for OCI charts
    version: str
    namespace: str
    values: dict[str, Any]
    timeout: int  # seconds Helm waits for the release to become ready
    depends_on: tuple[str, ...] = ()  # keys of add-ons that must be installed first (and are removed after)
    # The namespace is a Pulumi Namespace resource created before the release (pulumi-pains B3: one owner, and it
    # exists before Helm runs), so Helm never creates it. kube-system exists already and is never managed.
    manage_namespace: bool = True
    create_namespace: bool = False
    namespace_labels: dict[str, str] = field(default_factory=dict)
    # atomic off, cleanup_on_fail on, for every add-on (pulumi-pains B2): an atomic rollback of a slow GPU Operator
    # upgrade undoes a good change (METR/hawk#1363), and an atomic uninstall of a failed first install runs the
    # chart's delete hooks and throws away the pods and events that say why it failed. A failed release stays
    # upgradable, so the next `pulumi up` retries it; cleanup_on_fail removes what the failed attempt added.
    atomic: bool = False
    cleanup_on_fail: bool = True
    max_history: int = MAX_HISTORY


@dataclass(frozen=True)
class _Row:
    key: str
    section: str  # attribute of PlatformConfig holding this add-on's AddonConfig
    namespace: str
    timeout: int
    manage_namespace: bool = True
    namespace_labels: dict[str, str] = field(default_factory=dict)


# Install order; `depends_on` below only names add-ons that appear earlier.
_ROWS = (
    _Row("kube-prometheus-stack", "monitoring", pv.MONITORING_NAMESPACE, DEFAULT_TIMEOUT, namespace_labels=PRIVILEGED),
    _Row("gpu-operator", "gpu_operator", "gpu-operator", SLOW_TIMEOUT, namespace_labels=PRIVILEGED),
    _Row("aws-efa-k8s-device-plugin", "efa_device_plugin", "kube-system", DEFAULT_TIMEOUT, manage_namespace=False),
    _Row("network-operator", "network_operator", "network-operator", SLOW_TIMEOUT, namespace_labels=PRIVILEGED),
    _Row("kai-scheduler", "kai", "kai-scheduler", DEFAULT_TIMEOUT),
    _Row("lws", "lws", "lws-system", DEFAULT_TIMEOUT),
    _Row("grove", "grove", "grove-system", DEFAULT_TIMEOUT),
    _Row("metrics-server", "metrics_server", "kube-system", DEFAULT_TIMEOUT, manage_namespace=False),
    _Row("aws-load-balancer-controller", "load_balancer_controller", "kube-system", DEFAULT_TIMEOUT, manage_namespace=False),
    _Row("keda", "keda", "keda", DEFAULT_TIMEOUT),
)
ADDON_KEYS = tuple(r.key for r in _ROWS)

_VALUES: dict[str, Callable[[StackConfig], dict[str, Any]]] = {
    "kube-prometheus-stack": pv.kube_prometheus_stack_values,
    "gpu-operator": pv.gpu_operator_values,
    "aws-efa-k8s-device-plugin": pv.efa_device_plugin_values,
    "network-operator": pv.network_operator_values,
    "kai-scheduler": pv.kai_values,
    "lws": pv.lws_values,
    "grove": pv.grove_values,
    "metrics-server": pv.metrics_server_values,
    "keda": pv.keda_values,
}


def addon_values(cfg: StackConfig, key: str, *, stack: str = "", vpc_id: Any = None) -> dict[str, Any]:
    if key == "aws-load-balancer-controller":
        return pv.load_balancer_controller_values(cfg, vpc_id, default_tags(cfg, stack))
    return _VALUES[key](cfg)


def addon_enabled(cfg: StackConfig, key: str) -> bool:
    pf = cfg.platform
    return {
        "kube-prometheus-stack": pf.monitoring.enabled,
        "gpu-operator": pf.gpu_operator.enabled,
        # Only where EFA exists: a DaemonSet with nothing to select is noise.
        "aws-efa-k8s-device-plugin": pf.efa_device_plugin.enabled and bool(pv.efa_pools(cfg)),
        "network-operator": pf.network_operator.enabled,
        "kai-scheduler": pf.kai.enabled,
        "lws": pf.lws_enabled,
        "grove": pf.grove_enabled,
        "metrics-server": pf.metrics_server.enabled,
        "aws-load-balancer-controller": pf.load_balancer_controller.enabled,
        "keda": pf.keda.enabled,
    }[key]


def _depends_on(cfg: StackConfig, key: str, enabled: set[str]) -> tuple[str, ...]:
    deps = {
        # The DCGM exporter's ServiceMonitor is created only if its CRD exists when the operator reconciles.
        "gpu-operator": ["kube-prometheus-stack"],
        # Its NodeFeatureRules need the NFD CRDs, which the GPU Operator's NFD installs (its own NFD is off then).
        "network-operator": ["gpu-operator"],
        # KAI schedules GPUs the GPU Operator's device plugin advertises (KAI's documented prerequisite).
        "kai-scheduler": ["gpu-operator"],
        # Grove's KAI backend and its ClusterTopologyBinding reference KAI's Topology CRD and scheduler.
        "grove": ["kai-scheduler"],
    }.get(key, [])
    return tuple(d for d in deps if d in enabled)


def addon_specs(cfg: StackConfig, *, stack: str = "", vpc_id: Any = None) -> list[AddonSpec]:
    """Every enabled add-on of the stack, in install order.

    `stack` and `vpc_id` only feed the Load Balancer Controller's values (its AWS tags and VPC); the VPC id may be
    a Pulumi Output, which Helm values accept.
    """
    enabled = {r.key for r in _ROWS if addon_enabled(cfg, r.key)}
    specs = []
    for row in _ROWS:
        if row.key not in enabled:
            continue
        conf: AddonConfig = getattr(cfg.platform, row.section)
        p = pin(row.key)
        specs.append(
            AddonSpec(
                key=row.key,
                chart=p.chart or "",
                repository=p.repository,
                version=conf.version or p.version,
                namespace=row.namespace,
                values=addon_values(cfg, row.key, stack=stack, vpc_id=vpc_id),
                timeout=conf.timeout_seconds or row.timeout,
                depends_on=_depends_on(cfg, row.key, enabled),
                manage_namespace=row.manage_namespace,
                namespace_labels=dict(row.namespace_labels),
            )
        )
    return specs


def managed_namespaces(specs: list[AddonSpec]) -> dict[str, dict[str, str]]:
    """Namespace name -> labels of the namespaces the platform creates, in first-use order."""
    out: dict[str, dict[str, str]] = {}
    for s in specs:
        if s.manage_namespace:
            out.setdefault(s.namespace, {}).update(s.namespace_labels)
    return out
