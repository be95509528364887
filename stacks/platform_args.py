"""The Platform's args from the stack config: each add-on's settings and the facts of the GPU pools, as plain values.

The one place that reads `disagg:platform` (and the parts of the rest of the config the platform needs) for the
platform component; defaults that depend on the whole stack (the serving queue's GPU quota, EFA per pool, whether
LWS or Grove is installed, the KV transfer backend) are resolved here, from stacks/plan.py.
"""

from __future__ import annotations

from typing import Any

from components.builders.platform_args import (
    Addon,
    GpuOperator,
    GpuPool,
    Grove,
    Kai,
    Monitoring,
    NetworkOperator,
    PlatformArgs,
    Slo,
    Taint,
)
from stacks.aws_args import stack_tags
from stacks.config.aws import GpuPoolConfig
from stacks.config.platform import AddonConfig
from stacks.config.stack import StackConfig
from stacks.plan import kv_backend, plan, pool_efa


def serving_gpu_quota(cfg: StackConfig) -> int:
    """GPU quota of the serving queue: the configured one, else every GPU of the GPU pools.

    KAI's `inference` priority (>= 100) is non-preemptible and only uses in-quota resources; KAI's default queue has
    GPU quota 0, so without a real quota no serving pod ever schedules (KAI docs/priority, api-facts §3).
    """
    q = cfg.platform.kai.queue.gpu_quota
    # With Karpenter or EKS Auto Mode (disagg:nodeProvisioning) the quota covers the pools at maxNodes: pods beyond
    # today's nodes must be in quota to go Pending, which is what makes the node autoscaler add nodes for them.
    return q if q is not None else plan(cfg).gpus_at_max


def gpu_pool(pool: GpuPoolConfig) -> GpuPool:
    return GpuPool(
        name=pool.name,
        role=pool.role,
        instance_type=pool.instance_type,
        efa=pool_efa(pool),
        labels=dict(pool.labels),
        taints=tuple(Taint(key=t.key, value=t.value, effect=t.effect) for t in pool.taints),
    )


def _addon(conf: AddonConfig, enabled: bool | None = None) -> dict[str, Any]:
    """The settings every add-on has; `enabled` when the switch has a resolved default."""
    return {
        "enabled": conf.enabled if enabled is None else enabled,
        "version": conf.version,
        "timeout_seconds": conf.timeout_seconds,
        "values": conf.values,
    }


def platform_args(cfg: StackConfig, stack: str) -> PlatformArgs:
    """The Platform's args of this config; `stack` (the Pulumi stack) only reaches the AWS tags."""
    pf = cfg.platform
    mon, kai, no = pf.monitoring, pf.kai, pf.network_operator
    return PlatformArgs(
        name=cfg.name,
        cluster_name=cfg.cluster_name,
        region=cfg.region,
        namespace=cfg.namespace,
        aws_tags=stack_tags(cfg, stack),
        workload_api=pf.workload_api,
        controller_replicas=pf.controller_replicas,
        kv_backend=kv_backend(cfg),
        gpu_pools=tuple(gpu_pool(p) for p in cfg.gpu_pools),
        monitoring=Monitoring(
            **_addon(mon),
            grafana=mon.grafana.enabled,
            alerts=mon.alerts,
            slo=Slo(ttft_seconds=mon.slo.ttft_seconds, itl_seconds=mon.slo.itl_seconds, target=mon.slo.target),
            amp=mon.amp.enabled,
            amp_local_retention=mon.amp.local_retention,
        ),
        gpu_operator=GpuOperator(**_addon(pf.gpu_operator), mig_manager=pf.gpu_operator.mig_manager),
        efa_device_plugin=Addon(**_addon(pf.efa_device_plugin)),
        network_operator=NetworkOperator(
            **_addon(no),
            pools=tuple(no.pools),
            node_selector=dict(no.node_selector),
            rdma_shared_device_name=no.rdma_shared_device_name,
        ),
        kai=Kai(
            **_addon(kai),
            queue_name=kai.queue.name,
            parent_queue_name=kai.queue.parent_name,
            gpu_quota=serving_gpu_quota(cfg),
            topology_name=kai.topology_name,
        ),
        lws=Addon(**_addon(pf.lws, pf.lws_enabled)),
        grove=Grove(**_addon(pf.grove, pf.grove_enabled), topology_aware_scheduling=pf.grove.topology_aware_scheduling),
        metrics_server=Addon(**_addon(pf.metrics_server)),
        load_balancer_controller=Addon(**_addon(pf.load_balancer_controller)),
        keda=Addon(**_addon(pf.keda)),
    )
