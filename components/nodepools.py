"""Node pools: the CPU system managed node group and one GPU managed node group per configured pool."""

from __future__ import annotations

import pulumi

from components.cluster import Cluster
from components.network import Network
from stacks.config.aws import GpuPoolConfig
from stacks.config.stack import StackConfig

SYSTEM_TYPE = "disagg:aws:SystemNodePool"
GPU_TYPE = "disagg:aws:GpuNodePool"


class SystemNodePool(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, cluster: Cluster, network: Network, opts: pulumi.ResourceOptions | None = None):
        super().__init__(SYSTEM_TYPE, name, None, opts)
        self.node_group = None
        self.register_outputs({})


class GpuNodePool(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        pool: GpuPoolConfig,
        cluster: Cluster,
        network: Network,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(GPU_TYPE, name, None, opts)
        self.pool = pool
        self.node_group = None
        self.register_outputs({})
