"""Every Helm value we set exists in its chart, at that path, with that type.

Helm silently ignores a misspelt key, a key one level too deep or a value of the wrong type, and under mocks no chart
is rendered: such a slip only shows on a real cluster (a DaemonSet that never tolerates the GPU taint, a controller
on a $55/h GPU node). So the paths below were read from each chart's values.yaml / templates at the pinned version
(each `KeyList` carries that version and the files read) and every path our values produce must be one of them.

When a test here fails:
- a new or renamed key: find it in the chart at the pinned version (values.yaml and the template that reads it),
  then add it to `CHART_KEYS` with the upstream path;
- a pin moved (`test_chart_keys_were_read_at_the_pinned_version`): re-read every path of that chart at the new
  version, then update that list's `version` and `files`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components.builders import platform_values as pv
from components.builders.addons import ADDON_KEYS, addon_specs
from stacks.config import parse
from stacks.platform_args import platform_args
from facts.versions import pin
from tests.conftest import BASE

@dataclass(frozen=True)
class KeyList:
    """The value paths of one chart, as read at `version` from `files` (repo @ tag : path)."""

    version: str  # must equal the pin: a bump means re-reading every path below at the new version
    files: tuple[str, ...]
    keys: dict[str, str]


_KAI_OPERANDS = ("scheduler", "binder", "podgrouper", "podgroupcontroller", "queuecontroller", "admission")

# Value kinds: "bool", "str", "int", "map" (string -> string, e.g. a nodeSelector), "tolerations", "env", "profiles",
# "affinity", "args", "containers", "mounts", "hostmounts", "relabelings", "remotewrite".
CHART_KEYS: dict[str, KeyList] = {
    # daemonsets.tolerations reaches the operands only (ClusterPolicy spec.daemonsets), never the NFD worker: that
    # one needs its own list. node-feature-discovery.* is the NFD 0.19.0 subchart.
    "gpu-operator": KeyList(
        "v26.7.0",
        (
            "NVIDIA/gpu-operator @ v26.7.0 : deployments/gpu-operator/values.yaml",
            "NVIDIA/gpu-operator @ v26.7.0 : deployments/gpu-operator/templates/clusterpolicy.yaml, templates/operator.yaml",
            "NVIDIA/gpu-operator @ v26.7.0 : deployments/gpu-operator/charts/node-feature-discovery/values.yaml",
        ),
        {
            "operator.nodeSelector": "map",
            "driver.enabled": "bool",
            "toolkit.enabled": "bool",
            "cdi.enabled": "bool",
            "devicePlugin.enabled": "bool",
            "devicePlugin.env": "env",
            "dcgmExporter.enabled": "bool",
            "dcgmExporter.serviceMonitor.enabled": "bool",
            "gfd.enabled": "bool",
            "nfd.enabled": "bool",
            "migManager.enabled": "bool",
            "daemonsets.tolerations": "tolerations",
            "node-feature-discovery.worker.tolerations": "tolerations",
            "node-feature-discovery.master.nodeSelector": "map",
            "node-feature-discovery.gc.nodeSelector": "map",
        },
    ),
    # templates/daemonset.yaml appends `tolerations` after its fixed CriticalAddonsOnly toleration.
    "aws-efa-k8s-device-plugin": KeyList(
        "v0.5.30",
        ("aws/eks-charts @ aws-efa-k8s-device-plugin v0.5.30 : stable/aws-efa-k8s-device-plugin/values.yaml, templates/daemonset.yaml",),
        {"tolerations": "tolerations", "nodeSelector": "map"},
    ),
    # operator.nodeSelector: templates/operator.yaml and the keep-ncp / upgrade-crd hook jobs.
    "network-operator": KeyList(
        "26.4.1",
        ("Mellanox/network-operator @ v26.4.1 : deployment/network-operator/values.yaml, templates/operator.yaml",),
        {"nfd.enabled": "bool", "operator.nodeSelector": "map", "node-feature-discovery.worker.tolerations": "tolerations"},
    ),
    # global.nodeSelector/affinity reach the operator Deployment and (through kai-config spec.global) every operand
    # and hook job; gpuPodRuntimeClassName is not in values.yaml but read by templates/_helpers.tpl (hasKey).
    "kai-scheduler": KeyList(
        "v0.17.0",
        (
            "kai-scheduler/KAI-Scheduler @ v0.17.0 : deployments/kai-scheduler/values.yaml",
            "kai-scheduler/KAI-Scheduler @ v0.17.0 : deployments/kai-scheduler/templates/_helpers.tpl (kai-config), templates/services/operator.yaml",
        ),
        {
            "global.nodeSelector": "map",
            "global.affinity": "affinity",
            "operator.replicaCount": "int",
            "admission.gpuFractionRuntimeClassName": "str",
            "admission.gpuPodRuntimeClassName": "str",
            "postCleanup.enabled": "bool",
            **{f"{section}.affinity": "affinity" for section in _KAI_OPERANDS},
            **{f"{section}.podDisruptionBudget.enabled": "bool" for section in ("scheduler", "podgrouper", "admission")},
            **{f"{section}.podDisruptionBudget.maxUnavailable": "int" for section in ("scheduler", "podgrouper", "admission")},
        },
    ),
    "lws": KeyList(
        "0.10.0",
        ("kubernetes-sigs/lws @ v0.10.0 : charts/lws/values.yaml, charts/lws/templates/manager/deployment.yaml",),
        {"nodeSelector": "map", "replicaCount": "int", "affinity": "affinity"},
    ),
    # templates/_helpers.tpl renders config.scheduler.{defaultProfileName,profiles[].name} and
    # config.topologyAwareScheduling.enabled into the OperatorConfiguration; healthProbes.enable only gates the
    # probes in templates/deployment.yaml.
    "grove": KeyList(
        "v0.1.0-alpha.11",
        (
            "ai-dynamo/grove @ v0.1.0-alpha.11 : operator/charts/values.yaml",
            "ai-dynamo/grove @ v0.1.0-alpha.11 : operator/charts/templates/deployment.yaml, templates/_helpers.tpl",
        ),
        {
            "nodeSelector": "map",
            "replicaCount": "int",
            "config.server.healthProbes.enable": "bool",
            "config.topologyAwareScheduling.enabled": "bool",
            "config.scheduler.defaultProfileName": "str",
            "config.scheduler.profiles": "profiles",
        },
    ),
    "metrics-server": KeyList(
        "3.13.1",
        ("kubernetes-sigs/metrics-server @ metrics-server-helm-chart-3.13.1 : charts/metrics-server/values.yaml",),
        {"nodeSelector": "map"},
    ),
    "aws-load-balancer-controller": KeyList(
        "3.5.0",
        ("aws/eks-charts @ aws-load-balancer-controller 3.5.0 : stable/aws-load-balancer-controller/values.yaml",),
        {
            "clusterName": "str",
            "region": "str",
            "vpcId": "str",
            "serviceAccount.create": "bool",
            "serviceAccount.name": "str",
            "nodeSelector": "map",
            "defaultTags": "map",
            "enableServiceMutatorWebhook": "bool",
        },
    ),
    # The *SelectorNilUsesHelmValues keys sit under prometheus.prometheusSpec; kube-state-metrics,
    # prometheus-node-exporter (4.56.1) and grafana (12.11.1) are subcharts that get their section.
    "kube-prometheus-stack": KeyList(
        "88.5.3",
        (
            "prometheus-community/helm-charts @ kube-prometheus-stack-88.5.3 : charts/kube-prometheus-stack/values.yaml",
            "prometheus-community/helm-charts @ prometheus-node-exporter-4.56.1 (of 88.5.3) : charts/prometheus-node-exporter/values.yaml, templates/daemonset.yaml",
            "grafana-community/helm-charts @ grafana-12.11.1 (of 88.5.3) : charts/grafana/values.yaml, templates/_config.tpl",
        ),
        {
            "fullnameOverride": "str",
            "grafana.enabled": "bool",
            "grafana.nodeSelector": "map",
            "grafana.adminPassword": "str",
            "grafana.sidecar.dashboards.folderAnnotation": "str",
            "grafana.sidecar.dashboards.provider.foldersFromFilesStructure": "bool",
            "kubeEtcd.enabled": "bool",
            "kubeControllerManager.enabled": "bool",
            "kubeScheduler.enabled": "bool",
            "kubeProxy.enabled": "bool",
            "prometheusOperator.nodeSelector": "map",
            "prometheus.prometheusSpec.nodeSelector": "map",
            "prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues": "bool",
            "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues": "bool",
            "prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues": "bool",
            "prometheus.prometheusSpec.probeSelectorNilUsesHelmValues": "bool",
            "prometheus.prometheusSpec.scrapeConfigSelectorNilUsesHelmValues": "bool",
            "prometheus.prometheusSpec.retention": "str",
            "prometheus.prometheusSpec.remoteWrite": "remotewrite",
            "alertmanager.alertmanagerSpec.nodeSelector": "map",
            "kube-state-metrics.nodeSelector": "map",
            "prometheus-node-exporter.tolerations": "tolerations",
            "prometheus-node-exporter.extraArgs": "args",
            "prometheus-node-exporter.sidecars": "containers",
            "prometheus-node-exporter.sidecarVolumeMount": "mounts",
            "prometheus-node-exporter.sidecarHostVolumeMounts": "hostmounts",
            "prometheus-node-exporter.prometheus.monitor.relabelings": "relabelings",
        },
    ),
    # The top-level nodeSelector is the default of operator, metricsServer and webhooks.
    "keda": KeyList("2.20.2", ("kedacore/charts @ v2.20.2 : keda/values.yaml, keda/templates/*/deployment.yaml",), {"nodeSelector": "map"}),
}

# Grove v0.1.0-alpha.11 operator/api/config/v1alpha1/types.go SchedulerName constants.
GROVE_SCHEDULERS = {"default-scheduler", "kai-scheduler", "volcano", "lpx-scheduler"}
TOLERATION_FIELDS = {"key", "operator", "value", "effect", "tolerationSeconds"}


def _is_map(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _is_tolerations(v) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(t, dict)
        and set(t) <= TOLERATION_FIELDS
        and t.get("operator", "Equal") in ("Exists", "Equal")
        and t.get("effect", "NoSchedule") in ("NoSchedule", "PreferNoSchedule", "NoExecute")
        and not (t.get("operator") == "Exists" and t.get("value"))
        for t in v
    )


def _is_env(v) -> bool:
    return isinstance(v, list) and all(isinstance(e, dict) and set(e) == {"name", "value"} and isinstance(e["value"], str) for e in v)


def _is_affinity(v) -> bool:
    return isinstance(v, dict) and bool(v) and set(v) <= {"nodeAffinity", "podAffinity", "podAntiAffinity"}


def _is_list_of(v, required: set[str]) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) and required <= set(x) for x in v)


def _is_profiles(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(p, dict) and set(p) == {"name"} and p["name"] in GROVE_SCHEDULERS for p in v)


KINDS = {
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "affinity": _is_affinity,
    "args": lambda v: isinstance(v, list) and bool(v) and all(isinstance(a, str) and a.startswith("--") for a in v),
    "containers": lambda v: _is_list_of(v, {"name", "image"}),
    "mounts": lambda v: _is_list_of(v, {"name", "mountPath"}),
    "hostmounts": lambda v: _is_list_of(v, {"name", "hostPath", "mountPath"}),
    "relabelings": lambda v: _is_list_of(v, {"targetLabel"}),
    "remotewrite": lambda v: _is_list_of(v, {"url"}),
    "map": _is_map,
    "tolerations": _is_tolerations,
    "env": _is_env,
    "profiles": _is_profiles,
}


def leaves(values: dict, allowed: dict[str, str], prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted path, value) of every value we set; descends into maps unless the path itself is an allowed key."""
    for k, v in values.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and path not in allowed:
            yield from leaves(v, allowed, f"{path}.")
        else:
            yield path, v


