"""Serving: prefill, decode and the router as LeaderWorkerSets or one Grove PodCliqueSet."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster
from components.platform import Platform
from stacks.config.stack import StackConfig

TYPE = "disagg:serving:Serving"


class Serving(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        cluster: Cluster,
        platform: Platform,
        hf_token: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(TYPE, name, None, opts)
        self.register_outputs({})
