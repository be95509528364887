"""Serving validation rules, each broken on purpose: the error names the key, the value and a fix."""

from __future__ import annotations

import copy

import pytest

from stacks.config import ConfigError, parse
from tests.conftest import BASE


def errors(values: dict, name: str = "t") -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack=name)
    return [str(i) for i in exc.value.issues]


def one(values: dict, key: str, *words: str, name: str = "t") -> str:
    errs = errors(values, name)
    hits = [e for e in errs if e.startswith(key + " ")]
    assert hits, f"no error for {key}: {errs}"
    for w in words:
        assert w in hits[0], (w, hits[0])
    assert "Fix: " in hits[0]
    return hits[0]


@pytest.fixture
def v() -> dict:
    return copy.deepcopy(BASE)


def test_base_is_valid(v):
    parse(v, stack="t")


def test_llm_d_router_is_refused(v):
    v["serving"]["router"] = {"kind": "llm-d"}
    one(v, "disagg:serving.router.kind", "llm-d", "vllm-router")


def test_pvc_cache_needs_a_read_write_many_class(v):
    v["serving"]["modelCache"] = {"kind": "pvc"}
    one(v, "disagg:serving.modelCache.storageClass", "storage class")
    v["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "gp3"}
    one(v, "disagg:serving.modelCache.storageClass", "'gp3'", "EBS", "ReadWriteMany")


def test_max_replicas_must_fit_the_pools(v):
    v["serving"]["decode"]["autoscaling"] = {"maxReplicas": 6}
    one(v, "disagg:serving.decode.autoscaling.maxReplicas", "6 decode replicas need 2", "have 1")


def test_autoscaling_needs_keda_and_monitoring(v):
    v["platform"] = {"keda": {"enabled": False}}
    one(v, "disagg:serving.prefill.autoscaling.enabled", "platform.keda")


def test_grove_name_budget(v):
    v["platform"] = {"workloadApi": "grove"}
    long = "a" * 40
    one(v, "disagg:name", "45", long, name=long)
    parse(v, stack="a" * 38)  # 38 + len("prefill") = 45 fits