# --- the configs whose values are checked: every branch of the values functions is taken by one of them -------------
def _with(**platform) -> dict:
    v = copy.deepcopy(BASE)
    v["platform"] = platform
    return v


def _extra_taints() -> dict:
    v = copy.deepcopy(BASE)
    v["gpuPools"][0]["taints"] = [{"key": "team.example.com/gpu", "value": "research", "effect": "NoExecute"}]
    v["gpuPools"][1]["taints"] = [{"key": "dedicated", "effect": "NoSchedule"}]
    return v


def _no_monitoring() -> dict:
    v = _with(monitoring={"enabled": False}, grove={"enabled": True, "topologyAwareScheduling": False})
    for role in ("prefill", "decode"):  # KEDA scales on Prometheus: without it the roles run at fixed size
        v["serving"].setdefault(role, {})["autoscaling"] = {"enabled": False}
    return v


CONFIGS = {
    "base": copy.deepcopy(BASE),
    "grove-network-operator": _with(workloadApi="grove", lws={"enabled": True}, networkOperator={"enabled": True, "nodeSelector": {"example.com/fabric": "roce"}}),
    "no-monitoring": _no_monitoring(),
    "extra-taints": _extra_taints(),
}


def all_values(cfg) -> dict[str, dict]:
    specs = addon_specs(
        platform_args(cfg, stack="t"), vpc_id="vpc-0123456789abcdef0",
        remote_write_url="https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
        grafana_admin_password="generated",
    )
    return {s.key: s.values for s in specs}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def values(request) -> dict[str, dict]:
    return all_values(parse(copy.deepcopy(CONFIGS[request.param]), stack="t"))


