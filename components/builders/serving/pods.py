"""The GPU pod of a serving role: resources, EFA, shared memory, model cache, token, probes, placement, security.

One function builds the pod template every workload API uses (LWS leader/worker templates, Grove cliques), so
the EFA and KAI settings cannot differ between `lws` and `grove`. Numbers come from the role's `RoleSpec` (the plan);
engine specifics (command, ports, probes, cache and $HOME paths) from the engine seam.
"""

from __future__ import annotations

from facts.conventions import REVISION_LABEL, ZONE_LABEL
from components.builders.scheduling import role_node_selector, tolerations_for
from components.builders.serving.common import KAI_PRIORITY_CLASS, KAI_SCHEDULER, checkov_skips, hf_secret_name, model_cache_claim_name, pod_labels
from components.builders.serving.engine import Group, Part, engine_for, engine_revision
from components.builders.serving.spec import PlatformFacts, ServingSpec
from facts.catalog import instance_type

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

# NCCL's name for the aws-ofi-nccl network (aws-ofi-nccl src/nccl_ofi_interface*.c `.name = "AWS Libfabric"`).
# NCCL_NET forces that network: if the plugin does not load, NCCL fails instead of falling back to its internal
# Socket transport (NCCL user guide, env "NCCL_NET": "make sure NCCL uses an external plugin and doesn't
# automatically fall back on the internal IB or Socket implementation").
NCCL_NET_OFI = "AWS Libfabric"

TERMINATION_GRACE_SECONDS = 120
CONTAINER = "engine"


def resources(spec: ServingSpec, role: str) -> dict:
    """requests = limits: GPUs and EFA are integer devices; equal CPU/memory keep the pod in the Guaranteed class."""
    rp = spec.role(role)
    it = instance_type(rp.instance_type)
    share = rp.gpus_per_pod / max(it.gpus, 1)
    cpu_m = int(it.vcpus * CPU_SHARE * share * 1000) // 100 * 100
    mem_mib = int(it.memory_gib * 1024 * MEMORY_SHARE * share)
    limits = {"cpu": f"{cpu_m}m", "memory": f"{mem_mib}Mi", GPU_RESOURCE: str(rp.gpus_per_pod)}
    if rp.efa:
        limits[EFA_RESOURCE] = str(rp.efa_per_pod)
        pages = EFA_HUGEPAGES_PER_NODE_MIB * rp.gpus_per_pod // max(it.gpus, 1)
        limits[HUGEPAGES_RESOURCE] = f"{pages // 2 * 2}Mi"
    return {"requests": dict(limits), "limits": dict(limits)}


def shm_size(spec: ServingSpec, role: str) -> str:
    mem = resources(spec, role)["limits"]["memory"]
    mib = int(mem.removesuffix("Mi"))
    return f"{max(1024, min(SHM_MAX_MIB, mib // 8))}Mi"


