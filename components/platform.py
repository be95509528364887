"""Platform: the operators and add-ons installed into the cluster before the workloads."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster

from stacks.config.stack import StackConfig

TYPE = "disagg:platform:Platform"


class Platform(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        cluster: Cluster,
        node_pools: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(TYPE, name, None, opts)
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        self.register_outputs({})