def test_every_addon_has_a_checked_key_table():
    assert set(CHART_KEYS) == set(ADDON_KEYS)


@pytest.mark.parametrize("key", sorted(CHART_KEYS))
def test_chart_keys_were_read_at_the_pinned_version(key):
    """Each list carries the version it was read at: a pin that moves without the list being re-read fails here."""
    listed = CHART_KEYS[key]
    assert pin(key).version == listed.version, (
        f"{key} moved to {pin(key).version} but its key list was read at {listed.version}: re-read every path of "
        f"CHART_KEYS[{key!r}] in {', '.join(listed.files)} at the new version, then update `version` and `files`"
    )
    assert listed.files and all(listed.version.lstrip("v") in f for f in listed.files), f"{key}: every file names the version it was read at"


def test_a_moved_pin_is_caught(monkeypatch):
    from facts import versions

    moved = dataclasses.replace(versions.PINS["grove"], version="v0.1.0-alpha.12")
    monkeypatch.setitem(versions.PINS, "grove", moved)
    with pytest.raises(AssertionError, match="re-read every path"):
        test_chart_keys_were_read_at_the_pinned_version("grove")


def test_the_configs_reach_every_addon():
    seen = set()
    for name in CONFIGS:
        seen |= set(all_values(parse(copy.deepcopy(CONFIGS[name]), stack="t")))
    assert seen == set(ADDON_KEYS)


