"""The composition of one stack: network -> cluster -> node pools -> platform -> serving.

Each arrow is a dependency Pulumi also uses for teardown, in reverse: serving goes first, then the platform
(while the system nodes its hook jobs need still exist), then the node groups, the cluster and the network. The
platform waits for the system node group only: its controllers and hooks all run there, so it installs while the
GPU node groups are still coming up.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.builders.tags import default_tags
from components.cluster import Cluster
from components.network import Network
from components.nodepools import GpuNodePool, SystemNodePool
from components.nodeprovisioning import AutoModeGpuPool, Karpenter, KarpenterGpuPool
from components.platform import Platform
from components.serving import Serving
from stacks.config.stack import StackConfig
from stacks.plan import gpu_pool_resource_name
from stacks.platform_args import platform_args
from stacks.serving_args import serving_spec


def build(cfg: StackConfig) -> dict[str, Any]:
    """Register every resource of the stack and return the stack outputs."""
    stack = pulumi.get_stack()
    # One explicit AWS provider: the region comes from disagg:region and every taggable resource gets the
    # required tags (the teardown sweep and the policy pack find resources by them).
    aws_provider = aws.Provider(
        f"{cfg.name}-aws",
        region=cfg.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(cfg, stack)),
    )
    aws_opts = pulumi.ResourceOptions(providers=[aws_provider])

    network = Network(cfg.name, cfg, opts=aws_opts)
    cluster = Cluster(cfg.name, cfg, network, opts=aws_opts)
    system = SystemNodePool(f"{cfg.name}-system", cfg, cluster, network, opts=aws_opts)
    # disagg:nodeProvisioning: the GPU pools as managed node groups, as Karpenter NodePools (the controller comes
    # first, on the system nodes) or as EKS Auto Mode NodePools. Everything after the pools is the same.
    karpenter: Karpenter | None = None
    gpu_pools: list[pulumi.ComponentResource]
    if cfg.node_provisioning == "karpenter":
        karpenter = Karpenter(f"{cfg.name}-karpenter", cfg, cluster, system, opts=aws_opts)
        gpu_pools = [
            KarpenterGpuPool(gpu_pool_resource_name(cfg, p.name), cfg, p, cluster, network, karpenter, opts=aws_opts)
            for p in cfg.gpu_pools
        ]
    elif cfg.node_provisioning == "autoMode":
        gpu_pools = [AutoModeGpuPool(gpu_pool_resource_name(cfg, p.name), cfg, p, cluster, opts=aws_opts) for p in cfg.gpu_pools]
    else:
        gpu_pools = [GpuNodePool(gpu_pool_resource_name(cfg, p.name), cfg, p, cluster, network, opts=aws_opts) for p in cfg.gpu_pools]

    # Platform and serving children get the stack's Kubernetes provider (and the AWS one for their IAM roles).
    k8s_opts = pulumi.ResourceOptions(providers=[aws_provider, cluster.provider])
    platform = Platform(cfg.name, platform_args(cfg, stack), cluster, system_pool=system, opts=k8s_opts)
    hf_token = pulumi.Output.secret(cfg.hf_token.get_secret_value()) if cfg.hf_token else None
    api_key = cfg.serving.router.api_key
    router_api_key = pulumi.Output.secret(api_key.get_secret_value()) if api_key is not None else None
    serving = Serving(
        cfg.name, serving_spec(cfg), cluster, platform, hf_token, opts=k8s_opts, gpu_pools=gpu_pools, router_api_key=router_api_key
    )

    outputs: dict[str, Any] = {}
    for part in (network, cluster, system, karpenter, *gpu_pools, platform, serving):
        exports = getattr(part, "exports", None)
        if callable(exports):
            outputs.update(exports())
    return outputs
