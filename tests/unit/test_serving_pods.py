"""The GPU pod builder and the vLLM engine seam: resources, EFA, volumes, token, probes, placement, security."""

from __future__ import annotations

import json

import pytest

from components.builders.serving import pods
from components.builders.serving.engine import Group, engine_for
from components.builders.serving.vllm import NIXL_PREFLIGHT, Vllm
from facts.versions import pin
from stacks.serving_args import serving_zones
from tests.unit.serving_helpers import EFA_IMAGE, aggregated, container, env_of, facts, multinode, non_efa, prod, spec_of, with_token


def spec(cfg, role, **kw):
    return pods.pod_spec(spec_of(cfg), role, facts(cfg), **kw)


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


def test_efa_pods_run_the_efa_image_with_the_efa_provider_and_no_host_mount():
    cfg = prod()
    s = spec(cfg, "prefill")
    c = container(s)
    assert c["image"] == EFA_IMAGE
    env = env_of(c)
    assert env["FI_PROVIDER"] == "efa"
    # The image prepends its libraries to the base image's path; a pod value would replace it.
    assert "LD_LIBRARY_PATH" not in env
    # libfabric aborts with FI_EFA_USE_DEVICE_RDMA=1 on types without RDMA (g5, g6e); it uses RDMA where it exists.
    assert "FI_EFA_USE_DEVICE_RDMA" not in env
    assert not any("hostPath" in v and v["hostPath"]["path"].startswith("/opt/amazon") for v in s["volumes"])
    assert "initContainers" not in s


def test_non_efa_pods_run_the_stock_image(base):
    c = container(spec(non_efa(), "prefill"))
    assert c["image"] == pin("vllm").image_ref


def test_preflight_runs_in_the_engine_container_before_the_engine():
    c = container(spec(prod(), "prefill"))
    assert c["command"][:2] == ["/bin/bash", "-c"] and c["command"][3] == "vllm-serve"
    script = c["command"][2]
    lines = script.strip().splitlines()
    assert lines[0] == "set -euo pipefail"
    assert lines[-1] == 'exec vllm serve "$@"'
    assert "fi_info -p efa -c FI_HMEM" in script
    assert "/dev/infiniband/uverbs" in script
    # The NIXL agent check runs before the exec, with the LIBFABRIC backend the connector uses.
    nixl = next(i for i, ln in enumerate(lines) if ln.startswith("python3 -c"))
    assert nixl < len(lines) - 1 and "fail " in script.splitlines()[-2]
    assert 'backends=["LIBFABRIC"]' in NIXL_PREFLIGHT and "register_memory" in NIXL_PREFLIGHT
    assert "agent.backends" in NIXL_PREFLIGHT  # nixl only warns when a plugin does not load
    compile(NIXL_PREFLIGHT, "<nixl preflight>", "exec")


def test_non_efa_pods_have_no_preflight():
    script = container(spec(non_efa(), "decode"))["command"][2]
    assert "fi_info" not in script and "nixl" not in script
    assert script.strip().splitlines()[-1] == 'exec vllm serve "$@"'


def test_ucx_backend_on_efa_skips_only_the_nixl_check(base):
    from tests.unit.serving_helpers import cfg_of

    base["serving"]["kvTransfer"] = {"backend": "UCX"}
    script = container(spec(cfg_of(base), "prefill"))["command"][2]
    assert "fi_info -p efa" in script and "nixl_agent" not in script


def test_engine_root_file_system_is_read_only_with_writable_caches():
    s = spec(prod(), "decode")
    c = container(s)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/root"] == "home" and mounts["/tmp"] == "tmp"
    assert env_of(c)["HOME"] == "/root"
    vols = {v["name"]: v for v in s["volumes"]}
    assert vols["home"]["emptyDir"]["sizeLimit"] and vols["tmp"]["emptyDir"]["sizeLimit"]


def test_read_only_root_can_be_turned_off(base):
    from tests.unit.serving_helpers import cfg_of

    base["serving"]["engine"]["readOnlyRootFilesystem"] = False
    c = container(spec(cfg_of(base), "decode"))
    assert "readOnlyRootFilesystem" not in c["securityContext"]
    assert not any(m["name"] == "home" for m in c["volumeMounts"])


