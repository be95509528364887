"""The GPU pod of a serving role: resources, EFA, shared memory, model cache, token, probes, placement, security.

One function builds the pod template every workload API uses (LWS leader/worker templates, Grove cliques), so
the EFA and KAI settings cannot differ between `lws` and `grove`. Numbers come from `stacks.plan.role_plan`;
engine specifics (command, ports, health path) from the engine seam.
"""

from __future__ import annotations

from facts.conventions import ZONE_LABEL
from components.builders.scheduling import role_node_selector, tolerations_for
from components.builders.serving.common import HTTP_PORT_NAME, KAI_PRIORITY_CLASS, KAI_SCHEDULER, PlatformFacts, checkov_skips, hf_secret_name, model_cache_claim_name, pod_labels
from facts.conventions import REVISION_LABEL
from components.builders.serving.engine import Engine, Group, Part, engine_for, engine_revision
from components.builders.serving.vllm import CACHE_MOUNT, HOME, NCCL_NET_OFI
from facts.catalog import instance_type
from stacks.config.stack import StackConfig
from stacks.aws_args import pool_taints
from stacks.plan import pool_zones, role_efa, role_plan
from facts.conventions import ROLES

EFA_RESOURCE = "vpc.amazonaws.com/efa"
GPU_RESOURCE = "nvidia.com/gpu"
HUGEPAGES_RESOURCE = "hugepages-2Mi"

# The EFA driver preallocates 2 MiB hugepages on every EFA node (5128 pages) and libfabric's EFA provider uses
# them for its bounce buffers; a container without a hugepages limit gets SIGBUS when it touches one. The EKS
# NCCL-over-EFA example gives a whole p5 node's pod 5120Mi (awsdocs ml/node-efa.adoc). A pod with part of a
# node gets the same share of that figure as of the GPUs, so the pods of a full node add up to the example and
# stay inside what the driver preallocated.
EFA_HUGEPAGES_PER_NODE_MIB = 5120

# Share of the instance's vCPUs and memory the GPU pods of a node may ask for together; the rest covers the
# kubelet/system reservation and the daemons (GPU Operator, EFA device plugin, node exporter, VPC CNI).
CPU_SHARE = 0.75
MEMORY_SHARE = 0.8
# /dev/shm (PyTorch/NCCL intra-node buffers, vLLM multiprocessing queues): an eighth of the pod's memory, at most 32 GiB.
# A memory-medium emptyDir counts against the container's memory limit, so it is carved out of that budget.
SHM_MAX_MIB = 32 * 1024

# Writable emptyDirs of the engine container when its root file system is read-only: $HOME (vLLM, torch.compile,
# Triton, FlashInfer and CUDA JIT caches) and /tmp. Disk-backed (node ephemeral storage, on the NVMe RAID0 of the GPU
# pools), bounded so a runaway cache evicts the pod instead of filling the node.
HOME_SIZE = "64Gi"
TMP_SIZE = "16Gi"

TERMINATION_GRACE_SECONDS = 120
CONTAINER = "engine"


def serving_zones(cfg: StackConfig, role: str) -> list[str]:
    """Zones a role's pods may use: the zones every prefill and decode pool shares, so KV transfer stays inside one
    AZ. EFA pools always share their single zone (validation); non-EFA pools in disjoint zones are allowed (KV then
    crosses AZs over TCP), and each role then keeps to its own pools' zones."""
    per_pool = [set(pool_zones(cfg, p)) for r in ROLES for p in cfg.pools_for(r)]
    common = set.intersection(*per_pool) if per_pool else set()
    return sorted(common or {z for p in cfg.pools_for(role) for z in pool_zones(cfg, p)})


def resources(cfg: StackConfig, role: str) -> dict:
    """requests = limits: GPUs and EFA are integer devices; equal CPU/memory keep the pod in the Guaranteed class."""
    rp = role_plan(cfg, role)
    it = instance_type(rp.instance_type)
    share = rp.gpus_per_pod / max(it.gpus, 1)
    cpu_m = int(it.vcpus * CPU_SHARE * share * 1000) // 100 * 100
    mem_mib = int(it.memory_gib * 1024 * MEMORY_SHARE * share)
    limits = {"cpu": f"{cpu_m}m", "memory": f"{mem_mib}Mi", GPU_RESOURCE: str(rp.gpus_per_pod)}
    if role_efa(cfg, role):
        limits[EFA_RESOURCE] = str(rp.efa_per_pod)
        pages = EFA_HUGEPAGES_PER_NODE_MIB * rp.gpus_per_pod // max(it.gpus, 1)
        limits[HUGEPAGES_RESOURCE] = f"{pages // 2 * 2}Mi"
    return {"requests": dict(limits), "limits": dict(limits)}


