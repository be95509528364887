"""Custom resources of the platform, as plain manifests: KAI queues and Topology, Grove's ClusterTopologyBinding and
the Network Operator's NicClusterPolicy.

Each object names the add-on whose Helm release installs its CRD (`release`), so the component can make it depend
on that release: created after the CRD exists, deleted before the chart is uninstalled.
"""

from __future__ import annotations

from facts.conventions import ZONE_LABEL, HOSTNAME_LABEL
import json
from dataclasses import dataclass, field
from typing import Any

from components.builders import platform_values as pv
from facts.conventions import GPU_TAINT, POOL_LABEL
from facts.catalog import instance_type
from stacks.aws_args import daemon_tolerations
from stacks.config.stack import StackConfig
from stacks.plan import plan
from facts.versions import pin

# KAI's own queues (created by the chart at install: deployments/kai-scheduler/values.yaml defaultQueue.parentName /
# childName; `default-queue` is also the podgrouper's fallback, pkg/podgrouper/podgrouper/plugins/constants).
KAI_DEFAULT_QUEUES = ("default-parent-queue", "default-queue")

# EKS network topology labels, broadest to narrowest (docs.aws.amazon.com/eks/latest/userguide/ml-workload-topology.html):
# layer-1 is the top of the AWS network hierarchy, the highest layer present the node the instance connects to. EKS
# writes one label per network node DescribeInstanceTopology returns: 3 or 4 depending on the instance type, none on
# types the API does not cover (facts/catalog.py network_topology_layers, with its sources).
LAYER_LABEL = "topology.k8s.aws/network-node-layer-{}"


@dataclass(frozen=True)
class TopologyLevel:
    domain: str  # Grove topology domain workloads name in `pack.required` / `pack.preferred`
    key: str  # node label key


# Grove domains of the network layers, counted from the instance up: the node an instance connects to is the `rack`,
# the one above it the `block` (where a multi-node replica prefers to pack), the top one the `spine`; a four-layer
# fabric has one more, `superblock`, between spine and block.
_LAYER_DOMAINS = {3: ("spine", "block", "rack"), 4: ("spine", "superblock", "block", "rack")}


def topology_levels(layers: int) -> tuple[TopologyLevel, ...]:
    """Levels of the Topology for nodes with `layers` network layers (0: zone and host only)."""
    middle = tuple(TopologyLevel(d, LAYER_LABEL.format(i + 1)) for i, d in enumerate(_LAYER_DOMAINS.get(layers, ())))
    return (TopologyLevel("zone", ZONE_LABEL), *middle, TopologyLevel("host", HOSTNAME_LABEL))


AWS_TOPOLOGY: tuple[TopologyLevel, ...] = topology_levels(3)


@dataclass(frozen=True)
class Pack:
    """Where a role's replicas prefer to pack: a Topology they all satisfy and one of its levels."""

    topology_name: str  # KAI Topology and Grove ClusterTopologyBinding name
    domain: str  # Grove domain of the level
    node_label: str  # the level's node label (KAI's topology-*-placement annotations name it)
    layers: int  # network layers of the Topology


def topology_name(cfg: StackConfig, layers: int) -> str:
    """The configured name is the three-layer Topology (p4d/p5/g6e...); other fabrics get their own."""
    base = cfg.platform.kai.topology_name
    return {3: base, 4: f"{base}-4layer"}.get(layers, f"{base}-zonal")


def pool_layers(pool) -> int:
    return instance_type(pool.instance_type).network_topology_layers


def _layers_of(cfg: StackConfig, roles) -> int:
    # KAI drops every node lacking any level label of a workload's Topology, even for a preferred pack (KAI v0.17.0
    # pkg/scheduler/plugins/topology/common.go isNodePartOfTopology): the Topology must be one every pool of the
    # role satisfies. A 4-layer node carries the labels of a 3-layer Topology; a 3-layer node not those of a 4-layer one.
    pools = [p for p in cfg.gpu_pools if p.role in roles]
    layers = min((pool_layers(p) for p in pools), default=0)
    return layers if layers in _LAYER_DOMAINS else 0


def _pack(cfg: StackConfig, layers: int) -> Pack:
    levels = {lv.domain: lv.key for lv in topology_levels(layers)}
    # With network layers: one block (a replica's nodes cross the fewest switches). Without: one zone, the one level
    # such nodes have that groups anything (a replica spread over zones pays cross-AZ latency and traffic).
    domain = "block" if layers else "zone"
    return Pack(topology_name(cfg, layers), domain, levels[domain], layers)


def role_packs(cfg: StackConfig) -> dict[str, Pack]:
    """The pack of each serving role. Grove takes one Topology per PodCliqueSet (operator/internal/controller/common/
    component/utils/topologyconstraint.go: ErrMultipleTopologyNamesUnsupported), so there the roles share the one
    every pool of both roles satisfies; LeaderWorkerSets are per role and each gets its own pools'."""
    roles = ("prefill", "decode")
    if cfg.platform.workload_api == "grove":
        shared = _pack(cfg, _layers_of(cfg, roles))
        return {r: shared for r in roles}
    return {r: _pack(cfg, _layers_of(cfg, (r,))) for r in roles}


def topology_profiles(cfg: StackConfig) -> list[int]:
    """Layer counts of the Topologies the stack creates: those the roles pack on, in a stable order."""
    return sorted({p.layers for p in role_packs(cfg).values()}, reverse=True)


# The Network Operator only reconciles a NicClusterPolicy of this name (network-operator pkg/consts).
NIC_CLUSTER_POLICY_NAME = "nic-cluster-policy"
MELLANOX_VENDOR_ID = "15b3"


