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
    """The one problem of the config: at `key`, with `words` and a fix. Any other problem fails the test."""
    errs = errors(values, name)
    hits = [e for e in errs if e.startswith(key + " ")]
    assert hits, f"no error for {key}: {errs}"
    assert errs == hits[:1], f"{key} is not the only error: {errs}"
    for w in words:
        assert w in hits[0], (w, hits[0])
    assert "Fix: " in hits[0]
    return hits[0]


@pytest.fixture
def v() -> dict:
    return copy.deepcopy(BASE)


def test_base_is_valid(v):
    parse(v, stack="t")


def test_the_router_kind_accepts_only_the_router_the_stack_builds(v):
    v["serving"]["router"] = {"kind": "llm-d"}
    one(v, "disagg:serving.router.kind", "'llm-d'", "'vllm-router'")


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
    v["serving"]["decode"]["autoscaling"] = {"enabled": False}
    one(v, "disagg:serving.prefill.autoscaling.enabled", "platform.keda")


def test_grove_name_budget(v):
    v["platform"] = {"workloadApi": "grove"}
    long = "a" * 39  # + "prefill" is 46; + "decode" is 45, which fits
    one(v, "disagg:name", "45", long, name=long)
    parse(v, stack="a" * 38)  # 38 + len("prefill") = 45 fits


# ---- the KV connector's real limits, EFA per pod, EFA image --------------------------------------------------------


def _multinode(v: dict, **role) -> dict:
    for p in v["gpuPools"]:
        p["nodes"] = 2
    v["serving"]["model"] = {"id": "zai-org/GLM-5-FP8", "parametersBillions": 744, "weightDtype": "fp8"}
    for r in ("prefill", "decode"):
        v["serving"][r] = {"replicas": 1, **role}
    return v


def test_decode_pipeline_parallel_with_nixl_is_refused_with_the_layout_that_works(v):
    _multinode(v, tensorParallel=8, dataParallel=2, expertParallel=True)
    v["serving"]["decode"] = {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1}
    msg = one(v, "disagg:serving.decode.pipelineParallel", "= 2", "NixlConnector", "decode side", "dataParallel", "aggregated")
    assert "#52913" in msg


def test_prefill_pipeline_parallel_with_the_pull_connector_is_refused_too(v):
    _multinode(v, tensorParallel=8, dataParallel=2, expertParallel=True)
    v["serving"]["prefill"] = {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1}
    one(v, "disagg:serving.prefill.pipelineParallel", "pull-mode NixlConnector")


def test_pipeline_parallel_is_fine_when_aggregated(v):
    _multinode(v, tensorParallel=8, pipelineParallel=2)
    v["serving"]["mode"] = "aggregated"
    parse(v, stack="t")


def test_wide_ep_layout_is_valid_and_dp_ranks_must_fit_a_node(v):
    _multinode(v, tensorParallel=8, dataParallel=2, expertParallel=True)
    parse(v, stack="t")
    _multinode(v, tensorParallel=16, dataParallel=2, expertParallel=True)
    v["serving"]["decode"] = {"tensorParallel": 8, "dataParallel": 2, "expertParallel": True, "replicas": 1}
    for p in v["gpuPools"]:
        p["nodes"] = 4
    one(v, "disagg:serving.prefill.dataParallel", "spans nodes", "TP within a node")


def test_dp_without_expert_parallel_holds_a_whole_model_per_rank(v):
    _multinode(v, tensorParallel=8, dataParallel=2)
    v["serving"]["decode"]["expertParallel"] = True
    one(v, "disagg:serving.prefill.tensorParallel", "over 8 GPUs", "expertParallel")


def test_pods_of_an_efa_pool_that_cannot_all_get_an_interface_are_refused(v):
    for p in v["gpuPools"]:
        p["instanceType"] = "p4d.24xlarge"
        p["nvmeCache"] = True
    v["serving"]["model"] = {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}
    v["serving"]["prefill"] = {"tensorParallel": 1, "replicas": 8}
    v["serving"]["decode"] = {"tensorParallel": 2, "replicas": 4}
    msg = one(v, "disagg:serving.prefill.tensorParallel", "8 pods of 1 GPUs", "4 EFA", "at least 2 GPUs")
    assert not [e for e in errors(v) if e.startswith("disagg:serving.decode.")], "4 pods of 2 GPUs get 1 EFA each"
    assert "efa: false" in msg


