"""Helm values of the add-ons: what each must set on EKS, and that every daemon that must run on a GPU node
tolerates every taint of that node's pool (checked with Kubernetes' own toleration rule, not by comparing lists)."""

from __future__ import annotations

import copy

import pytest

from components.builders import platform_values as pv
from components.builders.addons import addon_specs
from components.builders.lbc_iam import SERVICE_ACCOUNT
from components.builders.platform_objects import (
    network_operator_pools,
    nic_cluster_policy,
)
from components.builders.scheduling import system_pool_labels
from facts.conventions import STACK_TAG
from stacks.aws_args import pool_labels as gpu_pool_labels
from stacks.aws_args import pool_taints as gpu_pool_taints
from stacks.config import parse
from stacks.plan import pool_efa
from stacks.platform_args import platform_args
from tests.conftest import BASE


# --- Kubernetes' matching rule (k8s.io/api/core/v1 Toleration.ToleratesTaint) ----------------------------------------
def tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if tol.get("key") and tol["key"] != taint["key"]:
        return False
    op = tol.get("operator", "Equal")
    if op == "Exists":
        return True
    return op == "Equal" and tol.get("value", "") == taint.get("value", "")


def untolerated(tolerations: list[dict], taints: list[dict]) -> list[dict]:
    """Taints that keep a pod off the node (PreferNoSchedule only discourages)."""
    return [t for t in taints if t["effect"] != "PreferNoSchedule" and not any(tolerates(tol, t) for tol in tolerations)]


