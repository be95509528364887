"""Configs for the serving builder tests: the prod layout, a non-EFA layout, multi-node wide EP and aggregated PP."""

from __future__ import annotations

import copy

from pydantic import SecretStr

from components.builders.platform_objects import role_packs
from components.builders.serving.spec import PlatformFacts, ServingSpec, platform_facts
from stacks.config import parse
from stacks.serving_args import serving_spec
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


EFA_IMAGE = BASE["serving"]["engine"]["efaImage"]


def multinode(api: str = "lws"):
    """DeepSeek-V3 wide EP: TP=8 inside a node, DP=2 across two p5 nodes, experts over all 16 GPUs."""
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["nodes"] = 2
    role = {"tensorParallel": 8, "dataParallel": 2, "expertParallel": True, "replicas": 1}
    v["serving"] = {
        "model": {"id": "deepseek-ai/DeepSeek-V3", "parametersBillions": 671, "weightDtype": "fp8"},
        "engine": {"efaImage": EFA_IMAGE},
        "prefill": dict(role),
        "decode": dict(role),
    }
    v["platform"] = {"workloadApi": api}
    return cfg_of(v)


def aggregated(api: str = "lws"):
    """The seed's GLM-5 layout, PP=2 x TP=8 over two p5 nodes per replica, served aggregated."""
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["nodes"] = 2
    role = {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1}
    v["serving"] = {
        "mode": "aggregated",
        "model": {"id": "zai-org/GLM-5-FP8", "parametersBillions": 744, "weightDtype": "fp8"},
        "engine": {"efaImage": EFA_IMAGE},
        "prefill": dict(role),
        "decode": dict(role),
    }
    v["platform"] = {"workloadApi": api}
    return cfg_of(v)


def spec_of(cfg) -> ServingSpec:
    """The serving builders' args, built from the config as the stack builds them."""
    return serving_spec(cfg)


def facts(cfg) -> PlatformFacts:
    """What the Platform component hands serving for this config (Platform.serving_facts)."""
    return platform_facts(cfg.platform.kai.queue.name, cfg.platform.kai.topology_name, role_packs(cfg.gpu_pools, topology=cfg.platform.kai.topology_name, workload_api=cfg.platform.workload_api))


def container(pod_spec: dict) -> dict:
    return pod_spec["containers"][0]


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
