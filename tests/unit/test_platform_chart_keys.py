"""Every Helm value we set exists in its chart, at that path, with that type.

Helm silently ignores a misspelt key, a key one level too deep or a value of the wrong type, and under mocks no chart
is rendered: such a slip only shows on a real cluster (a DaemonSet that never tolerates the GPU taint, a controller
on a $55/h GPU node). So the paths below were read from each chart's values.yaml / templates at the pinned version
(the `CHECKED` version, cited per chart) and every path our values produce must be one of them.

When a test here fails:
- a new or renamed key: find it in the chart at the pinned version (values.yaml and the template that reads it),
  then add it to `CHART_KEYS` with the upstream path;
- a pin moved (`test_chart_keys_were_checked_at_the_pinned_version`): re-read every path of that chart at the new
  version, then update `CHECKED`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from components.builders import platform_values as pv
from components.builders.addons import ADDON_KEYS, addon_specs
from stacks.config import parse
from stacks.versions import pin
from tests.conftest import BASE

# Chart version each table below was checked against (must equal the pin).
CHECKED = {
    "gpu-operator": "v26.7.0",
    "aws-efa-k8s-device-plugin": "v0.5.30",
    "network-operator": "26.4.1",
    "kai-scheduler": "v0.17.0",
    "lws": "0.10.0",
    "grove": "v0.1.0-alpha.11",
    "metrics-server": "3.13.1",
    "aws-load-balancer-controller": "3.5.0",
    "kube-prometheus-stack": "88.5.3",
    "keda": "2.20.2",
}

# Value kinds: "bool", "str", "map" (string -> string, e.g. a nodeSelector), "tolerations", "env", "profiles".
CHART_KEYS: dict[str, dict[str, str]] = {
    # NVIDIA/gpu-operator v26.7.0 deployments/gpu-operator/values.yaml (read by templates/clusterpolicy.yaml and
    # templates/operator.yaml); node-feature-discovery.* is the NFD 0.19.0 subchart (charts/node-feature-discovery/
    # values.yaml: worker.tolerations, master.nodeSelector, gc.nodeSelector). daemonsets.tolerations reaches the
    # operands only (ClusterPolicy spec.daemonsets), never the NFD worker: that one needs its own list.
    "gpu-operator": {
        "operator.nodeSelector": "map",
        "driver.enabled": "bool",
        "toolkit.enabled": "bool",
        "cdi.enabled": "bool",
        "devicePlugin.enabled": "bool",
        "devicePlugin.env": "env",
        "dcgmExporter.enabled": "bool",
        "dcgmExporter.serviceMonitor.enabled": "bool",
        "dcgmExporter.serviceMonitor.additionalLabels": "map",
        "gfd.enabled": "bool",
        "nfd.enabled": "bool",
        "migManager.enabled": "bool",
        "daemonsets.tolerations": "tolerations",
        "node-feature-discovery.worker.tolerations": "tolerations",
        "node-feature-discovery.master.nodeSelector": "map",
        "node-feature-discovery.gc.nodeSelector": "map",
    },
    # aws/eks-charts stable/aws-efa-k8s-device-plugin (chart v0.5.30) values.yaml; templates/daemonset.yaml appends
    # `tolerations` after its fixed CriticalAddonsOnly toleration (extends, does not replace).
    "aws-efa-k8s-device-plugin": {
        "tolerations": "tolerations",
        "nodeSelector": "map",
    },
    # Mellanox/network-operator v26.4.1 deployment/network-operator/values.yaml: nfd.enabled (subchart condition),
    # operator.nodeSelector (templates/operator.yaml and the keep-ncp / upgrade-crd hook jobs),
    # node-feature-discovery.worker.tolerations (its NFD subchart).
    "network-operator": {
        "nfd.enabled": "bool",
        "operator.nodeSelector": "map",
        "node-feature-discovery.worker.tolerations": "tolerations",
    },
    # kai-scheduler/KAI-Scheduler v0.17.0 deployments/kai-scheduler/values.yaml. global.nodeSelector is rendered into
    # the operator Deployment, the kai-config spec.global (operator-created components) and every hook job
    # (crd-upgrader, topology-migration, kai-config-deployer, post-delete). gpuPodRuntimeClassName is not in
    # values.yaml but is read by templates/_helpers.tpl (`hasKey .Values.admission "gpuPodRuntimeClassName"`).
    "kai-scheduler": {
        "global.nodeSelector": "map",
        "admission.gpuFractionRuntimeClassName": "str",
        "admission.gpuPodRuntimeClassName": "str",
        "postCleanup.enabled": "bool",
    },
    # kubernetes-sigs/lws v0.10.0 charts/lws/values.yaml (templates/manager/deployment.yaml).
    "lws": {
        "nodeSelector": "map",
    },
    # ai-dynamo/grove v0.1.0-alpha.11 operator/charts/values.yaml; templates/_helpers.tpl renders
    # config.scheduler.{defaultProfileName,profiles[].name} and config.topologyAwareScheduling.enabled into the
    # operator's OperatorConfiguration.
    "grove": {
        "nodeSelector": "map",
        "config.topologyAwareScheduling.enabled": "bool",
        "config.scheduler.defaultProfileName": "str",
        "config.scheduler.profiles": "profiles",
    },
    # kubernetes-sigs/metrics-server metrics-server-helm-chart-3.13.1 charts/metrics-server/values.yaml.
    "metrics-server": {
        "nodeSelector": "map",
    },
    # aws/eks-charts stable/aws-load-balancer-controller (chart 3.5.0) values.yaml.
    "aws-load-balancer-controller": {
        "clusterName": "str",
        "region": "str",
        "vpcId": "str",
        "serviceAccount.create": "bool",
        "serviceAccount.name": "str",
        "nodeSelector": "map",
        "defaultTags": "map",
        "enableServiceMutatorWebhook": "bool",
    },
    # prometheus-community/helm-charts kube-prometheus-stack-88.5.3 charts/kube-prometheus-stack/values.yaml; the
    # *SelectorNilUsesHelmValues keys sit under prometheus.prometheusSpec, kube-state-metrics and
    # prometheus-node-exporter are subchart names.
    "kube-prometheus-stack": {
        "fullnameOverride": "str",
        "grafana.enabled": "bool",
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
        "alertmanager.alertmanagerSpec.nodeSelector": "map",
        "kube-state-metrics.nodeSelector": "map",
        "prometheus-node-exporter.tolerations": "tolerations",
    },
    # kedacore/charts v2.20.2 keda/values.yaml: the top-level nodeSelector is the default of operator, metricsServer
    # and webhooks (`.Values.<component>.nodeSelector | default .Values.nodeSelector` in their deployments).
    "keda": {
        "nodeSelector": "map",
    },
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


def _is_profiles(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(p, dict) and set(p) == {"name"} and p["name"] in GROVE_SCHEDULERS for p in v)


KINDS = {
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
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
    return {s.key: s.values for s in addon_specs(cfg, stack="t", vpc_id="vpc-0123456789abcdef0")}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def values(request) -> dict[str, dict]:
    return all_values(parse(copy.deepcopy(CONFIGS[request.param]), stack="t"))


def test_every_addon_has_a_checked_key_table():
    assert set(CHART_KEYS) == set(ADDON_KEYS) == set(CHECKED)


def test_chart_keys_were_checked_at_the_pinned_version():
    for key, version in CHECKED.items():
        assert pin(key).version == version, (
            f"{key} moved to {pin(key).version}: re-check every CHART_KEYS[{key!r}] path in the chart at that version"
        )


def test_the_configs_reach_every_addon():
    seen = set()
    for name in CONFIGS:
        seen |= set(all_values(parse(copy.deepcopy(CONFIGS[name]), stack="t")))
    assert seen == set(ADDON_KEYS)


def test_every_value_we_set_is_a_chart_key_of_the_right_type(values):
    for key, vals in values.items():
        allowed = CHART_KEYS[key]
        for path, v in leaves(vals, allowed):
            assert path in allowed, f"{key}: `{path}` is not a key of the chart at {CHECKED[key]} (Helm would ignore it)"
            assert KINDS[allowed[path]](v), f"{key}: `{path}` = {v!r} is not a {allowed[path]}"


def test_network_operator_alone_runs_its_nfd_with_chart_keys():
    # GPU Operator off is refused by validation, so the values function is fed a copied config directly.
    cfg = parse(copy.deepcopy(BASE), stack="t")
    pf = cfg.platform.model_copy(update={"gpu_operator": cfg.platform.gpu_operator.model_copy(update={"enabled": False})})
    vals = pv.network_operator_values(cfg.model_copy(update={"platform": pf}))
    allowed = CHART_KEYS["network-operator"]
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
    allowed = CHART_KEYS["kai-scheduler"] | CHART_KEYS["gpu-operator"] | CHART_KEYS["kube-prometheus-stack"]
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
