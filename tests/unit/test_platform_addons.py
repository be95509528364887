"""The platform as data: which add-ons a config installs, from which pinned chart, in which order."""

from __future__ import annotations

import copy

import pytest

from components.builders.addons import (
    ADDON_KEYS,
    DEFAULT_TIMEOUT,
    SLOW_TIMEOUT,
    addon_specs,
    managed_namespaces,
)
from stacks.config import parse
from stacks.platform_args import platform_args
from facts.versions import PINS, pin
from tests.conftest import BASE


def cfg_of(values: dict | None = None, **platform):
    v = copy.deepcopy(values or BASE)
    if platform:
        v["platform"] = {**v.get("platform", {}), **platform}
    return parse(v, stack="t")


def specs_of(cfg, **kw):
    return {s.key: s for s in addon_specs(platform_args(cfg, stack="t"), vpc_id="vpc-0123456789abcdef0", **kw)}


def no_efa(values: dict) -> dict:
    v = copy.deepcopy(values)
    for p in v["gpuPools"]:
        p["instanceType"] = "g6e.12xlarge"
        p["efa"] = False
    v["serving"] = {
        "model": {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"},
        "prefill": {"tensorParallel": 1, "replicas": 1},
        "decode": {"tensorParallel": 1, "replicas": 1},
    }
    return v


def without_autoscaling(values: dict) -> dict:
    """Autoscaling needs KEDA and Prometheus (a config rule), so tests that turn those off turn it off too."""
    for role in ("prefill", "decode"):
        values["serving"][role]["autoscaling"] = {"enabled": False}
    return values


def test_default_p5_stack_installs_every_required_addon():
    specs = specs_of(cfg_of())
    assert set(specs) == {
        "kube-prometheus-stack",
        "gpu-operator",
        "aws-efa-k8s-device-plugin",
        "kai-scheduler",
        "lws",
        "metrics-server",
        "aws-load-balancer-controller",
        "keda",
    }


@pytest.mark.parametrize("workload_api,present,absent", [("lws", "lws", "grove"), ("grove", "grove", "lws")])
def test_workload_api_picks_lws_or_grove(workload_api, present, absent):
    specs = specs_of(cfg_of(workloadApi=workload_api))
    assert present in specs and absent not in specs


def test_every_spec_uses_the_pinned_chart_repository_and_version():
    cfg = cfg_of(workloadApi="grove", networkOperator={"enabled": True, "nodeSelector": {"example.com/fabric": "ib"}})
    specs = specs_of(cfg)
    assert set(specs) <= set(ADDON_KEYS)
    assert {"grove", "network-operator"} <= set(specs)
    for key, s in specs.items():
        p = pin(key)
        assert p.kind == "helm-chart"
        assert (s.chart, s.repository, s.version) == (p.chart, p.repository, p.version), key
        assert s.chart.startswith("oci://") == (s.repository is None)


def test_version_override_replaces_the_pin_for_that_addon_only():
    specs = specs_of(cfg_of(kai={"version": "v0.16.5"}))
    assert specs["kai-scheduler"].version == "v0.16.5"
    assert specs["gpu-operator"].version == pin("gpu-operator").version


def test_versions_come_only_from_the_table_or_an_override():
    pinned = {p.version for p in PINS.values()}
    for s in specs_of(cfg_of()).values():
        assert s.version in pinned


def test_timeouts_are_sized_per_addon_and_overridable():
    specs = specs_of(cfg_of(networkOperator={"enabled": True, "nodeSelector": {"a": "b"}}))
    assert specs["gpu-operator"].timeout == SLOW_TIMEOUT == 1800
    assert specs["network-operator"].timeout == SLOW_TIMEOUT
    for key in ("kai-scheduler", "lws", "aws-efa-k8s-device-plugin", "keda"):
        assert specs[key].timeout == DEFAULT_TIMEOUT == 600
    assert specs_of(cfg_of(gpuOperator={"timeoutSeconds": 2400}))["gpu-operator"].timeout == 2400


def test_efa_plugin_only_where_efa_exists():
    assert "aws-efa-k8s-device-plugin" in specs_of(cfg_of())
    assert "aws-efa-k8s-device-plugin" not in specs_of(cfg_of(no_efa(BASE)))


def test_network_operator_off_by_default_and_on_when_enabled():
    assert "network-operator" not in specs_of(cfg_of())
    on = specs_of(cfg_of(no_efa(BASE), networkOperator={"enabled": True, "pools": ["prefill"]}))
    assert on["network-operator"].namespace == "network-operator"


@pytest.mark.parametrize(
    "section,key",
    [
        ("keda", "keda"),
        ("metricsServer", "metrics-server"),
        ("monitoring", "kube-prometheus-stack"),
        ("loadBalancerController", "aws-load-balancer-controller"),
    ],
)
def test_switched_off_addons_are_not_installed(section, key):
    values = copy.deepcopy(BASE)
    values["platform"] = {section: {"enabled": False}}
    without_autoscaling(values)
    assert key not in specs_of(parse(values, stack="t"))


def test_dependencies_are_earlier_specs_and_encode_the_install_order():
    cfg = cfg_of(workloadApi="grove", networkOperator={"enabled": True, "nodeSelector": {"a": "b"}})
    ordered = addon_specs(platform_args(cfg, stack="t"))
    seen: set[str] = set()
    for s in ordered:
        assert set(s.depends_on) <= seen, f"{s.key} depends on {s.depends_on} before they are installed"
        seen.add(s.key)
    specs = {s.key: s for s in ordered}
    # Real install-time dependencies only: Grove watches KAI's Topology CRD if it exists at start, the Network
    # Operator's NodeFeatureRules need the GPU Operator's NFD CRDs.
    assert specs["grove"].depends_on == ("kai-scheduler",)
    assert specs["network-operator"].depends_on == ("gpu-operator",)
    # Everything else installs in parallel: no KAI -> GPU Operator -> kube-prometheus-stack chain any more.
    for key in ("kube-prometheus-stack", "gpu-operator", "kai-scheduler", "metrics-server", "keda", "aws-load-balancer-controller"):
        assert specs[key].depends_on == (), key


def test_gpu_operator_skips_openapi_validation_for_its_crd_upgrade_hook():
    specs = specs_of(cfg_of())
    assert specs["gpu-operator"].disable_openapi_validation is True
    assert not any(s.disable_openapi_validation for k, s in specs.items() if k != "gpu-operator")


def test_values_overrides_merge_over_ours_per_addon():
    cfg = cfg_of(
        kai={"values": {"global": {"tolerations": [{"key": "x", "operator": "Exists"}]}, "scheduler": {"placementStrategy": "spread"}}},
        lws={"values": {"nodeSelector": {"team": "ml"}}},
    )
    specs = specs_of(cfg)
    kai = specs["kai-scheduler"].values
    # Maps merge key by key: our global.nodeSelector stays, the user's tolerations join it.
    assert kai["global"]["nodeSelector"] == {"disagg.io/pool": "system"}
    assert kai["global"]["tolerations"] == [{"key": "x", "operator": "Exists"}]
    assert kai["scheduler"]["placementStrategy"] == "spread" and "affinity" in kai["scheduler"]
    # A map given at a key that holds a map replaces nothing else; a scalar or list replaces.
    assert specs["lws"].values["nodeSelector"] == {"disagg.io/pool": "system", "team": "ml"}


def test_values_overrides_must_be_a_mapping():
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match=r"platform\.kai\.values"):
        cfg_of(kai={"values": ["not", "a", "map"]})


def test_no_dependency_on_a_disabled_addon():
    # KAI off is refused by validation; the builder must still drop a dependency on a release it does not install.
    cfg = cfg_of(workloadApi="grove")
    pf = cfg.platform.model_copy(update={"kai": cfg.platform.kai.model_copy(update={"enabled": False})})
    specs = specs_of(cfg.model_copy(update={"platform": pf}))
    assert "kai-scheduler" not in specs and specs["grove"].depends_on == ()


def test_release_policy_is_not_atomic_but_cleans_up_and_waits():
    for s in specs_of(cfg_of()).values():
        assert (s.atomic, s.cleanup_on_fail, s.create_namespace) == (False, True, False), s.key


def test_namespaces_are_managed_except_kube_system():
    specs = list(specs_of(cfg_of()).values())
    namespaces = managed_namespaces(specs)
    assert "kube-system" not in namespaces
    assert {s.namespace for s in specs if s.manage_namespace} == set(namespaces)
    assert {s.namespace for s in specs if not s.manage_namespace} == {"kube-system"}
    assert namespaces["gpu-operator"] == {"pod-security.kubernetes.io/enforce": "privileged"}
    assert specs_of(cfg_of())["kai-scheduler"].namespace == "kai-scheduler"
