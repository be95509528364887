"""Node pools: the CPU system managed node group and one GPU managed node group per configured pool.

Every pool has its own launch template (built by components/builders/launch_template.py): pulumi-eks's
`enable_efa_support` cannot be combined with a custom launch template, and Capacity Blocks need one, so the EFA
interfaces, placement, capacity targeting, NodeConfig user data and metadata options are all ours. No node has an SSH
key: operators reach nodes through SSM Session Manager (the node role carries AmazonSSMManagedInstanceCore).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components.aws_args import GpuPoolArgs, SystemPoolArgs
from components.builders.eks import gpu_node_group, managed_node_group_child_urn
from components.builders.iam import node_policy_arns, service_trust_policy
from components.builders.launch_template import GPU_POOL_TYPE, efa_network_interfaces, instance_type_in_template, launch_template
from components.builders.scheduling import eks_taint
from components.builders.userdata import encode, node_user_data
from components.cluster import Cluster
from components.network import Network

SYSTEM_TYPE = "disagg:aws:SystemNodePool"
GPU_TYPE = GPU_POOL_TYPE

GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"  # driver and container toolkit come with the AMI
SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"

# pulumi-aws launch template argument -> Args class of its value (nested dicts from the builder map onto these).
_LT_ARGS: dict[str, Any] = {
    "metadata_options": aws.ec2.LaunchTemplateMetadataOptionsArgs,
    "placement": aws.ec2.LaunchTemplatePlacementArgs,
    "instance_market_options": aws.ec2.LaunchTemplateInstanceMarketOptionsArgs,
}


def launch_template_args(spec: dict[str, Any]) -> dict[str, Any]:
    """Builder dict -> keyword arguments of aws.ec2.LaunchTemplate (typed Args, so a misspelt key fails loudly)."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in _LT_ARGS:
            out[key] = _LT_ARGS[key](**value)
        elif key == "network_interfaces":
            out[key] = [aws.ec2.LaunchTemplateNetworkInterfaceArgs(**nic) for nic in value]
        elif key == "block_device_mappings":
            out[key] = [
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=m["device_name"], ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(**m["ebs"])
                )
                for m in value
            ]
        elif key == "tag_specifications":
            out[key] = [aws.ec2.LaunchTemplateTagSpecificationArgs(**t) for t in value]
        elif key == "capacity_reservation_specification":
            out[key] = aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                capacity_reservation_preference=value.get("capacity_reservation_preference"),
                capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                    **value["capacity_reservation_target"]
                ),
            )
        else:
            out[key] = value
    return out