@dataclass(frozen=True)
class PlatformObject:
    key: str  # stable suffix of the Pulumi resource name
    release: str  # add-on key whose release installs the CRD (or the controller the object is about)
    manifest: dict[str, Any]
    after: tuple[str, ...] = field(default=())  # keys of objects that must exist first
    # Releases besides `release` that must be installed first (e.g. a ServiceMonitor's CRD and its target's chart).
    also_after: tuple[str, ...] = field(default=())
    # A webhook-readiness gate (webhook_gates.py) the object waits for: set on every object an operator's
    # fail-closed webhook admits.
    gate: str | None = None
    # Fields whose change must recreate the object (immutable upstream), and whether the old one must go first (a
    # fixed name cannot exist twice).
    replace_on_changes: tuple[str, ...] = field(default=())
    delete_before_replace: bool = False


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


def kai_topology(cfg: StackConfig, layers: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "kai.scheduler/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": topology_name(cfg, layers)},
        # No aliases: Grove checks a bound Topology by deep equality of its levels with [{nodeLabel: key}] (grove
        # v0.1.0-alpha.11 operator/internal/scheduler/kai/topology.go CheckTopologyDrift), so an alias would set a
        # false SchedulerTopologyDrift condition on the binding (status only, scheduling is unaffected).
        "spec": {"levels": [{"nodeLabel": level.key} for level in topology_levels(layers)]},
    }


def cluster_topology_binding(cfg: StackConfig, layers: int = 3) -> dict[str, Any]:
    name = topology_name(cfg, layers)
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "ClusterTopologyBinding",
        # Same name as the KAI Topology: PodCliqueSets name it in `topologyConstraint.topologyName`.
        "metadata": {"name": name},
        "spec": {
            "levels": [{"domain": level.domain, "key": level.key} for level in topology_levels(layers)],
            # Bind to the KAI Topology this stack manages (LWS workloads use it too) instead of letting Grove create
            # one of the same name, which Grove refuses when it does not own it (SyncTopology: "is not owned by").
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


def _pdb(name: str, namespace: str, match_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "disagg"}},
        # One replica may go at a time: a node drain never takes the last replica behind a fail-closed webhook.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(match_labels)}},
    }


def controller_pdbs(cfg: StackConfig, enabled: set[str], namespaces: dict[str, str]) -> list[PlatformObject]:
    """PodDisruptionBudgets of the KAI, LWS and Grove controllers the charts leave without one. KAI's operator
    creates those of its scheduler, pod grouper and admission itself (platform_values.KAI_OPERANDS_WITH_PDB)."""
    if pv.controller_replicas(cfg) < 2:
        return []  # one replica: maxUnavailable 1 protects nothing, and the operators skip theirs too
    out: list[PlatformObject] = []
    if "kai-scheduler" in enabled:
        ns = namespaces["kai-scheduler"]
        apps = [pv.KAI_OPERATOR_APP] + [app for sec, app in pv.KAI_OPERANDS.items() if sec not in pv.KAI_OPERANDS_WITH_PDB]
        out += [PlatformObject(f"pdb-{app}", "kai-scheduler", _pdb(app, ns, {"app": app})) for app in apps]
    if "lws" in enabled:
        out.append(PlatformObject("pdb-lws", "lws", _pdb("lws-controller-manager", namespaces["lws"], pv.LWS_POD_LABELS)))
    if "grove" in enabled:
        ns = namespaces["grove"]
        out.append(PlatformObject("pdb-grove", "grove", _pdb(pv.GROVE_DEPLOYMENT, ns, pv.GROVE_POD_LABELS)))
    return out


def platform_objects(cfg: StackConfig, enabled: set[str], namespaces: dict[str, str] | None = None) -> list[PlatformObject]:
    """The custom resources and controller objects to create for the enabled add-ons (keys of `addons.addon_specs`);
    `namespaces` maps add-on key -> its namespace (default: the install plan's)."""
    if namespaces is None:
        from components.builders.addons import addon_namespaces

        namespaces = addon_namespaces()
    out: list[PlatformObject] = []
    if "kai-scheduler" in enabled:
        parent, leaf = kai_queues(cfg)
        out.append(PlatformObject("queue-parent", "kai-scheduler", parent, gate="kai-scheduler"))
        # KAI's queue webhook resolves the parent; create it first.
        out.append(PlatformObject("queue-serving", "kai-scheduler", leaf, after=("queue-parent",), gate="kai-scheduler"))
        for layers in topology_profiles(cfg):
            # Levels are immutable (KAI topologies CRD: "nodeLabel structure is immutable"): a change recreates the
            # Topology, and the old one (same name) must be gone first.
            out.append(
                PlatformObject(
                    _topology_key(layers),
                    "kai-scheduler",
                    kai_topology(cfg, layers),
                    gate="kai-scheduler",
                    replace_on_changes=("spec",),
                    delete_before_replace=True,
                )
            )
    if "grove" in enabled and cfg.platform.grove.topology_aware_scheduling and "kai-scheduler" in enabled:
        for layers in topology_profiles(cfg):
            out.append(
                PlatformObject(
                    _binding_key(layers), "grove", cluster_topology_binding(cfg, layers), after=(_topology_key(layers),), gate="grove"
                )
            )
    if "network-operator" in enabled:
        out.append(PlatformObject("nic-cluster-policy", "network-operator", nic_cluster_policy(cfg)))
    out += controller_pdbs(cfg, enabled, namespaces)
    return out


def _topology_key(layers: int) -> str:
    # The three-layer Topology keeps the key it always had: renaming a resource changes its URN.
    return "topology" if layers == 3 else f"topology-{layers}layer" if layers else "topology-zonal"


def _binding_key(layers: int) -> str:
    return "cluster-topology" if layers == 3 else f"cluster-topology-{layers}layer" if layers else "cluster-topology-zonal"
