"""What the Platform is told: the settings of each add-on and the facts of the GPU pools it serves, as plain values.

The stack builds these from its typed config (stacks/platform_args.py); nothing here knows the config's models,
its defaults or its key names. Every field is required: a default here would be a second copy of the config's.
Chart versions are not here: they come from facts/versions.py, unless an add-on's `version` overrides the pin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str
    effect: str  # NoSchedule, PreferNoSchedule or NoExecute


@dataclass(frozen=True, kw_only=True)
class GpuPool:
    """One GPU pool, as the daemons that must run on its nodes and the objects that target them see it."""

    name: str
    role: str  # prefill or decode
    instance_type: str  # a catalog type: its network topology layers decide the KAI Topology of the role
    efa: bool  # the pool's nodes have EFA interfaces (resolved: the switch, else the instance type's default)
    labels: Mapping[str, str]  # the user's extra node labels
    taints: tuple[Taint, ...]  # the user's extra node taints (the GPU and role taints are always added)


@dataclass(frozen=True, kw_only=True)
class Addon:
    """Switch, chart version override, Helm timeout and values overrides of one Helm add-on."""

    enabled: bool
    version: str | None  # None: the pin of facts/versions.py
    timeout_seconds: int | None  # None: the add-on's own default (addons.SLOW_TIMEOUT / DEFAULT_TIMEOUT)
    values: Mapping[str, Any]  # deep-merged over the values the stack renders


@dataclass(frozen=True, kw_only=True)
class GpuOperator(Addon):
    mig_manager: bool


@dataclass(frozen=True, kw_only=True)
class NetworkOperator(Addon):
    pools: tuple[str, ...]  # names of the GPU pools whose nodes carry ConnectX NICs
    node_selector: Mapping[str, str]  # labels of ConnectX nodes joined from outside the stack
    rdma_shared_device_name: str


@dataclass(frozen=True, kw_only=True)
class Kai(Addon):
    queue_name: str  # leaf queue the serving pods are labelled with
    parent_queue_name: str
    gpu_quota: int  # GPU quota of the serving queue (resolved: the configured one, else the stack's GPUs)
    topology_name: str  # name of the three-layer Topology; other fabrics get derived names


@dataclass(frozen=True, kw_only=True)
class Grove(Addon):
    topology_aware_scheduling: bool


@dataclass(frozen=True, kw_only=True)
class Slo:
    ttft_seconds: float
    itl_seconds: float
    target: float  # share of requests that must meet the objective


@dataclass(frozen=True, kw_only=True)
class Monitoring(Addon):
    grafana: bool
    alerts: bool
    slo: Slo
    amp: bool  # remote-write to an Amazon Managed Service for Prometheus workspace
    amp_local_retention: str  # in-cluster retention while AMP holds the history


@dataclass(frozen=True, kw_only=True)
class PlatformArgs:
    name: str  # deployment name (the queues' display names)
    cluster_name: str
    region: str
    namespace: str  # namespace of the serving workloads (the alert rules select it)
    aws_tags: Mapping[str, str]  # tags the Load Balancer Controller puts on the AWS objects it creates
    workload_api: str  # lws or grove
    controller_replicas: int  # replicas of the KAI, LWS and Grove controllers
    kv_backend: str  # NIXL backend of the KV transfer (LIBFABRIC: over EFA)
    gpu_pools: tuple[GpuPool, ...]
    # One attribute per add-on (addons._ROWS names it as the add-on's `section`).
    monitoring: Monitoring
    gpu_operator: GpuOperator
    efa_device_plugin: Addon
    network_operator: NetworkOperator
    kai: Kai
    lws: Addon  # enabled resolved: the switch, else on with workload API lws
    grove: Grove  # enabled resolved: the switch, else on with workload API grove
    metrics_server: Addon
    load_balancer_controller: Addon
    keda: Addon
