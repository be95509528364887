"""The composition of one stack: network -> cluster -> node pools -> platform -> serving.

Each arrow is a dependency Pulumi also uses for teardown, in reverse: serving goes first, then the platform
(while the system nodes its hook jobs need still exist), then the node groups, the cluster and the network. The
platform waits for the system node group only: its controllers and hooks all run there, so it installs while the
GPU node groups are still coming up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster
from components.network import Network
from components.nodepools import GpuNodePool, SystemNodePool
from components.nodeprovisioning import AutoModeGpuPool, Karpenter, KarpenterGpuPool
from components.platform import Platform
from components.serving import Serving
from stacks.aws_args import cluster_args, gpu_pool_args, karpenter_args, network_args, stack_tags, system_pool_args
from stacks.config.stack import StackConfig
from stacks.plan import gpu_pool_resource_name
from stacks.platform_args import platform_args
from stacks.serving_args import serving_spec


def build(cfg: StackConfig) -> dict[str, Any]:
    """Register every resource of the stack and return the stack outputs."""
    stack = pulumi.get_stack()
    tags = stack_tags(cfg, stack)
    # One explicit AWS provider: the region comes from disagg:region and every taggable resource gets the
    # required tags (the teardown sweep and the policy pack find resources by them).
    aws_provider = aws.Provider(
        f"{cfg.name}-aws",
        region=cfg.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=tags),
    )
    aws_opts = pulumi.ResourceOptions(providers=[aws_provider])

    network = Network(cfg.name, network_args(cfg), opts=aws_opts)
    cluster = Cluster(cfg.name, cluster_args(cfg), network, opts=aws_opts)
    system = SystemNodePool(f"{cfg.name}-system", system_pool_args(cfg, tags), cluster, network, opts=aws_opts)
    # The add-ons that need a node (CoreDNS, the EBS CSI driver): the cluster's, after the system node group. What
    # runs on the system nodes waits for both.
    system_nodes: list[pulumi.Resource] = [system, *cluster.install_node_addons(system)]
    # disagg:nodeProvisioning: the GPU pools as managed node groups, as Karpenter NodePools (the controller comes
    # first, on the system nodes) or as EKS Auto Mode NodePools. Everything after the pools is the same.
    karpenter: Karpenter | None = None
    gpu_pools: list[pulumi.ComponentResource]
    pools = [(gpu_pool_resource_name(cfg, p.name), gpu_pool_args(cfg, p, tags)) for p in cfg.gpu_pools]
    if cfg.node_provisioning == "karpenter":
        karpenter = Karpenter(f"{cfg.name}-karpenter", karpenter_args(cfg), cluster, system_nodes, opts=aws_opts)
        gpu_pools = [KarpenterGpuPool(n, a, cluster, network, karpenter, opts=aws_opts) for n, a in pools]
    elif cfg.node_provisioning == "autoMode":
        gpu_pools = [AutoModeGpuPool(n, a, cluster, opts=aws_opts) for n, a in pools]
    else:
        gpu_pools = [GpuNodePool(n, a, cluster, network, opts=aws_opts) for n, a in pools]

    # Platform and serving children get the stack's Kubernetes provider (and the AWS one for their IAM roles).
    k8s_opts = pulumi.ResourceOptions(providers=[aws_provider, cluster.provider])
    platform = Platform(cfg.name, platform_args(cfg, stack), cluster, system_nodes=system_nodes, opts=k8s_opts)
    hf_token = pulumi.Output.secret(cfg.hf_token.get_secret_value()) if cfg.hf_token else None
    api_key = cfg.serving.router.api_key
    router_api_key = pulumi.Output.secret(api_key.get_secret_value()) if api_key is not None else None
    serving = Serving(
        cfg.name, serving_spec(cfg), cluster, platform, hf_token, opts=k8s_opts, gpu_pools=gpu_pools, router_api_key=router_api_key
    )

    return merge_exports(p.exports() for p in (network, cluster, system, *([karpenter] if karpenter else []), *gpu_pools, platform, serving))


def merge_exports(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The stack outputs from every component's own: a key two components export is a map each adds its entries to
    (the node pools' `gpuPools` and `nodeRoleArns`); any other collision is a bug, not an output to overwrite."""
    out: dict[str, Any] = {}
    for exports in parts:
        for key, value in exports.items():
            if key not in out:
                out[key] = dict(value) if isinstance(value, dict) else value
                continue
            if not (isinstance(out[key], dict) and isinstance(value, dict)) or set(out[key]) & set(value):
                raise ValueError(f"stack output {key!r} is exported twice")
            out[key].update(value)
    return out
