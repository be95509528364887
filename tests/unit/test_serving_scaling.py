"""Per-role scaling: KEDA ScaledObjects on the LWS / Grove scale subresources."""

from __future__ import annotations

from components.builders.serving import scaling
from tests.unit.serving_helpers import cfg_of, facts, multinode, prod, spec_of


def test_lws_scaled_objects_target_the_leaderworkerset_with_engine_metrics():
    cfg = prod()
    pre = scaling.scaled_object(spec_of(cfg), "prefill", facts(cfg))
    assert pre["spec"]["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "t-prefill"}
    trig = pre["spec"]["triggers"][0]
    assert trig["type"] == "prometheus"
    assert trig["metadata"]["query"] == 'sum(vllm:num_requests_waiting{namespace="t",service="t-prefill-api"})'
    assert trig["metadata"]["threshold"] == "4"
    assert trig["metadata"]["serverAddress"] == facts(cfg).prometheus_url
    dec = scaling.scaled_object(spec_of(cfg), "decode", facts(cfg))
    assert "vllm:kv_cache_usage_perc" in dec["spec"]["triggers"][0]["metadata"]["query"]
    assert dec["spec"]["triggers"][0]["metadata"]["threshold"] == "0.8"


def test_bounds_and_metric_come_from_the_role_config(base):
    base["gpuPools"][1]["nodes"] = 2
    base["serving"]["decode"] = {
        "tensorParallel": 2,
        "replicas": 4,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 8, "metric": "vllm:num_requests_running", "target": 32},
    }
    cfg = cfg_of(base)
    spec = scaling.scaled_object(spec_of(cfg), "decode", facts(cfg))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)
    assert spec["triggers"][0]["metadata"]["query"].startswith("sum(vllm:num_requests_running{")
    assert spec["triggers"][0]["metadata"]["threshold"] == "32"
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_grove_roles_are_not_scaled_by_default(base):
    base["platform"] = {"workloadApi": "grove"}
    assert scaling.scaled_roles(spec_of(cfg_of(base))) == []
    assert scaling.scaled_roles(spec_of(multinode("grove"))) == []
    # The scale target still follows Grove's naming, for when Grove publishes a selector without its scaleConfig.
    mn = multinode("grove")
    assert scaling.scale_target(spec_of(mn), "decode") == {"apiVersion": "grove.io/v1alpha1", "kind": "PodCliqueScalingGroup", "name": "t-0-decode"}


def test_lws_roles_are_scaled_by_default():
    assert scaling.scaled_roles(spec_of(prod())) == ["prefill", "decode"]


def test_disabled_role_is_not_scaled(base):
    base["serving"]["prefill"]["autoscaling"] = {"enabled": False}
    assert scaling.scaled_roles(spec_of(cfg_of(base))) == ["decode"]
