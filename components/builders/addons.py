"""The platform as data: one `AddonSpec` per Helm add-on, computed from the typed config.

`components/platform.py` installs each spec the same way (a `helm.v3.Release`), so adding an add-on is a row here
plus a values function, never new resource code. Chart, repository and version come only from facts/versions.py
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
from facts.versions import pin

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

    key: str  # pin key in facts/versions.py, Helm release name and `Platform.releases` key
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
    # Helm validates the rendered objects against the cluster's OpenAPI schema before pre-upgrade hooks run; a chart
    # whose hook upgrades its own CRDs needs that off, or the new ClusterPolicy fails against the old CRD.
    disable_openapi_validation: bool = False


@dataclass(frozen=True)
class _Row:
    key: str
    section: str  # attribute of PlatformConfig holding this add-on's AddonConfig
    namespace: str
    timeout: int
    manage_namespace: bool = True
    namespace_labels: dict[str, str] = field(default_factory=dict)
    disable_openapi_validation: bool = False


# Install order of the loop (releases without a dependency between them install in parallel); `_DEPENDS_ON` below
# only names add-ons that appear earlier.
_ROWS = (
    _Row("kube-prometheus-stack", "monitoring", pv.MONITORING_NAMESPACE, DEFAULT_TIMEOUT, namespace_labels=PRIVILEGED),
    # "Option --disable-openapi-validation is required [...] so that Helm will not try to validate if CR instance from
    # the new chart is valid as per old CRD": the chart upgrades its CRDs in a pre-upgrade hook (operator.upgradeCRD,
    # default true) (NVIDIA/cloud-native-docs gpu-operator/upgrade.rst, "Upgrading CRDs with the Helm hook").
    _Row("gpu-operator", "gpu_operator", "gpu-operator", SLOW_TIMEOUT, namespace_labels=PRIVILEGED, disable_openapi_validation=True),
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
    "gpu-operator": pv.gpu_operator_values,
    "aws-efa-k8s-device-plugin": pv.efa_device_plugin_values,
    "network-operator": pv.network_operator_values,
    "kai-scheduler": pv.kai_values,
    "lws": pv.lws_values,
    "grove": pv.grove_values,
    "metrics-server": pv.metrics_server_values,
    "keda": pv.keda_values,
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, as Helm merges -f files: maps key by key, anything else (lists too) replaced."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def addon_values(
    cfg: StackConfig, key: str, *, stack: str = "", vpc_id: Any = None, remote_write_url: Any = None, grafana_admin_password: Any = None
) -> dict[str, Any]:
    """The values the stack renders for `key`, then the user's platform.<addon>.values merged over them."""
    if key == "aws-load-balancer-controller":
        ours = pv.load_balancer_controller_values(cfg, vpc_id, default_tags(cfg.tags, cfg.name, stack))
    elif key == "kube-prometheus-stack":
        ours = pv.kube_prometheus_stack_values(cfg, remote_write_url=remote_write_url, grafana_admin_password=grafana_admin_password)
    else:
        ours = _VALUES[key](cfg)
    overrides = addon_config(cfg, key).values
    return deep_merge(ours, overrides) if overrides else ours


def addon_config(cfg: StackConfig, key: str) -> AddonConfig:
    row = next(r for r in _ROWS if r.key == key)
    return getattr(cfg.platform, row.section)


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


# Only real install-time dependencies order releases (a CRD, a webhook or a hook one release needs from another);
# everything else installs in parallel. Not dependencies, deliberately: the GPU Operator on kube-prometheus-stack
# (the DCGM ServiceMonitor is the stack's own object now, see platform_values.gpu_operator_values) and KAI on the GPU
# Operator (KAI installs and starts without GPUs; it schedules them once the device plugin advertises them).
_DEPENDS_ON: dict[str, tuple[str, ...]] = {
    # Its NodeFeatureRules need the NFD CRDs, which the GPU Operator's NFD installs (its own NFD is off then).
    "network-operator": ("gpu-operator",),
    # Grove watches KAI's Topology CRD only if that CRD exists when the operator starts; otherwise it logs "Skipping
    # watch for backend topology CRD (not installed)" and never sees a replaced KAI Topology (grove
    # v0.1.0-alpha.11 operator/internal/controller/clustertopology/register.go). KAI installs the CRD.
    "grove": ("kai-scheduler",),
}


def _depends_on(cfg: StackConfig, key: str, enabled: set[str]) -> tuple[str, ...]:
    return tuple(d for d in _DEPENDS_ON.get(key, ()) if d in enabled)


def addon_specs(
    cfg: StackConfig, *, stack: str = "", vpc_id: Any = None, remote_write_url: Any = None, grafana_admin_password: Any = None
) -> list[AddonSpec]:
    """Every enabled add-on of the stack, in install order.

    `stack` and `vpc_id` only feed the Load Balancer Controller's values (its AWS tags and VPC), `remote_write_url`
    and `grafana_admin_password` kube-prometheus-stack's; they may be Pulumi Outputs, which Helm values accept.
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
                values=addon_values(
                    cfg, row.key, stack=stack, vpc_id=vpc_id, remote_write_url=remote_write_url, grafana_admin_password=grafana_admin_password
                ),
                timeout=conf.timeout_seconds or row.timeout,
                depends_on=_depends_on(cfg, row.key, enabled),
                manage_namespace=row.manage_namespace,
                namespace_labels=dict(row.namespace_labels),
                disable_openapi_validation=row.disable_openapi_validation,
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


def addon_namespaces() -> dict[str, str]:
    """Add-on key -> the namespace it installs into."""
    return {r.key: r.namespace for r in _ROWS}
