"""Configs for the serving builder tests: the prod layout, a non-EFA layout and a multi-node layout."""

from __future__ import annotations

import copy

from pydantic import SecretStr

from components.builders.serving.common import PlatformFacts
from stacks.config import parse
from tests.conftest import BASE


def cfg_of(values: dict | None = None, *, name: str = "t", **changes):
    """BASE (the prod p5 layout) with top-level keys replaced; validated like a stack file."""
    v = copy.deepcopy(values or BASE)
    v.update(changes)
    return parse(v, stack=name)


def prod(**changes):
    return cfg_of(**changes)


def with_token(cfg):
    return cfg.model_copy(update={"hf_token": SecretStr("hf_test")})


def non_efa():
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["instanceType"] = "g6e.xlarge"
    v["serving"] = {
        "model": {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"},
        "prefill": {"tensorParallel": 1, "replicas": 1},
        "decode": {"tensorParallel": 1, "replicas": 1},
    }
    return cfg_of(v)


def multinode(api: str = "lws"):
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["nodes"] = 2
    v["serving"] = {
        "model": {"id": "deepseek-ai/DeepSeek-V3", "parametersBillions": 671, "weightDtype": "fp8"},
        "prefill": {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1},
        "decode": {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1},
    }
    v["platform"] = {"workloadApi": api}
    return cfg_of(v)


def facts(cfg) -> PlatformFacts:
    return PlatformFacts.defaults(cfg)


def container(pod_spec: dict) -> dict:
    return pod_spec["containers"][0]


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
