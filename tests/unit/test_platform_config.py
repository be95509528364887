"""Platform rules of the config: broken on purpose, the error names the `disagg:` key and the fix."""

from __future__ import annotations

import copy

import pytest

from stacks.config import ConfigError, parse
from tests.conftest import BASE, CONFIGS


def errors_of(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t")
    return [str(i) for i in exc.value.issues]


def error_for(values: dict, key: str) -> str:
    hits = [e for e in errors_of(values) if e.startswith((key + " ", key + "="))]
    assert hits, f"no error for {key}"
    assert "Fix: " in hits[0]
    return hits[0]


def test_gpu_operator_cannot_be_turned_off():
    v = copy.deepcopy(BASE)
    v["platform"] = {"gpuOperator": {"enabled": False}}
    msg = error_for(v, "disagg:platform.gpuOperator.enabled")
    assert "nvidia.com/gpu" in msg


def test_efa_pools_need_the_efa_device_plugin():
    v = copy.deepcopy(BASE)
    v["platform"] = {"efaDevicePlugin": {"enabled": False}}
    msg = error_for(v, "disagg:platform.efaDevicePlugin.enabled")
    assert "vpc.amazonaws.com/efa" in msg and "prefill" in msg


def test_efa_device_plugin_may_be_off_without_efa_pools():
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["efa"] = False
    v["platform"] = {"efaDevicePlugin": {"enabled": False}}
    parse(v, stack="t")


def test_network_operator_refuses_an_efa_pool_and_says_why():
    v = copy.deepcopy(BASE)
    v["platform"] = {"networkOperator": {"enabled": True, "pools": ["decode"]}}
    msg = error_for(v, "disagg:platform.networkOperator.pools[0]")
    assert "ConnectX" in msg and "EFA" in msg


def test_network_operator_test_stack_is_a_valid_connectx_layout():
    import yaml

    raw = yaml.safe_load((CONFIGS / "Pulumi.network-operator.yaml").read_text())["config"]
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("disagg:")}
    cfg = parse(values, stack="network-operator")
    assert cfg.platform.network_operator.enabled and cfg.platform.network_operator.pools
    assert all(p.efa is False for p in cfg.gpu_pools)