def test_every_value_we_set_is_a_chart_key_of_the_right_type(values):
    for key, vals in values.items():
        allowed = CHART_KEYS[key].keys
        for path, v in leaves(vals, allowed):
            assert path in allowed, f"{key}: `{path}` is not a key of the chart at {CHART_KEYS[key].version} (Helm would ignore it)"
            assert KINDS[allowed[path]](v), f"{key}: `{path}` = {v!r} is not a {allowed[path]}"


def test_network_operator_alone_runs_its_nfd_with_chart_keys():
    # GPU Operator off is refused by validation, so the values function is fed a copied config directly.
    cfg = parse(copy.deepcopy(BASE), stack="t")
    pf = cfg.platform.model_copy(update={"gpu_operator": cfg.platform.gpu_operator.model_copy(update={"enabled": False})})
    vals = pv.network_operator_values(platform_args(cfg.model_copy(update={"platform": pf}), stack="t"))
    allowed = CHART_KEYS["network-operator"].keys
    paths = dict(leaves(vals, allowed))
    assert "node-feature-discovery.worker.tolerations" in paths
    for path, v in paths.items():
        assert path in allowed and KINDS[allowed[path]](v), path


@pytest.mark.parametrize(
    "path",
    ["nodeSelector", "kai.nodeSelector", "global.nodeselector", "daemonset.tolerations", "prometheusSpec.retention"],
)
def test_a_misspelt_or_misplaced_key_is_caught(path):
    # The check itself must be able to fail: a key at the wrong level or with a typo is not in the table.
    allowed = CHART_KEYS["kai-scheduler"].keys | CHART_KEYS["gpu-operator"].keys | CHART_KEYS["kube-prometheus-stack"].keys
    assert path not in allowed


# --- list values replace the chart's list (Helm merges maps, not lists): the chart defaults we rely on stay in -------
NVIDIA_GPU_ANY = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_replaced_toleration_lists_keep_the_chart_defaults(values):
    go = values["gpu-operator"]
    # gpu-operator values.yaml daemonsets.tolerations default: nvidia.com/gpu Exists NoSchedule.
    assert NVIDIA_GPU_ANY in go["daemonsets"]["tolerations"]
    # gpu-operator values.yaml node-feature-discovery.worker.tolerations default: control-plane + nvidia.com/gpu.
    worker = go["node-feature-discovery"]["worker"]["tolerations"]
    assert NVIDIA_GPU_ANY in worker
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "", "effect": "NoSchedule"} in worker
    if "kube-prometheus-stack" in values:
        # prometheus-node-exporter chart default: tolerate every NoSchedule taint.
        assert {"operator": "Exists", "effect": "NoSchedule"} in values["kube-prometheus-stack"]["prometheus-node-exporter"]["tolerations"]
