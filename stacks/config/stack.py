"""The whole stack config: every key a user sets under `disagg:` in `Pulumi.<stack>.yaml`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from stacks.config.aws import ClusterConfig, GpuPoolConfig, NetworkConfig, SystemPoolConfig
from stacks.config.base import AvailabilityZone, DnsLabel, Model, Region
from stacks.config.platform import PlatformConfig
from stacks.config.serving import ServingConfig


class StackConfig(Model):
    """Top level: one field per `disagg:<key>`."""

    name: DnsLabel = Field(
        json_schema_extra={"defaultDoc": "the stack name"},
        description="Deployment name: prefix of AWS resources and default cluster/namespace name. Default: the stack name.",
    )
    region: Region = Field(description="AWS region, e.g. `us-east-1`. Every AWS resource is created there.")
    availability_zones: list[AvailabilityZone] = Field(
        min_length=2, description="Zones of the VPC subnets (EKS needs at least two). GPU pools pick from these."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on every taggable AWS resource.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="VPC and subnets.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="The EKS cluster.")
    system_pool: SystemPoolConfig = Field(default_factory=SystemPoolConfig, description="The CPU system node group.")
    gpu_pools: list[GpuPoolConfig] = Field(min_length=1, description="GPU node pools (at least one prefill and one decode pool).")
    node_provisioning: Literal["managedNodeGroups", "karpenter", "autoMode"] = Field(
        "managedNodeGroups",
        description=(
            "How the GPU pools get their nodes: `managedNodeGroups` (default: one EKS managed node group per pool, a "
            "fixed `nodes` count), `karpenter` (Karpenter installed by the stack, one EC2NodeClass and NodePool per "
            "pool, nodes added for pending pods up to `maxNodes`) or `autoMode` (EKS Auto Mode, one NodePool per pool "
            "on the built-in NodeClass). The system pool is a managed node group in every mode. Validation names the "
            "pool keys a mode does not support."
        ),
    )
    platform: PlatformConfig = Field(default_factory=PlatformConfig, description="Operators and add-ons installed into the cluster.")
    serving: ServingConfig = Field(description="The model and its prefill, decode and router workloads.")
    hf_token: SecretStr | None = Field(
        None,
        description=(
            "Hugging Face token for gated models. Set it only as a secret: `pulumi config set --secret disagg:hfToken hf_...`. "
            "Default: none (public models)."
        ),
    )

    # Derived names, so every layer names things the same way.
    @property
    def cluster_name(self) -> str:
        return self.cluster.name or self.name

    @property
    def namespace(self) -> str:
        return self.serving.namespace or self.name

    def pool(self, name: str) -> GpuPoolConfig:
        for p in self.gpu_pools:
            if p.name == name:
                return p
        raise KeyError(name)

    def pools_for(self, role: str) -> list[GpuPoolConfig]:
        return [p for p in self.gpu_pools if p.role == role]