def node_role(name: str, partition: str, parent: pulumi.Resource) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """The role of a pool's nodes (`<name>-node`) with the managed node groups' policies (ECR, CNI, SSM)."""
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(f"{name}-node", assume_role_policy=json.dumps(service_trust_policy("ec2.amazonaws.com")), opts=opts)
    attachments = [
        aws.iam.RolePolicyAttachment(f"{name}-node-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=arn, opts=opts)
        for arn in node_policy_arns(partition)
    ]
    return role, attachments


def _launch_template_ref(lt: aws.ec2.LaunchTemplate) -> aws.eks.NodeGroupLaunchTemplateArgs:
    # The latest version, so a launch template change rolls the node group (EKS replaces nodes in order).
    return aws.eks.NodeGroupLaunchTemplateArgs(id=lt.id, version=lt.latest_version.apply(str))


class SystemNodePool(pulumi.ComponentResource):
    """CPU nodes for CoreDNS, the controllers, Helm hook jobs and the router. The add-ons that need a node to run on
    (CoreDNS, the EBS CSI driver) are the cluster's and wait for this node group (`Cluster.install_node_addons`)."""

    def __init__(self, name: str, args: SystemPoolArgs, cluster: Cluster, network: Network, opts: pulumi.ResourceOptions | None = None):
        super().__init__(SYSTEM_TYPE, name, None, opts)
        self.pool_name = "system"
        self.node_role, attachments = node_role(name, args.partition, self)
        lt = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            **launch_template_args(
                launch_template(
                    description=f"{args.cluster_name} system nodes",
                    root_volume_gb=args.disk_size_gb,
                    tags={**args.tags, "Name": f"{args.cluster_name}-system"},
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.launch_template = lt
        self.managed_node_group = eks.ManagedNodeGroup(
            f"{name}-ng",
            cluster=cluster.eks,
            node_role=self.node_role,
            instance_types=[args.instance_type],
            capacity_type="ON_DEMAND",
            ami_type=SYSTEM_AMI_TYPE,
            version=args.kubernetes_version,
            release_version=args.ami_release_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=args.min_nodes, desired_size=args.nodes, max_size=args.max_nodes),
            subnet_ids=network.subnets_for(list(args.zones)),
            labels=dict(args.labels),
            launch_template=_launch_template_ref(lt),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The cluster and role go in by reference, which the engine does not count as a dependency of a
                # remote component: say it, so the node group is created after them and deleted before them.
                depends_on=[*cluster.compute_dependencies(), self.node_role, *attachments, *network.egress],
            ),
        )
        self.node_group = self.managed_node_group.node_group
        self.node_group_name: pulumi.Output[str] = self.node_group.node_group_name
        self.register_outputs({"nodeGroupName": self.node_group_name})

    def exports(self) -> dict[str, Any]:
        return {"systemNodeGroupName": self.node_group_name, "nodeRoleArns": {self.pool_name: self.node_role.arn}}


class GpuNodePool(pulumi.ComponentResource):
    """One GPU managed node group (`aws.eks.NodeGroup`) with its own launch template and role; EFA pools launch into
    their zone's shared cluster placement group (owned by the Cluster component) or the group their reservation was
    made in."""

    def __init__(
        self,
        name: str,
        pool: GpuPoolArgs,
        cluster: Cluster,
        network: Network,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(GPU_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pool = pool
        self.pool_name = pool.name
        it = pool.instance
        self.zones = list(pool.zones)
        self.efa = pool.efa
        self.node_role, attachments = node_role(name, pool.partition, self)

        self.placement_group: aws.ec2.PlacementGroup | None = None
        if pool.shared_placement_group:
            self.placement_group = cluster.placement_groups[self.zones[0]]
        placement_name = self.placement_group.name if self.placement_group else pool.placement_group_name

        nics = None
        if self.efa:
            if cluster.efa_security_group is None:
                raise ValueError(f"pool {pool.name} uses EFA but the cluster has no EFA security group")
            nics = efa_network_interfaces(it, [cluster.cluster_security_group_id, cluster.efa_security_group.id])
        user_data = node_user_data(it, pool.nvme_cache)
        in_template = instance_type_in_template(pool.capacity)
        spec = launch_template(
            description=f"{pool.cluster_name} GPU pool {pool.name} ({pool.instance_type}, {pool.role})",
            root_volume_gb=pool.root_volume_gb,
            tags={**pool.tags, "Name": f"{pool.cluster_name}-{pool.name}"},
            network_interfaces=nics,
            capacity=pool.capacity,
            placement_group_name=placement_name,
            user_data=encode(user_data) if user_data else None,
            instance_type=pool.instance_type if in_template else None,
        )
        self.launch_template = aws.ec2.LaunchTemplate(f"{name}-lt", **launch_template_args(spec), opts=child)

        ng = gpu_node_group(pool)
        self.capacity_type = ng["capacity_type"]
        ng_name = f"{name}-ng"
        # pulumi-eks's ManagedNodeGroup cannot pass `updateConfig` or `nodeRepairConfig` (pulumi-eks 4.4.0
        # ManagedNodeGroup args), so GPU pools register the node group themselves, with the inputs the component
        # used to pass its child, under the child's old URN (components/builders/eks.py).
        legacy_urn = self.urn.apply(lambda u: managed_node_group_child_urn(u, ng_name))
        self.node_group = aws.eks.NodeGroup(
            ng_name,
            cluster_name=cluster.eks_cluster_name,
            node_role_arn=self.node_role.arn,
            instance_types=None if in_template else [pool.instance_type],
            capacity_type=self.capacity_type,
            ami_type=GPU_AMI_TYPE,
            version=pool.kubernetes_version,
            release_version=pool.ami_release_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(**ng["scaling_config"]),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(**ng["update_config"]),
            node_repair_config=aws.eks.NodeGroupNodeRepairConfigArgs(**ng["node_repair_config"]),
            # One subnet per EFA pool (its placement group's zone); for a Capacity Block the reservation's zone.
            subnet_ids=network.subnets_for(self.zones),
            labels=dict(pool.labels),
            taints=[aws.eks.NodeGroupTaintArgs(**eks_taint(t)) for t in pool.taints],
            launch_template=_launch_template_ref(self.launch_template),
            opts=pulumi.ResourceOptions(
                parent=self,
                aliases=[legacy_urn],
                ignore_changes=ng["ignore_changes"] or None,
                # With deletion protection the GPU node groups are protected in state too: `pulumi destroy` refuses
                # until `pulumi state unprotect` (docs/aws.md, "Destroy").
                protect=pool.protect,
                depends_on=[
                    *cluster.compute_dependencies(),
                    *attachments,
                    *network.egress,
                    *(cluster.efa_security_group_rules if self.efa else []),
                ],
            ),
        )
        self.node_group_name: pulumi.Output[str] = self.node_group.node_group_name
        self.register_outputs({"nodeGroupName": self.node_group_name})

    def exports(self) -> dict[str, Any]:
        """This pool's entries of the stack's `gpuPools` and `nodeRoleArns` maps."""
        entry = {
            "nodeGroupName": self.node_group_name,
            "instanceType": self.pool.instance_type,
            "role": self.pool.role,
            "nodes": self.pool.nodes,
            "availabilityZones": list(self.zones),
            "availabilityZone": self.zones[0] if len(self.zones) == 1 else None,
            "capacityType": self.capacity_type,
            "efa": self.efa,
            "placementGroup": self.placement_group.name if self.placement_group else self.pool.placement_group_name,
            "launchTemplateId": self.launch_template.id,
        }
        return {"gpuPools": {self.pool_name: entry}, "nodeRoleArns": {self.pool_name: self.node_role.arn}}