def shm_size(cfg: StackConfig, role: str) -> str:
    mem = resources(cfg, role)["limits"]["memory"]
    mib = int(mem.removesuffix("Mi"))
    return f"{max(1024, min(SHM_MAX_MIB, mib // 8))}Mi"


def volumes(cfg: StackConfig, role: str) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts): /dev/shm, the model cache, and the writable caches of a read-only root."""
    mc = cfg.serving.model_cache
    vols = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(cfg, role)}}]
    mounts = [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "model-cache", "mountPath": CACHE_MOUNT}]
    if mc.kind == "nvme":
        # nodeadm builds the instance-store RAID0 at /mnt/k8s-disks/0 (the GPU pool's NodeConfig); weights
        # downloaded once per node survive pod restarts and are read at NVMe speed.
        vols.append({"name": "model-cache", "hostPath": {"path": mc.host_path, "type": "DirectoryOrCreate"}})
    else:
        vols.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": model_cache_claim_name(cfg)}})
    if cfg.serving.engine.read_only_root_filesystem:
        vols += [{"name": "home", "emptyDir": {"sizeLimit": HOME_SIZE}}, {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}]
        mounts += [{"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}]
    hv, hm = hf_volume(cfg)
    return vols + hv, mounts + hm


def fabric_env(cfg: StackConfig, role: str, part: Part) -> list[dict]:
    """libfabric/NCCL environment of EFA pods; empty elsewhere.

    No LD_LIBRARY_PATH here: the EFA image prepends its libraries to the base image's path, and a pod value would
    replace that path (and the CUDA entries in it). No FI_EFA_USE_DEVICE_RDMA either: libfabric uses the device's RDMA
    when it has it, and `1` aborts the process on types without it (g5, g6e; libfabric fi_efa(7)).
    """
    if not role_efa(cfg, role):
        return []
    # Only the EFA provider: if it cannot be opened, libfabric fails instead of picking a TCP provider, which is the
    # silent 1 s -> 98 s TTFT fallback.
    env = [{"name": "FI_PROVIDER", "value": "efa"}]
    if part != "single":
        env += [
            # NCCL between the nodes of a replica: aws-ofi-nccl or nothing (fails closed, see vllm.NCCL_NET_OFI).
            {"name": "NCCL_NET", "value": NCCL_NET_OFI},
            # Bootstrap over the pod's only routable interface; the data path goes over EFA.
            {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
        ]
    return env


# The HF token reaches the engine as a file, not an env var: an env value shows in `kubectl describe`, crash dumps and
# the environment of every child process, while a secret volume is only readable inside the container (and is updated
# in place when the Secret changes). huggingface_hub reads the token from the file HF_TOKEN_PATH names when HF_TOKEN is
# unset (huggingface_hub 2.4.0, the version vllm 0.30.0 resolves: constants.py HF_TOKEN_PATH, utils/_auth.py
# _get_token_from_file).
HF_TOKEN_DIR = "/var/run/secrets/huggingface"
HF_TOKEN_FILE = "token"


def hf_env(cfg: StackConfig) -> list[dict]:
    if cfg.hf_token is None:
        return []
    return [{"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}"}]


def hf_volume(cfg: StackConfig) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts) of the HF token Secret; empty without a token."""
    if cfg.hf_token is None:
        return [], []
    secret = {"secretName": hf_secret_name(cfg), "items": [{"key": "token", "path": HF_TOKEN_FILE}], "defaultMode": 0o400}
    return [{"name": "hf-token", "secret": secret}], [{"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True}]


def startup_minutes(cfg: StackConfig, role: str) -> int:
    """Time allowed for download + load + warm-up before liveness applies: 60 min for 70B-class and larger
    models (tens to hundreds of GiB from the hub onto an empty cache), 30 min below; multi-node groups also wait
    for every node to join."""
    minutes = 60 if cfg.serving.model.parameters_billions >= 70 else 30
    return minutes + (30 if role_plan(cfg, role).multi_node else 0)


def probes(cfg: StackConfig, role: str, engine: Engine) -> dict:
    http = {"path": engine.health_path, "port": HTTP_PORT_NAME}
    period = 10
    return {
        "startupProbe": {"httpGet": http, "periodSeconds": period, "failureThreshold": startup_minutes(cfg, role) * 60 // period, "timeoutSeconds": 5},
        "readinessProbe": {"httpGet": http, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
        # Generous: a busy engine answers /health late; restarting it costs a full model load.
        "livenessProbe": {"httpGet": http, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 10},
    }


def security_context(cfg: StackConfig, role: str) -> dict:
    """Least privilege that NIXL/libfabric over EFA needs: not privileged, all capabilities dropped, IPC_LOCK added
    on EFA pods only, a read-only root file system.

    The EFA device plugin hands the pod its /dev/infiniband/uverbs* devices, so no privileged mode or host devices
    are needed. Registering memory with the EFA device pins it; the kernel refuses pinning beyond RLIMIT_MEMLOCK
    unless the process has CAP_IPC_LOCK (ib_umem_get), and the KV cache is far larger than any default limit
    (vllm docs/serving/parallelism_scaling.md "Enabling GPUDirect RDMA" adds IPC_LOCK for the same reason).
    The user stays the image's (root): vllm/vllm-openai declares no USER (vllm docker/Dockerfile, vllm-base and
    vllm-openai stages), and the NVMe model cache is a hostPath the kubelet creates root-owned (DirectoryOrCreate,
    0755), which fsGroup does not change.
    """
    caps: dict = {"drop": ["ALL"]}
    if role_efa(cfg, role):
        caps["add"] = ["IPC_LOCK"]
    sc = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": caps}
    if cfg.serving.engine.read_only_root_filesystem:
        sc["readOnlyRootFilesystem"] = True
    return sc


def checkov_annotations(cfg: StackConfig, role: str, part: Part) -> dict[str, str]:
    """Suppressions of the engine pod template (checkov sees it lifted out of the LWS / PodCliqueSet,
    scripts/checkov_lift.py), each with the reason the engine or the fabric forces it."""
    skips = [
        ("CKV_K8S_43", "engine images are pinned by tag in facts/versions.py or set by digest in serving.engine; the offline render cannot resolve tags to digests"),
        ("CKV_K8S_15", "IfNotPresent with a pinned tag or digest: re-pulling a 20 GB engine image on every start only adds minutes and registry traffic"),
        ("CKV_K8S_23", "the vLLM image runs as root and the NVMe model cache is a hostPath the kubelet creates root-owned; fsGroup does not apply to hostPath"),
        ("CKV_K8S_40", "the vLLM image runs as root and the NVMe model cache is a hostPath the kubelet creates root-owned; fsGroup does not apply to hostPath"),
    ]
    if role_efa(cfg, role):
        skips.append(("CKV_K8S_25", "all capabilities are dropped and EFA pods add back exactly IPC_LOCK, which pinning GPU memory for EFA RDMA needs"))
    if part == "worker":
        why = "a multi-node worker runs the headless engine and serves no HTTP; the leader's probes cover the group, which LWS or Grove recreates when any pod fails"
        skips += [("CKV_K8S_8", why), ("CKV_K8S_9", why)]
    if not cfg.serving.engine.read_only_root_filesystem:
        skips.append(("CKV_K8S_22", "serving.engine.readOnlyRootFilesystem is off for this stack: the engine version writes outside $HOME and /tmp"))
    return checkov_skips(*skips)


def pod_spec(cfg: StackConfig, role: str, facts: PlatformFacts, *, part: Part = "single", group: Group | None = None) -> dict:
    engine = engine_for(cfg)
    proc = engine.process(cfg, role, part, group)
    vols, mounts = volumes(cfg, role)
    res = resources(cfg, role)
    env = [*fabric_env(cfg, role, part), *hf_env(cfg), *proc.get("env", [])]
    image = engine.image(cfg, role)
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": proc["command"],
        **({"args": proc["args"]} if proc.get("args") else {}),
        "env": env,
        "ports": proc["ports"],
        "resources": res,
        "volumeMounts": mounts,
        "securityContext": security_context(cfg, role),
    }
    if engine.serves_http(part):
        container.update(probes(cfg, role, engine))
    pools = cfg.pools_for(role)
    taints = [t for p in pools for t in pool_taints(p)]
    spec = {
        "schedulerName": KAI_SCHEDULER,
        "priorityClassName": KAI_PRIORITY_CLASS,
        "nodeSelector": role_node_selector(role),
        "tolerations": tolerations_for(taints),
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": serving_zones(cfg, role)}]}]
                }
            }
        },
        # Engine pods never call the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [container],
        "volumes": vols,
    }
    return spec


def pod_template(cfg: StackConfig, role: str, facts: PlatformFacts, *, part: Part = "single", group: Group | None = None) -> dict:
    engine = engine_for(cfg)
    lbl = pod_labels(cfg, role, facts, endpoint=engine.serves_http(part), part=None if part == "single" else part)
    lbl[REVISION_LABEL] = engine_revision(cfg)
    meta = {"labels": lbl, "annotations": checkov_annotations(cfg, role, part)}
    return {"metadata": meta, "spec": pod_spec(cfg, role, facts, part=part, group=group)}