def test_matching_rule_is_the_kubernetes_one():
    taint = {"key": "a", "value": "x", "effect": "NoSchedule"}
    assert tolerates({"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "a", "operator": "Exists"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": "a", "operator": "Equal", "value": "y", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": "a", "operator": "Exists", "effect": "NoExecute"}, taint)
    assert not tolerates({"key": "b", "operator": "Exists"}, taint)


# --- configs ----------------------------------------------------------------------------------------------------------
def with_extra_taints() -> dict:
    v = copy.deepcopy(BASE)
    v["gpuPools"][0]["taints"] = [{"key": "team.example.com/gpu", "value": "research", "effect": "NoExecute"}]
    v["gpuPools"][1]["taints"] = [
        {"key": "dedicated", "effect": "NoSchedule"},  # no value: tolerated with Exists
        {"key": "example.com/soft", "value": "x", "effect": "PreferNoSchedule"},
    ]
    return v


def mixed_efa() -> dict:
    """Prefill on EFA p5, decode on a non-EFA pool (KV over UCX): the EFA plugin must cover only the EFA pool."""
    v = with_extra_taints()
    v["gpuPools"][1] = {
        "name": "decode",
        "role": "decode",
        "instanceType": "p5.48xlarge",
        "nodes": 1,
        "efa": False,
        "availabilityZones": ["us-east-1a"],
        "taints": [{"key": "decode-only", "value": "yes", "effect": "NoSchedule"}],
    }
    return v


CONFIGS = {"base": BASE, "extra-taints": with_extra_taints(), "mixed-efa": mixed_efa()}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def cfg(request):
    return parse(copy.deepcopy(CONFIGS[request.param]), stack="t")


def args_of(cfg):
    return platform_args(cfg, stack="t")


def values_of(cfg, key: str) -> dict:
    return {s.key: s for s in addon_specs(args_of(cfg), vpc_id="vpc-0123456789abcdef0")}[key].values


# Every daemon that must run on the GPU nodes, and where: (name, tolerations, pools it must run on).
def gpu_node_daemons(cfg) -> list[tuple[str, list[dict], list]]:
    go = values_of(cfg, "gpu-operator")
    kps = values_of(cfg, "kube-prometheus-stack")
    daemons = [
        # daemonsets.tolerations covers device plugin, DCGM exporter, GFD, validator and MIG manager.
        ("gpu-operator daemonsets (device plugin, dcgm-exporter, gfd, validator)", go["daemonsets"]["tolerations"], cfg.gpu_pools),
        ("node-feature-discovery worker", go["node-feature-discovery"]["worker"]["tolerations"], cfg.gpu_pools),
        ("node-exporter", kps["prometheus-node-exporter"]["tolerations"], cfg.gpu_pools),
    ]
    efa = [p for p in cfg.gpu_pools if pool_efa(p)]
    if efa:
        daemons.append(("aws-efa-k8s-device-plugin", values_of(cfg, "aws-efa-k8s-device-plugin")["tolerations"], efa))
    return daemons


def test_every_gpu_daemon_tolerates_every_taint_of_its_pools(cfg):
    daemons = gpu_node_daemons(cfg)
    assert len(daemons) >= 3
    for name, tolerations, pools in daemons:
        for pool in pools:
            missing = untolerated(tolerations, gpu_pool_taints(pool))
            assert not missing, f"{name} cannot run on pool {pool.name}: {missing}"


def test_user_taints_are_in_the_checked_set():
    cfg = parse(copy.deepcopy(CONFIGS["extra-taints"]), stack="t")
    keys = {t["key"] for p in cfg.gpu_pools for t in gpu_pool_taints(p)}
    assert {"team.example.com/gpu", "dedicated", "nvidia.com/gpu", "disagg.io/role"} <= keys
    # The role taints must be tolerated by value: a plugin tolerating only nvidia.com/gpu (the chart default) fails.
    chart_default = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert untolerated(chart_default, gpu_pool_taints(cfg.gpu_pools[0]))


def test_efa_plugin_selects_only_efa_nodes():
    cfg = parse(copy.deepcopy(CONFIGS["mixed-efa"]), stack="t")
    selector = values_of(cfg, "aws-efa-k8s-device-plugin")["nodeSelector"]
    for pool in cfg.gpu_pools:
        labels = gpu_pool_labels(pool)
        selected = all(labels.get(k) == v for k, v in selector.items())
        assert selected == pool_efa(pool), pool.name


def test_nic_cluster_policy_daemons_tolerate_their_pools():
    v = copy.deepcopy(CONFIGS["extra-taints"])
    for p in v["gpuPools"]:
        p["efa"] = False
    v["serving"]["kvTransfer"] = {"backend": "UCX"}
    v["platform"] = {"networkOperator": {"enabled": True, "pools": ["prefill", "decode"]}}
    cfg = parse(v, stack="t")
    ncp = nic_cluster_policy(args_of(cfg))
    for pool in network_operator_pools(args_of(cfg)):
        assert not untolerated(ncp["spec"]["tolerations"], gpu_pool_taints(pool)), pool.name


# --- GPU Operator -----------------------------------------------------------------------------------------------------
def test_gpu_operator_leaves_driver_and_toolkit_to_the_ami(cfg):
    go = values_of(cfg, "gpu-operator")
    assert go["driver"]["enabled"] is False
    assert go["toolkit"]["enabled"] is False
    assert go["cdi"]["enabled"] is False


def test_gpu_operator_device_plugin_leaves_rdma_devices_to_the_efa_plugin(cfg):
    env = {e["name"]: e["value"] for e in values_of(cfg, "gpu-operator")["devicePlugin"]["env"]}
    assert env["MOFED_ENABLED"] == "false"


def test_gpu_operator_runs_dcgm_gfd_nfd(cfg):
    go = values_of(cfg, "gpu-operator")
    assert go["dcgmExporter"]["enabled"] and go["gfd"]["enabled"] and go["nfd"]["enabled"]
    # The stack scrapes DCGM with its own ServiceMonitor (observability.scrape_objects): the operator's would be
    # skipped for good if its CRD were not there yet, which tied the GPU Operator to kube-prometheus-stack.
    assert go["dcgmExporter"]["serviceMonitor"] == {"enabled": False}


@pytest.mark.parametrize("mig", [False, True])
def test_mig_manager_is_an_option(mig):
    v = copy.deepcopy(BASE)
    v["platform"] = {"gpuOperator": {"migManager": mig}}
    assert values_of(parse(v, stack="t"), "gpu-operator")["migManager"]["enabled"] is mig


# --- controllers on the system pool -----------------------------------------------------------------------------------
CONTROLLER_SELECTORS = {
    "gpu-operator": [("operator", "nodeSelector"), ("node-feature-discovery", "master", "nodeSelector")],
    "kai-scheduler": [("global", "nodeSelector")],
    "lws": [("nodeSelector",)],
    "metrics-server": [("nodeSelector",)],
    "aws-load-balancer-controller": [("nodeSelector",)],
    "keda": [("nodeSelector",)],
    "kube-prometheus-stack": [
        ("prometheusOperator", "nodeSelector"),
        ("prometheus", "prometheusSpec", "nodeSelector"),
        ("kube-state-metrics", "nodeSelector"),
    ],
}


@pytest.mark.parametrize("key", list(CONTROLLER_SELECTORS))
def test_controllers_are_pinned_to_the_system_pool(key):
    values = values_of(parse(copy.deepcopy(BASE), stack="t"), key)
    for path in CONTROLLER_SELECTORS[key]:
        node = values
        for part in path:
            node = node[part]
        # The selector must match the system nodes' labels exactly as the AWS layer sets them.
        assert node and all(system_pool_labels().get(k) == v for k, v in node.items()), (key, path)


def test_grove_controller_on_system_pool_with_kai_and_tas():
    v = copy.deepcopy(BASE)
    v["platform"] = {"workloadApi": "grove"}
    g = values_of(parse(v, stack="t"), "grove")
    assert g["nodeSelector"] == pv.SYSTEM_NODE_SELECTOR
    assert g["config"]["topologyAwareScheduling"]["enabled"] is True
    sched = g["config"]["scheduler"]
    assert sched["defaultProfileName"] == "kai-scheduler"
    assert sched["defaultProfileName"] in [p["name"] for p in sched["profiles"]]


def test_grove_tas_can_be_turned_off():
    v = copy.deepcopy(BASE)
    v["platform"] = {"workloadApi": "grove", "grove": {"topologyAwareScheduling": False}}
    assert values_of(parse(v, stack="t"), "grove")["config"]["topologyAwareScheduling"]["enabled"] is False


# --- KAI --------------------------------------------------------------------------------------------------------------
def test_kai_values_next_to_gpu_operator_without_runtime_class():
    kai = values_of(parse(copy.deepcopy(BASE), stack="t"), "kai-scheduler")
    # v0.17.0: gpuFractionRuntimeClassName wins over the deprecated name and defaults to `nvidia`; both emptied.
    assert kai["admission"]["gpuFractionRuntimeClassName"] == ""
    assert kai["admission"]["gpuPodRuntimeClassName"] == ""


def test_kai_post_delete_hook_can_schedule():
    # The hook inherits global.nodeSelector/tolerations: it must select the untainted system pool.
    cfg = parse(copy.deepcopy(BASE), stack="t")
    kai = values_of(cfg, "kai-scheduler")
    assert kai["postCleanup"]["enabled"] is True
    selector = kai["global"]["nodeSelector"]
    assert all(system_pool_labels().get(k) == v for k, v in selector.items())
    assert "taints" not in type(cfg.system_pool).model_fields, "a tainted system pool needs global.tolerations for the KAI hooks"


# --- Network Operator -------------------------------------------------------------------------------------------------
def test_network_operator_reuses_the_gpu_operator_nfd():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    assert pv.network_operator_values(args_of(cfg))["nfd"]["enabled"] is False


def test_network_operator_runs_its_own_nfd_without_the_gpu_operator():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    pf = cfg.platform.model_copy(update={"gpu_operator": cfg.platform.gpu_operator.model_copy(update={"enabled": False})})
    alone = cfg.model_copy(update={"platform": pf})
    values = pv.network_operator_values(args_of(alone))
    assert values["nfd"]["enabled"] is True
    for pool in alone.gpu_pools:
        assert not untolerated(values["node-feature-discovery"]["worker"]["tolerations"], gpu_pool_taints(pool))


# --- Load Balancer Controller, monitoring, KEDA -------------------------------------------------------------------------
def test_lbc_values_name_the_cluster_vpc_and_service_account():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    lbc = values_of(cfg, "aws-load-balancer-controller")
    assert (lbc["clusterName"], lbc["region"], lbc["vpcId"]) == (cfg.cluster_name, "us-east-1", "vpc-0123456789abcdef0")
    assert lbc["serviceAccount"] == {"create": True, "name": SERVICE_ACCOUNT}
    assert lbc["defaultTags"][STACK_TAG] == "t"
    # Other charts' Services must not depend on the controller being Ready.
    assert lbc["enableServiceMutatorWebhook"] is False


def test_prometheus_selects_monitors_of_every_namespace():
    kps = values_of(parse(copy.deepcopy(BASE), stack="t"), "kube-prometheus-stack")
    spec = kps["prometheus"]["prometheusSpec"]
    for k in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues", "ruleSelectorNilUsesHelmValues"):
        assert spec[k] is False
    assert "storageSpec" not in spec  # no PVC: its EBS volume would outlive destroy
    assert kps["fullnameOverride"] == pv.MONITORING_RELEASE
    assert pv.prometheus_url() == "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
    for component in ("kubeEtcd", "kubeControllerManager", "kubeScheduler", "kubeProxy"):
        assert kps[component]["enabled"] is False
