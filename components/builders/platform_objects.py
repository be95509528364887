"""Custom resources of the platform, as plain manifests: KAI queues and Topology, Grove's ClusterTopologyBinding and
the Network Operator's NicClusterPolicy.

Each object names the add-on whose Helm release installs its CRD (`release`), so the component can make it depend
on that release: created after the CRD exists, deleted before the chart is uninstalled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from components.builders import platform_values as pv
from components.builders.scheduling import GPU_TAINT, POOL_LABEL, daemon_tolerations
from stacks.config.stack import StackConfig
from stacks.plan import plan
from stacks.versions import pin

# EKS instance topology labels, broadest to narrowest (docs.aws.amazon.com/eks/latest/userguide/ml-workload-topology.html):
# layer-1 is the top of the AWS network hierarchy, layer-3 the switch nearest the instance. Node labels are set by
# EKS on instance types that support the EC2 instance topology API (p4d, p5, p5e, p5en, trn1, ...).
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass(frozen=True)
class TopologyLevel:
    domain: str  # Grove topology domain workloads name in `pack.required` / `pack.preferred`
    key: str  # node label key


AWS_TOPOLOGY: tuple[TopologyLevel, ...] = (
    TopologyLevel("zone", ZONE_LABEL),
    TopologyLevel("spine", "topology.k8s.aws/network-node-layer-1"),
    TopologyLevel("block", "topology.k8s.aws/network-node-layer-2"),
    TopologyLevel("rack", "topology.k8s.aws/network-node-layer-3"),
    TopologyLevel("host", HOSTNAME_LABEL),
)

# The Network Operator only reconciles a NicClusterPolicy of this name (network-operator pkg/consts).
NIC_CLUSTER_POLICY_NAME = "nic-cluster-policy"
MELLANOX_VENDOR_ID = "15b3"


@dataclass(frozen=True)
class PlatformObject:
    key: str  # stable suffix of the Pulumi resource name
    release: str  # add-on key whose release installs the CRD
    manifest: dict[str, Any]
    after: tuple[str, ...] = field(default=())  # keys of objects that must exist first


def serving_gpu_quota(cfg: StackConfig) -> int:
    """GPU quota of the serving queue: the configured one, else every GPU of the GPU pools.

    KAI's `inference` priority (>= 100) is non-preemptible and only uses in-quota resources; KAI's default queue has
    GPU quota 0, so without a real quota no serving pod ever schedules (KAI docs/priority, api-facts §3).
    """
    q = cfg.platform.kai.queue.gpu_quota
    # With Karpenter or EKS Auto Mode (disagg:nodeProvisioning) the quota covers the pools at maxNodes: pods beyond
    # today's nodes must be in quota to go Pending, which is what makes the node autoscaler add nodes for them.
    return q if q is not None else plan(cfg).gpus_at_max


def _resources(gpu_quota: int) -> dict[str, Any]:
    # CPU and memory quota -1 (unlimited): GPUs are what the queue rations. A 0 quota would make every
    # inference-priority pod, which also requests CPU and memory, over quota and unschedulable.
    unlimited = {"quota": -1, "limit": -1, "overQuotaWeight": 1}
    return {
        "cpu": dict(unlimited),
        "memory": dict(unlimited),
        # limit -1: preemptible (train-priority) work may borrow GPUs the serving pods leave idle.
        "gpu": {"quota": gpu_quota, "limit": -1, "overQuotaWeight": 1},
    }


def kai_queues(cfg: StackConfig) -> list[dict[str, Any]]:
    """Parent queue, then the leaf queue the serving pods are labelled with (`kai.scheduler/queue`)."""
    qc = cfg.platform.kai.queue
    quota = serving_gpu_quota(cfg)
    parent = {
        "apiVersion": "scheduling.run.ai/v2",
        "kind": "Queue",
        "metadata": {"name": qc.parent_name},
        # The parent's quota covers its child's; KAI divides a parent's deserved share among its children.
        "spec": {"displayName": f"{cfg.name} (parent)", "resources": _resources(quota)},
    }
    leaf = {
        "apiVersion": "scheduling.run.ai/v2",
        "kind": "Queue",
        "metadata": {"name": qc.name},
        "spec": {"displayName": f"{cfg.name} serving", "parentQueue": qc.parent_name, "resources": _resources(quota)},
    }
    return [parent, leaf]


def kai_topology(cfg: StackConfig) -> dict[str, Any]:
    return {
        "apiVersion": "kai.scheduler/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": cfg.platform.kai.topology_name},
        # No aliases: Grove compares this Topology's levels with its ClusterTopologyBinding by deep equality
        # (grove v0.1.0-alpha.11 operator/internal/scheduler/kai/topology.go), so an alias reads as drift.
        "spec": {"levels": [{"nodeLabel": level.key} for level in AWS_TOPOLOGY]},
    }


def cluster_topology_binding(cfg: StackConfig) -> dict[str, Any]:
    name = cfg.platform.kai.topology_name
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "ClusterTopologyBinding",
        # Same name as the KAI Topology: PodCliqueSets name it in `topologyConstraint.topologyName`.
        "metadata": {"name": name},
        "spec": {
            "levels": [{"domain": level.domain, "key": level.key} for level in AWS_TOPOLOGY],
            # Bind to the KAI Topology this stack manages (LWS workloads use it too) instead of letting Grove create
            # one of the same name, which Grove refuses when it does not own it.
            "schedulerTopologyBindings": [{"schedulerName": pv.KAI_SCHEDULER_NAME, "topologyReference": name}],
        },
    }


def network_operator_pools(cfg: StackConfig):
    names = set(cfg.platform.network_operator.pools)
    return [p for p in cfg.gpu_pools if p.name in names]


def nic_cluster_policy(cfg: StackConfig) -> dict[str, Any]:
    """RDMA shared device plugin on the ConnectX nodes: the configured pools and/or the extra node selector.

    No `ofedDriver`: the nodes' inbox or host-installed MLNX/DOCA drivers serve RDMA; a driver container is a
    per-site decision (kernel, secure boot) this stack does not make.
    """
    no = cfg.platform.network_operator
    pools = network_operator_pools(cfg)
    terms = []  # nodeSelectorTerms are ORed: the pools' nodes, or nodes joined from outside matching nodeSelector
    if pools:
        terms.append({"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": [p.name for p in pools]}]})
    if no.node_selector:
        terms.append({"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(no.node_selector.items())]})
    image = pin("rdma-shared-device-plugin")
    repository, name = (image.image or "").rsplit("/", 1)
    config = {
        "configList": [
            {
                "resourceName": no.rdma_shared_device_name,
                "rdmaHcaMax": 63,
                # Mellanox/NVIDIA ConnectX only: an EFA device (vendor 1d0f) is never picked up here.
                "selectors": {"vendors": [MELLANOX_VENDOR_ID]},
            }
        ]
    }
    tolerations = daemon_tolerations(cfg, pools)
    any_gpu = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
    if any_gpu not in tolerations:
        tolerations = [any_gpu, *tolerations]
    return {
        "apiVersion": "mellanox.com/v1alpha1",
        "kind": "NicClusterPolicy",
        "metadata": {"name": NIC_CLUSTER_POLICY_NAME},
        "spec": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}},
            "tolerations": tolerations,
            "rdmaSharedDevicePlugin": {
                "image": name,
                "repository": repository,
                "version": image.version,
                "config": json.dumps(config, sort_keys=True),
            },
        },
    }


def platform_objects(cfg: StackConfig, enabled: set[str]) -> list[PlatformObject]:
    """The custom resources to create for the enabled add-ons (keys of `addons.addon_specs`)."""
    out: list[PlatformObject] = []
    if "kai-scheduler" in enabled:
        parent, leaf = kai_queues(cfg)
        out.append(PlatformObject("queue-parent", "kai-scheduler", parent))
        # KAI's queue webhook resolves the parent; create it first.
        out.append(PlatformObject("queue-serving", "kai-scheduler", leaf, after=("queue-parent",)))
        out.append(PlatformObject("topology", "kai-scheduler", kai_topology(cfg)))
    if "grove" in enabled and cfg.platform.grove.topology_aware_scheduling and "kai-scheduler" in enabled:
        out.append(PlatformObject("cluster-topology", "grove", cluster_topology_binding(cfg), after=("topology",)))
    if "network-operator" in enabled:
        out.append(PlatformObject("nic-cluster-policy", "network-operator", nic_cluster_policy(cfg)))
    return out
