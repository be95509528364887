"""The Platform's args: plain values resolved from the config (stacks/platform_args.py), never the config's models."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping

import pydantic
import pytest

from components.builders.platform_args import PlatformArgs
from components.builders.tags import default_tags
from stacks.config import parse
from stacks.plan import plan
from stacks.platform_args import platform_args
from tests.conftest import BASE


def args_of(values: dict | None = None, **platform) -> PlatformArgs:
    v = copy.deepcopy(values or BASE)
    if platform:
        v["platform"] = {**v.get("platform", {}), **platform}
    return platform_args(parse(v, stack="t"), stack="t")


def plain(value, where: str = "args") -> list[str]:
    """Paths of every value under `value` that is not a plain value (a pydantic model or any other object)."""
    if isinstance(value, pydantic.BaseModel):
        return [f"{where}: {type(value).__name__}"]
    if dataclasses.is_dataclass(value):
        return [p for f in dataclasses.fields(value) for p in plain(getattr(value, f.name), f"{where}.{f.name}")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in plain(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in plain(v, f"{where}[{i}]")]
    if value is None or isinstance(value, (str, int, float, bool)):
        return []
    return [f"{where}: {type(value).__name__}"]


def test_the_args_hold_plain_values_only():
    v = copy.deepcopy(BASE)
    v["gpuPools"][0]["taints"] = [{"key": "team", "value": "a", "effect": "NoExecute"}]
    v["gpuPools"][0]["labels"] = {"team": "a"}
    v["platform"] = {"kai": {"values": {"scheduler": {"placementStrategy": "spread"}}}}
    args = platform_args(parse(v, stack="t"), stack="t")
    assert plain(args) == []
    assert args.gpu_pools[0].taints[0].key == "team" and args.gpu_pools[0].labels == {"team": "a"}
    assert args.kai.values == {"scheduler": {"placementStrategy": "spread"}}


def test_a_model_in_the_args_would_be_caught():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    leaked = dataclasses.replace(platform_args(cfg, stack="t"), aws_tags={"x": cfg.platform})
    assert plain(leaked) == ["args.aws_tags['x']: PlatformConfig"]


@pytest.mark.parametrize("workload_api,lws,grove", [("lws", True, False), ("grove", False, True)])
def test_lws_and_grove_follow_the_workload_api_unless_switched(workload_api, lws, grove):
    args = args_of(workloadApi=workload_api)
    assert (args.lws.enabled, args.grove.enabled) == (lws, grove)
    both = args_of(workloadApi=workload_api, lws={"enabled": True}, grove={"enabled": True})
    assert both.lws.enabled and both.grove.enabled


def test_efa_is_resolved_per_pool():
    v = copy.deepcopy(BASE)  # p5.48xlarge pools: EFA by default
    v["gpuPools"][1]["efa"] = False
    v["serving"]["kvTransfer"] = {"backend": "UCX"}
    args = args_of(v)
    assert [(p.name, p.efa) for p in args.gpu_pools] == [("prefill", True), ("decode", False)]


def test_queue_quota_defaults_to_the_stacks_gpus_and_the_configured_one_wins():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    assert platform_args(cfg, stack="t").kai.gpu_quota == plan(cfg).gpus_at_max == 16
    assert args_of(kai={"queue": {"gpuQuota": 24}}).kai.gpu_quota == 24


def test_the_stack_name_reaches_the_aws_tags_only():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    a, b = platform_args(cfg, stack="a"), platform_args(cfg, stack="b")
    assert a.aws_tags == default_tags(cfg.tags, cfg.name, "a") != b.aws_tags
    assert dataclasses.replace(a, aws_tags=b.aws_tags) == b
