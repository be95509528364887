"""The GPU pod builder and the vLLM engine seam: resources, EFA, volumes, token, probes, placement, security."""

from __future__ import annotations

import json

import pytest

from components.builders.serving import pods
from components.builders.serving.engine import Group, engine_for
from components.builders.serving.vllm import Vllm
from tests.unit.serving_helpers import container, env_of, facts, multinode, non_efa, prod, with_token


def spec(cfg, role, **kw):
    return pods.pod_spec(cfg, role, facts(cfg), **kw)


def test_prod_prefill_pod_asks_4_gpus_and_16_efa():
    res = container(spec(prod(), "prefill"))["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "4"
    assert res["limits"]["vpc.amazonaws.com/efa"] == "16"
    assert res["requests"] == res["limits"]


def test_prod_decode_pod_asks_2_gpus_and_8_efa():
    res = container(spec(prod(), "decode"))["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert res["limits"]["vpc.amazonaws.com/efa"] == "8"


def test_pods_of_a_full_node_fit_its_cpu_memory_and_hugepages():
    cfg = prod()
    for role, per_node in (("prefill", 2), ("decode", 4)):
        lim = container(spec(cfg, role))["resources"]["limits"]
        assert per_node * int(lim["cpu"].removesuffix("m")) <= 191450  # p5 allocatable cpu (Karpenter table)
        assert per_node * int(lim["memory"].removesuffix("Mi")) <= 1938410  # p5 allocatable memory
        assert per_node * int(lim["hugepages-2Mi"].removesuffix("Mi")) == pods.EFA_HUGEPAGES_PER_NODE_MIB
        assert int(lim["hugepages-2Mi"].removesuffix("Mi")) % 2 == 0


def test_non_efa_pool_gets_no_efa_devices_hugepages_or_capability():
    cfg = non_efa()
    s = spec(cfg, "prefill")
    c = container(s)
    assert "vpc.amazonaws.com/efa" not in c["resources"]["limits"]
    assert "hugepages-2Mi" not in c["resources"]["limits"]
    assert "add" not in c["securityContext"]["capabilities"]
    assert "FI_PROVIDER" not in env_of(c)
    assert "initContainers" not in s
    assert not any(v["name"] == "host-efa" for v in s["volumes"])


def test_efa_pods_get_ipc_lock_only_and_are_not_privileged():
    c = container(spec(prod(), "decode"))
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}


def test_efa_env_and_host_libraries():
    s = spec(prod(), "prefill")
    env = env_of(container(s))
    assert env["FI_PROVIDER"] == "efa"
    assert env["FI_EFA_USE_DEVICE_RDMA"] == "1"
    assert env["LD_LIBRARY_PATH"].startswith("/opt/amazon/efa/lib64")
    vol = next(v for v in s["volumes"] if v["name"] == "host-efa")
    assert vol["hostPath"]["path"] == "/opt/amazon"
    mount = next(m for m in container(s)["volumeMounts"] if m["name"] == "host-efa")
    assert mount["readOnly"] is True


def test_efa_from_image_mounts_nothing_from_the_host(base):
    base["serving"]["engine"] = {"image": "example.com/vllm-efa:1", "efaUserspace": "image"}
    from tests.unit.serving_helpers import cfg_of

    cfg = cfg_of(base)
    s = spec(cfg, "prefill")
    assert not any(v["name"] == "host-efa" for v in s["volumes"])
    assert "LD_LIBRARY_PATH" not in env_of(container(s))
    assert container(s)["image"] == "example.com/vllm-efa:1"
    # The preflight still runs: it is what catches an image without EFA libfabric.
    assert s["initContainers"][0]["name"] == "efa-preflight"


def test_efa_preflight_asks_for_the_same_efa_devices_and_fails_loudly():
    s = spec(prod(), "prefill")
    init = s["initContainers"][0]
    assert init["resources"]["limits"]["vpc.amazonaws.com/efa"] == container(s)["resources"]["limits"]["vpc.amazonaws.com/efa"]
    script = init["command"][-1]
    assert "fi_info -p efa" in script and "exit 1" in script


def test_shm_is_a_memory_volume_with_a_size_limit_inside_the_memory_limit():
    s = spec(prod(), "decode")
    shm = next(v for v in s["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    size = int(shm["emptyDir"]["sizeLimit"].removesuffix("Mi"))
    assert 1024 <= size < int(container(s)["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert {"name": "shm", "mountPath": "/dev/shm"} in container(s)["volumeMounts"]


def test_model_cache_on_nvme_hostpath_by_default():
    cfg = prod()
    vol = next(v for v in spec(cfg, "prefill")["volumes"] if v["name"] == "model-cache")
    assert vol["hostPath"]["path"] == cfg.serving.model_cache.host_path


def test_model_cache_on_a_shared_claim(base):
    from tests.unit.serving_helpers import cfg_of

    base["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc"}
    vol = next(v for v in spec(cfg_of(base), "prefill")["volumes"] if v["name"] == "model-cache")
    assert vol == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "t-model-cache"}}


def test_hf_token_comes_from_the_secret_only_when_set():
    assert "HF_TOKEN" not in env_of(container(spec(prod(), "prefill")))
    env = env_of(container(spec(with_token(prod()), "prefill")))
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "t-hf-token", "key": "token"}}


def test_probes_on_the_engine_health_endpoint_with_a_long_startup():
    c = container(spec(prod(), "prefill"))
    for p in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[p]["httpGet"] == {"path": "/health", "port": "http"}
    sp = c["startupProbe"]
    assert sp["periodSeconds"] * sp["failureThreshold"] >= 60 * 60  # 70B-class model: an hour


def test_placement_kai_pool_taints_and_single_zone():
    cfg = prod()
    s = spec(cfg, "decode")
    assert s["schedulerName"] == "kai-scheduler"
    assert s["priorityClassName"] == "inference"
    assert s["nodeSelector"] == {"disagg.io/role": "decode"}
    keys = {(t["key"], t.get("value")) for t in s["tolerations"]}
    assert ("nvidia.com/gpu", "true") in keys and ("disagg.io/role", "decode") in keys
    term = s["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}]


def test_non_efa_roles_in_disjoint_zones_keep_to_their_own_pools(base):
    from tests.unit.serving_helpers import cfg_of

    for p in base["gpuPools"]:
        p.update(instanceType="g6e.12xlarge", efa=False)
    base["gpuPools"][1]["availabilityZones"] = ["us-east-1b"]
    base["serving"]["prefill"] = {"tensorParallel": 2, "replicas": 2}
    base["serving"]["decode"] = {"tensorParallel": 2, "replicas": 2}
    cfg = cfg_of(base)
    assert pods.serving_zones(cfg, "prefill") == ["us-east-1a"]
    assert pods.serving_zones(cfg, "decode") == ["us-east-1b"]


def test_pod_template_labels_carry_queue_role_and_endpoint():
    cfg = prod()
    lbl = pods.pod_template(cfg, "prefill", facts(cfg))["metadata"]["labels"]
    assert lbl["kai.scheduler/queue"] == "serving"
    assert lbl["disagg.io/role"] == "prefill"
    assert lbl["disagg.io/endpoint"] == "true"


# ---- the vLLM engine ----------------------------------------------------------------------------------------------


def _kv(args: list[str]) -> dict:
    return json.loads(args[args.index("--kv-transfer-config") + 1])


def test_vllm_args_on_efa_use_libfabric():
    cfg = prod()
    args = container(spec(cfg, "prefill"))["args"]
    kv = _kv(args)
    assert kv["kv_connector"] == "NixlConnector"
    assert kv["kv_role"] == "kv_both"
    assert kv["kv_connector_extra_config"]["backends"] == ["LIBFABRIC"]
    assert args[0] == cfg.serving.model.id
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--pipeline-parallel-size") + 1] == "1"
    assert "--enable-prefix-caching" in args
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.9"


def test_vllm_args_without_efa_use_ucx():
    assert _kv(container(spec(non_efa(), "decode"))["args"])["kv_connector_extra_config"]["backends"] == ["UCX"]


def test_vllm_side_channel_from_pod_ip_and_port():
    cfg = prod()
    c = container(spec(cfg, "decode"))
    env = env_of(c)
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == str(cfg.serving.kv_transfer.side_channel_port)
    assert {"name": "nixl", "containerPort": 5600, "protocol": "TCP"} in c["ports"]


def test_vllm_extra_args_engine_then_role(base):
    from tests.unit.serving_helpers import cfg_of

    base["serving"]["engine"] = {"extraArgs": ["--enforce-eager"], "prefixCaching": False}
    base["serving"]["decode"]["extraArgs"] = ["--max-num-seqs", "512"]
    cfg = cfg_of(base)
    args = container(spec(cfg, "decode"))["args"]
    assert args[-3:] == ["--enforce-eager", "--max-num-seqs", "512"]
    assert "--no-enable-prefix-caching" in args
    assert "--max-num-seqs" not in container(spec(cfg, "prefill"))["args"]


def test_engine_registry_returns_vllm():
    assert isinstance(engine_for(prod()), Vllm)


def test_multinode_leader_runs_ray_head_and_serves_worker_joins_and_has_no_probes():
    cfg = multinode()
    group = Group(leader_address="$LWS_LEADER_ADDRESS", size="$LWS_GROUP_SIZE")
    leader = container(spec(cfg, "prefill", part="leader", group=group))
    worker = container(spec(cfg, "prefill", part="worker", group=group))
    script = leader["command"][-1]
    assert "ray start --head" in script and "--distributed-executor-backend ray" in script
    assert 'export GROUP_SIZE="$LWS_GROUP_SIZE"' in script
    assert "startupProbe" in leader and "startupProbe" not in worker
    assert "$LWS_LEADER_ADDRESS:6379" in worker["command"][-1]
    assert not any(p["name"] == "http" for p in worker["ports"])
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert leader["resources"]["limits"]["vpc.amazonaws.com/efa"] == "32"
    assert env_of(worker)["NCCL_SOCKET_IFNAME"] == "eth0"


def test_multinode_part_without_group_is_refused():
    with pytest.raises(ValueError, match="leader address"):
        spec(multinode(), "prefill", part="leader")