def volumes(spec: ServingSpec, role: str) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts): /dev/shm, the model cache, and the writable caches of a read-only root."""
    mc = spec.model_cache
    engine = engine_for(spec)
    vols = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(spec, role)}}]
    mounts = [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "model-cache", "mountPath": engine.cache_mount}]
    if mc.kind == "nvme":
        # nodeadm builds the instance-store RAID0 at /mnt/k8s-disks/0 (the GPU pool's NodeConfig); weights
        # downloaded once per node survive pod restarts and are read at NVMe speed.
        vols.append({"name": "model-cache", "hostPath": {"path": mc.host_path, "type": "DirectoryOrCreate"}})
    else:
        vols.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": model_cache_claim_name(spec)}})
    if spec.engine.read_only_root_filesystem:
        vols += [{"name": "home", "emptyDir": {"sizeLimit": HOME_SIZE}}, {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}]
        mounts += [{"name": "home", "mountPath": engine.home}, {"name": "tmp", "mountPath": "/tmp"}]
    hv, hm = hf_volume(spec)
    return vols + hv, mounts + hm


def fabric_env(spec: ServingSpec, role: str, part: Part) -> list[dict]:
    """libfabric/NCCL environment of EFA pods; empty elsewhere.

    No LD_LIBRARY_PATH here: the EFA image prepends its libraries to the base image's path, and a pod value would
    replace that path (and the CUDA entries in it). No FI_EFA_USE_DEVICE_RDMA either: libfabric uses the device's RDMA
    when it has it, and `1` aborts the process on types without it (g5, g6e; libfabric fi_efa(7)).
    """
    if not spec.role(role).efa:
        return []
    # Only the EFA provider: if it cannot be opened, libfabric fails instead of picking a TCP provider, which is the
    # silent 1 s -> 98 s TTFT fallback.
    env = [{"name": "FI_PROVIDER", "value": "efa"}]
    if part != "single":
        env += [
            # NCCL between the nodes of a replica: aws-ofi-nccl or nothing (fails closed, see NCCL_NET_OFI).
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


def hf_env(spec: ServingSpec) -> list[dict]:
    if not spec.hf_token:
        return []
    return [{"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}"}]


def hf_volume(spec: ServingSpec) -> tuple[list[dict], list[dict]]:
    """(pod volumes, container mounts) of the HF token Secret; empty without a token."""
    if not spec.hf_token:
        return [], []
    secret = {"secretName": hf_secret_name(spec), "items": [{"key": "token", "path": HF_TOKEN_FILE}], "defaultMode": 0o400}
    return [{"name": "hf-token", "secret": secret}], [{"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True}]


def security_context(spec: ServingSpec, role: str) -> dict:
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
    if spec.role(role).efa:
        caps["add"] = ["IPC_LOCK"]
    sc = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": caps}
    if spec.engine.read_only_root_filesystem:
        sc["readOnlyRootFilesystem"] = True
    return sc


def checkov_annotations(spec: ServingSpec, role: str, part: Part, *, api_token: bool = False) -> dict[str, str]:
    """Suppressions of the engine pod template (checkov sees it lifted out of the LWS / PodCliqueSet,
    scripts/checkov_lift.py), each with the reason the engine or the fabric forces it."""
    skips = [
        ("CKV_K8S_43", "engine images are pinned by tag in facts/versions.py or set by digest in serving.engine; the offline render cannot resolve tags to digests"),
        ("CKV_K8S_15", "IfNotPresent with a pinned tag or digest: re-pulling a 20 GB engine image on every start only adds minutes and registry traffic"),
        ("CKV_K8S_23", "the vLLM image runs as root and the NVMe model cache is a hostPath the kubelet creates root-owned; fsGroup does not apply to hostPath"),
        ("CKV_K8S_40", "the vLLM image runs as root and the NVMe model cache is a hostPath the kubelet creates root-owned; fsGroup does not apply to hostPath"),
    ]
    if spec.role(role).efa:
        skips.append(("CKV_K8S_25", "all capabilities are dropped and EFA pods add back exactly IPC_LOCK, which pinning GPU memory for EFA RDMA needs"))
    if part == "worker":
        why = "a multi-node worker runs the headless engine and serves no HTTP; the leader's probes cover the group, which LWS or Grove recreates when any pod fails"
        skips += [("CKV_K8S_8", why), ("CKV_K8S_9", why)]
    if api_token:
        skips.append(("CKV_K8S_38", "the leader of a multi-node group starts its ranks on the other pods with kubectl exec (OpenMPI rsh agent): a namespaced Role with get/list pods and create pods/exec"))
    if not spec.engine.read_only_root_filesystem:
        skips.append(("CKV_K8S_22", "serving.engine.readOnlyRootFilesystem is off for this stack: the engine version writes outside $HOME and /tmp"))
    return checkov_skips(*skips)


def pod_spec(spec: ServingSpec, role: str, facts: PlatformFacts, *, part: Part = "single", group: Group | None = None) -> dict:
    engine = engine_for(spec)
    proc = engine.process(spec, role, part, group)
    vols, mounts = volumes(spec, role)
    vols += proc.get("volumes", [])
    mounts += proc.get("volumeMounts", [])
    res = resources(spec, role)
    env = [*fabric_env(spec, role, part), *hf_env(spec), *proc.get("env", [])]
    image = engine.image(spec, role)
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
        "securityContext": security_context(spec, role),
    }
    if engine.serves_http(part):
        container.update(engine.probes(spec, role))
    rs = spec.role(role)
    pod = {
        "schedulerName": KAI_SCHEDULER,
        "priorityClassName": KAI_PRIORITY_CLASS,
        "nodeSelector": role_node_selector(role),
        "tolerations": tolerations_for(list(rs.taints)),
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": list(rs.zones)}]}]
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
    # Pod fields the engine's process needs (e.g. the launcher's service account on a multi-node MPI leader).
    pod.update(proc.get("pod", {}))
    return pod


def pod_template(spec: ServingSpec, role: str, facts: PlatformFacts, *, part: Part = "single", group: Group | None = None) -> dict:
    engine = engine_for(spec)
    lbl = pod_labels(spec, role, facts, endpoint=engine.serves_http(part), part=None if part == "single" else part)
    lbl[REVISION_LABEL] = engine_revision(spec)
    pod = pod_spec(spec, role, facts, part=part, group=group)
    meta = {"labels": lbl, "annotations": checkov_annotations(spec, role, part, api_token=pod["automountServiceAccountToken"])}
    return {"metadata": meta, "spec": pod}
