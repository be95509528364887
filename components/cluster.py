"""Cluster: the EKS control plane (pulumi-eks) and the one explicit Kubernetes provider of the stack."""

from __future__ import annotations

import pulumi
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.network import Network
from stacks.config.stack import StackConfig
from stacks.plan import kubernetes_version

TYPE = "disagg:aws:Cluster"


class Cluster(pulumi.ComponentResource):
    eks: eks.Cluster
    provider: k8s.Provider
    name: str

    def __init__(self, name: str, cfg: StackConfig, network: Network, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        self.name = cfg.cluster_name
        self.eks = eks.Cluster(
            f"{name}-eks",
            name=cfg.cluster_name,
            version=kubernetes_version(cfg),
            vpc_id=network.vpc_id,
            private_subnet_ids=list(network.private_subnet_ids.values()),
            skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.eks.kubeconfig_json,
            cluster_identifier=cfg.cluster_name,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.name})