@pytest.mark.parametrize(
    ("instance", "tp", "want"),
    [
        ("p5.48xlarge", 4, 16), ("p5.48xlarge", 2, 8), ("p5.48xlarge", 1, 4), ("p5en.48xlarge", 2, 4),
        ("p4d.24xlarge", 4, 2), ("p4d.24xlarge", 2, 1), ("p4de.24xlarge", 8, 4),
        ("g6e.12xlarge", 4, 1), ("g6e.24xlarge", 2, 1), ("g6e.48xlarge", 4, 2), ("g5.48xlarge", 8, 1),
    ],
)
def test_every_pod_on_an_efa_pool_gets_whole_interfaces(base, instance, tp, want):
    from facts.catalog import instance_type
    from tests.unit.serving_helpers import cfg_of

    it = instance_type(instance)
    for p in base["gpuPools"]:
        p["instanceType"] = instance
    base["serving"]["model"] = {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}
    base["serving"]["prefill"] = {"tensorParallel": tp, "replicas": it.gpus // tp}
    base["serving"]["decode"] = {"tensorParallel": tp, "replicas": it.gpus // tp}
    cfg = cfg_of(base)
    lim = container(spec(cfg, "prefill"))["resources"]["limits"]
    assert lim["vpc.amazonaws.com/efa"] == str(want)
    assert (it.gpus // tp) * want <= it.efa_interfaces


def test_efa_catalog_types_all_give_a_pod_of_a_whole_node_its_interfaces():
    from facts.catalog import instance_type, known_instance_types
    from stacks.plan import efa_per_pod_default

    for name in known_instance_types(gpu=True):
        it = instance_type(name)
        if it.supports_efa:
            assert efa_per_pod_default(it, 1) == it.efa_interfaces >= 1, name


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


def test_hf_token_comes_from_the_secret_as_a_file_only_when_set():
    plain = spec(prod(), "prefill")
    assert not {"HF_TOKEN", "HF_TOKEN_PATH"} & set(env_of(container(plain)))
    assert "hf-token" not in {v["name"] for v in plain["volumes"]}
    s = spec(with_token(prod()), "prefill")
    c = container(s)
    env = env_of(c)
    assert "HF_TOKEN" not in env, "never as an env var (CKV_K8S_35): huggingface_hub reads HF_TOKEN_PATH"
    assert env["HF_TOKEN_PATH"] == "/var/run/secrets/huggingface/token"
    vol = next(v for v in s["volumes"] if v["name"] == "hf-token")
    assert vol["secret"] == {"secretName": "t-hf-token", "items": [{"key": "token", "path": "token"}], "defaultMode": 0o400}
    assert {"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True} in c["volumeMounts"]


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
    assert serving_zones(cfg, "prefill") == ["us-east-1a"]
    assert serving_zones(cfg, "decode") == ["us-east-1b"]


def test_pod_template_labels_carry_queue_role_and_endpoint():
    cfg = prod()
    lbl = pods.pod_template(spec_of(cfg), "prefill", facts(cfg))["metadata"]["labels"]
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

    base["serving"]["engine"].update(extraArgs=["--enforce-eager"], prefixCaching=False)
    base["serving"]["decode"]["extraArgs"] = ["--max-num-seqs", "512"]
    cfg = cfg_of(base)
    args = container(spec(cfg, "decode"))["args"]
    assert args[-3:] == ["--enforce-eager", "--max-num-seqs", "512"]
    assert "--no-enable-prefix-caching" in args
    assert "--max-num-seqs" not in container(spec(cfg, "prefill"))["args"]


def test_engine_registry_returns_vllm():
    assert isinstance(engine_for(spec_of(prod())), Vllm)


def test_multinode_groups_run_native_vllm_without_ray():
    cfg = multinode()
    leader_group = Group(leader_address="${LWS_LEADER_ADDRESS}", node_rank="${LWS_WORKER_INDEX}", nodes=2)
    leader = container(spec(cfg, "prefill", part="leader", group=leader_group))
    worker = container(spec(cfg, "prefill", part="worker", group=leader_group))
    for c in (leader, worker):
        script = c["command"][2]
        assert "ray" not in script.lower() and "ray" not in " ".join(c["args"]).lower()
        assert script.strip().splitlines()[-1] == 'exec vllm serve "$@" --node-rank "$NODE_RANK" --master-addr "$LEADER_ADDR"'
        a = c["args"]
        assert a[a.index("--nnodes") + 1] == "2" and a[a.index("--master-port") + 1] == "29501"
        assert a[a.index("--tensor-parallel-size") + 1] == "8" and a[a.index("--data-parallel-size") + 1] == "2"
        assert "--enable-expert-parallel" in a
        env = env_of(c)
        # NCCL over EFA or nothing: a missing aws-ofi-nccl stops the engine instead of falling back to sockets.
        assert env["NCCL_NET"] == "AWS Libfabric" and env["NCCL_SOCKET_IFNAME"] == "eth0"
        assert "compgen -G '/opt/amazon/ofi-nccl/lib/libnccl-net*.so'" in script
    assert "--headless" in worker["args"] and "--headless" not in leader["args"]
    assert "startupProbe" in leader and "startupProbe" not in worker
    assert not any(p["name"] == "http" for p in worker["ports"])
    assert {p["name"] for p in leader["ports"]} >= {"http", "dist", "dp-rpc"}
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert leader["resources"]["limits"]["vpc.amazonaws.com/efa"] == "32"


def test_aggregated_pp_groups_have_no_kv_connector_and_no_nixl_check():
    cfg = aggregated()
    g = Group(leader_address="${LWS_LEADER_ADDRESS}", node_rank="${LWS_WORKER_INDEX}", nodes=2)
    c = container(spec(cfg, "decode", part="leader", group=g))
    assert "--kv-transfer-config" not in c["args"]
    assert c["args"][c["args"].index("--pipeline-parallel-size") + 1] == "2"
    assert "nixl_agent" not in c["command"][2] and "VLLM_NIXL_SIDE_CHANNEL_HOST" not in env_of(c)
    assert env_of(c)["NCCL_NET"] == "AWS Libfabric"


def test_multinode_part_without_group_is_refused():
    with pytest.raises(ValueError, match="leader address"):
        spec(multinode(), "prefill", part="leader")