def test_a_role_mixing_efa_and_non_efa_pools_is_refused(v):
    v["gpuPools"].append({"name": "decode-b", "role": "decode", "instanceType": "p5.48xlarge", "nodes": 1, "efa": False, "availabilityZones": ["us-east-1a"]})
    one(v, "disagg:gpuPools[2].efa", "mix EFA", "TCP")


def test_explicit_libfabric_needs_efa_devices_in_every_kv_pod(v):
    for p in v["gpuPools"]:
        p.update(instanceType="g6e.12xlarge", efa=False)
    v["serving"]["model"] = {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}
    v["serving"]["prefill"] = {"tensorParallel": 2, "replicas": 2}
    v["serving"]["decode"] = {"tensorParallel": 2, "replicas": 2}
    v["serving"]["kvTransfer"] = {"backend": "LIBFABRIC"}
    one(v, "disagg:serving.kvTransfer.backend", "no EFA devices")


def test_efa_pools_of_both_roles_share_one_zone_whatever_the_backend(v):
    v["serving"]["kvTransfer"] = {"backend": "UCX"}
    v["gpuPools"][1]["availabilityZones"] = ["us-east-1b"]
    one(v, "disagg:gpuPools[1].availabilityZones", "different zones")


def test_efa_pools_need_the_efa_image(v):
    del v["serving"]["engine"]
    one(v, "disagg:serving.engine.efaImage", "None", "images/vllm-efa", "efa: false")


def test_host_efa_userspace_is_refused_with_the_fix(v):
    v["serving"]["engine"]["efaUserspace"] = "host"
    one(v, "disagg:serving.engine.efaUserspace", "'host'", "--minimal", "efaImage")


def test_grove_autoscaling_is_refused_with_the_reason_and_off_by_default(v):
    v["platform"] = {"workloadApi": "grove"}
    parse(v, stack="t")
    v["serving"]["decode"]["autoscaling"] = {"enabled": True}
    one(v, "disagg:serving.decode.autoscaling.enabled", "scaleConfig", "selector", "workloadApi lws")


def test_decode_pp_config_exits_2_naming_pipeline_parallel(tmp_path):
    from tests.conftest import render, stack_file

    v = _multinode(copy.deepcopy(BASE), tensorParallel=8, dataParallel=2, expertParallel=True)
    v["serving"]["decode"] = {"tensorParallel": 8, "pipelineParallel": 2, "replicas": 1}
    proc = render(["--config", str(stack_file(tmp_path / "Pulumi.pp.yaml", v)), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "disagg:serving.decode.pipelineParallel" in proc.stderr and "Traceback" not in proc.stderr


def test_every_efa_type_of_the_catalog_gives_each_pod_an_interface_or_refuses_the_layout(v):
    """For every EFA instance type and every whole-node split of its GPUs: the pods get >= 1 EFA device each, or
    validation refuses the layout naming tensorParallel. No pod on an EFA pool ever gets 0."""
    from facts.catalog import instance_type, known_instance_types
    from stacks.plan import role_plan

    checked = 0
    for name in known_instance_types(gpu=True):
        it = instance_type(name)
        if not it.supports_efa:
            continue
        for tp in (d for d in range(1, it.gpus + 1) if it.gpus % d == 0):
            c = copy.deepcopy(v)
            for p in c["gpuPools"]:
                p["instanceType"] = name
            c["serving"]["model"] = {"id": "Qwen/Qwen3-0.6B", "parametersBillions": 0.6, "weightDtype": "bf16"}
            for r in ("prefill", "decode"):
                c["serving"][r] = {"tensorParallel": tp, "replicas": it.gpus // tp}
            if it.nvme_disks == 0:
                c["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc"}
            try:
                cfg = parse(c, stack="t")
            except ConfigError as exc:
                msgs = [str(i) for i in exc.issues]
                assert any(m.startswith("disagg:serving.prefill.tensorParallel ") and "EFA" in m for m in msgs), (name, tp, msgs)
                assert it.efa_interfaces < it.gpus // tp, (name, tp, msgs)
            else:
                efa = role_plan(cfg, "prefill").efa_per_pod
                assert efa >= 1 and (it.gpus // tp) * efa <= it.efa_interfaces, (name, tp, efa)
            checked += 1
    assert checked >= 20
