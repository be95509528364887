"""Cluster: the EKS control plane (pulumi-eks), its managed add-ons and their Pod Identity roles, the EFA security
group and placement groups its GPU pools share, and the one explicit Kubernetes provider of the stack.

The managed add-ons come in two phases (components/builders/eks.py): the DaemonSets every node needs from its first
boot are registered with the cluster, and the node groups wait for them (`compute_dependencies`); the add-ons with a
Deployment wait for the system node group, so `install_node_addons` registers them once it exists.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.aws_args import ClusterArgs
from components.builders.eks import (
    ManagedAddon,
    addons_in_phase,
    admin_access_entries,
    child_urn,
    control_plane_log_group,
    managed_addons,
)
from components.builders.iam import managed_policy_arn
from components.builders.karpenter import AUTO_BUILTIN_NODE_POOLS
from components.builders.launch_template import placement_group_alias_urn
from components.network import Network
from components.pod_identity import pod_identity

if TYPE_CHECKING:
    from components.nodepools import SystemNodePool

TYPE = "disagg:aws:Cluster"
ADDON_TYPE = "aws:eks/addon:Addon"


def register_addon(
    resource_name: str, cluster_name: pulumi.Input[str], spec: ManagedAddon, opts: pulumi.ResourceOptions
) -> aws.eks.Addon:
    """One EKS managed add-on at its pinned version. OVERWRITE on create and update: the add-on owns its objects,
    so a hand edit in the cluster is reset rather than blocking an upgrade."""
    return aws.eks.Addon(
        resource_name,
        cluster_name=cluster_name,
        addon_name=spec.name,
        addon_version=spec.version,
        configuration_values=json.dumps(spec.configuration, sort_keys=True) if spec.configuration else None,
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        opts=opts,
    )


class Cluster(pulumi.ComponentResource):
    eks: eks.Cluster
    provider: k8s.Provider
    name: str  # the EKS cluster name, a plain string (known at preview)

    def __init__(self, name: str, args: ClusterArgs, network: Network, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = args.cluster_name
        self.kubernetes_version = args.kubernetes_version
        self.vpc_id = network.vpc_id

        key_arn: pulumi.Input[str] | None = None
        self.kms_key: aws.kms.Key | None = None
        if args.secrets_encryption:
            if args.kms_key_arn:
                key_arn = args.kms_key_arn
            else:
                # The default key policy (account root) is enough: EKS creates its own grant on the key, using the
                # kms:CreateGrant/DescribeKey permission of whoever runs `pulumi up`.
                self.kms_key = aws.kms.Key(
                    f"{name}-secrets",
                    description=f"EKS {args.cluster_name}: envelope encryption of Kubernetes secrets",
                    enable_key_rotation=True,
                    deletion_window_in_days=30,
                    # Losing the key loses every secret in etcd: protected always (docs/aws.md, "Destroy").
                    opts=pulumi.ResourceOptions(parent=self, protect=True),
                )
                aws.kms.Alias(f"{name}-secrets", name=f"alias/{args.cluster_name}-eks-secrets", target_key_id=self.kms_key.key_id, opts=child)
                key_arn = self.kms_key.arn
        self.kms_key_arn = key_arn

        access_entries = {
            key: eks.AccessEntryArgs(
                principal_arn=e["principal_arn"],
                type=eks.AccessEntryType.STANDARD,
                access_policies={
                    "cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=e["policy_arn"],
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    )
                },
            )
            for key, e in admin_access_entries(args.admin_principal_arns).items()
        }

        # Ours, not EKS's: created before the cluster (EKS then writes into it) and deleted after it, so no log group
        # with unlimited retention is left behind by `pulumi destroy`. A group left by an earlier cluster of the same
        # name must be deleted first (docs/aws.md, "Cluster").
        self.log_group: aws.cloudwatch.LogGroup | None = None
        if args.log_types:
            self.log_group = aws.cloudwatch.LogGroup(
                f"{name}-control-plane-logs",
                name=control_plane_log_group(args.cluster_name),
                retention_in_days=args.log_retention_days,
                opts=child,
            )

        self.eks = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=network.vpc_id,
            # Private subnets only: pulumi-eks gives the control plane every subnet it is passed (public and private,
            # nodejs/eks/cluster/cluster.ts `clusterSubnetIds`), and EKS places the control plane's ENIs in them. Load
            # balancers find the public subnets by their tags, not through the cluster.
            private_subnet_ids=list(network.private_subnet_ids.values()),
            # API mode: access through EKS access entries only (no aws-auth ConfigMap to drift). EKS itself creates
            # the entries of managed node group roles.
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries or None,
            skip_default_node_group=True,
            # The extra cluster/node security groups pulumi-eks adds serve only its self-managed node groups; managed
            # node groups use the EKS-created cluster security group. Leaving them out also removes the group that
            # most often blocks `destroy` with DependencyViolation (pulumi-eks#1226).
            skip_default_security_groups=True,
            create_oidc_provider=True,
            enabled_cluster_log_types=list(args.log_types),
            encryption_config_key_arn=key_arn,
            endpoint_private_access=args.endpoint_private_access,
            endpoint_public_access=args.endpoint_public_access,
            public_access_cidrs=list(args.public_access_cidrs) if args.endpoint_public_access else None,
            deletion_protection=args.deletion_protection,
            # STANDARD: a version leaving standard support is upgraded instead of silently billed at the extended
            # support rate (EKS creates clusters with EXTENDED when no policy is given).
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=args.support_type),
            # disagg:nodeProvisioning autoMode: pulumi-eks turns on the cluster's compute, block storage and load
            # balancing capabilities together, adds the Auto Mode policies to the cluster role and creates the node
            # role (pulumi/pulumi-eks@7bf0c1b nodejs/eks/cluster/cluster.ts `autoMode`). Of the built-in node pools
            # only `system` stays, for the built-in `default` NodeClass the GPU NodePools reference.
            auto_mode=(
                eks.AutoModeOptionsArgs(enabled=True, compute_config=eks.ClusterComputeConfigArgs(node_pools=list(AUTO_BUILTIN_NODE_POOLS)))
                if args.auto_mode
                else None
            ),
            # Every add-on is an EKS managed add-on registered below at its pinned version, so EKS installs no
            # self-managed copies and pulumi-eks creates none of its own (vpc-cni, kube-proxy, coredns).
            bootstrap_self_managed_addons=False,
            use_default_vpc_cni=True,
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            # Protected always: replacing or deleting the cluster takes every workload with it. pulumi-eks's children
            # inherit it (the component's `protect` reaches its construct, and children inherit their parent's).
            opts=pulumi.ResourceOptions(parent=self, protect=True, depends_on=[self.log_group] if self.log_group else None),
        )
        self.eks_cluster_name: pulumi.Output[str] = self.eks.eks_cluster.name
        # The EKS-created cluster security group: managed nodes get it by default, the control plane's ENIs carry it,
        # and it allows all traffic within itself. Launch templates with their own interfaces must list it.
        self.cluster_security_group_id: pulumi.Output[str] = self.eks.eks_cluster.vpc_config.apply(
            lambda v: v.cluster_security_group_id
        )

        # Add-ons the nodes need from their first boot; the node groups depend on them.
        addons = managed_addons(args.prefix_delegation)
        self.boot_addons: dict[str, aws.eks.Addon] = {
            spec.name: register_addon(f"{name}-{spec.name}", self.eks_cluster_name, spec, child)
            for spec in addons_in_phase(addons, "before-compute")
        }
        # The add-ons that need a node to run on: registered by `install_node_addons`, after the system node group.
        self._node_addon_specs = addons_in_phase(addons, "after-system-nodes")
        self.node_addons: dict[str, aws.eks.Addon] = {}
        # Their Pod Identity roles exist before them (the add-on's pods read credentials at start).
        self.pod_identity: dict[str, aws.eks.PodIdentityAssociation] = {}
        self.pod_identity_roles: dict[str, aws.iam.Role] = {}
        for spec in self._node_addon_specs:
            if spec.pod_identity is None:
                continue
            namespace, service_account, policy = spec.pod_identity
            identity = pod_identity(
                f"{name}-{spec.name}",
                parent=self,
                cluster_name=self.eks_cluster_name,
                namespace=namespace,
                service_account=service_account,
                grant=lambda role, key=f"{name}-{spec.name}", arn=managed_policy_arn(policy, args.partition): [
                    aws.iam.RolePolicyAttachment(key, role=role.name, policy_arn=arn, opts=child)
                ],
                association_after=[self.boot_addons["eks-pod-identity-agent"]],
            )
            self.pod_identity_roles[spec.name] = identity.role
            self.pod_identity[spec.name] = identity.association

        # EFA needs a security group that allows all traffic to and from itself on every EFA interface. One group for
        # all EFA pools, because KV transfer runs between the prefill and decode pools.
        self.efa_security_group: aws.ec2.SecurityGroup | None = None
        self.efa_security_group_rules: list[pulumi.Resource] = []
        # Not on EKS Auto Mode: its built-in NodeClass puts the cluster security group (all traffic within itself) on
        # the nodes and takes no group of ours.
        if args.efa_security_group:
            sg = aws.ec2.SecurityGroup(
                f"{name}-efa",
                vpc_id=network.vpc_id,
                description=f"EFA traffic between the GPU nodes of {args.cluster_name} (all traffic within this group)",
                tags={"Name": f"{args.cluster_name}-efa"},
                opts=child,
            )
            efa_in = aws.vpc.SecurityGroupIngressRule(
                f"{name}-efa-in", security_group_id=sg.id, referenced_security_group_id=sg.id, ip_protocol="-1",
                description="EFA: all traffic from the group", opts=child,
            )
            efa_out = aws.vpc.SecurityGroupEgressRule(
                f"{name}-efa-out", security_group_id=sg.id, referenced_security_group_id=sg.id, ip_protocol="-1",
                description="EFA: all traffic to the group", opts=child,
            )
            self.efa_security_group = sg
            # The rules are resources of their own: EFA pools wait for them, so no node boots into a group that still
            # drops EFA traffic, and teardown keeps them until the last EFA node is gone.
            self.efa_security_group_rules = [efa_in, efa_out]

        # One cluster placement group per zone, shared by every EFA pool there, prefill and decode alike: their KV
        # transfer then runs inside one placement group's network spine. Before, each pool had its own group; the
        # zone's group takes over the one of the first pool that uses it (an alias), so that pool's launch template
        # and nodes stay as they are, and only the other pools of the zone move into it (docs/aws.md).
        self.placement_groups: dict[str, aws.ec2.PlacementGroup] = {}
        for zone, first_pool in args.placement_groups.items():
            self.placement_groups[zone] = aws.ec2.PlacementGroup(
                f"{name}-efa-{zone}",
                strategy="cluster",
                opts=pulumi.ResourceOptions(
                    parent=self,
                    aliases=[placement_group_alias_urn(pulumi.get_stack(), pulumi.get_project(), first_pool)],
                ),
            )

        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        # The one Kubernetes provider of the stack. `cluster_identifier` is a plain string, so a kubeconfig change
        # (new token command, endpoint, CA) does not replace every Kubernetes resource (pulumi-kubernetes#2745).
        # `delete_unreachable` is left unset on purpose: set PULUMI_K8S_DELETE_UNREACHABLE=true only for a destroy
        # whose cluster is already gone (docs/aws.md); set permanently it would drop resources from state on any
        # transient loss of API access.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.eks.kubeconfig_json,
            cluster_identifier=args.cluster_name,
            enable_server_side_apply=True,
            opts=child,
        )
        self.register_outputs({"name": self.name, "endpoint": self.eks.eks_cluster.endpoint})

    def compute_dependencies(self) -> list[pulumi.Resource]:
        """What every node group waits for: the control plane and the add-ons a node needs from its first boot."""
        return [self.eks, *self.boot_addons.values()]

    def install_node_addons(self, system_pool: SystemNodePool) -> list[aws.eks.Addon]:
        """The add-ons with a Deployment (CoreDNS, the EBS CSI driver), once the system node group they run on exists.

        The system node pool used to register them as its children, named after it: each keeps that URN as an alias,
        so a deployed add-on moves here without being replaced."""
        if self.node_addons:
            raise ValueError(f"{self.pulumi_resource_name}: the node add-ons are installed already")
        for spec in self._node_addon_specs:
            deps: list[pulumi.Resource] = [system_pool.managed_node_group]
            if spec.name in self.pod_identity:
                deps.append(self.pod_identity[spec.name])
            old_name = f"{system_pool.pulumi_resource_name}-{spec.name}"
            self.node_addons[spec.name] = register_addon(
                f"{self.pulumi_resource_name}-{spec.name}",
                self.eks_cluster_name,
                spec,
                pulumi.ResourceOptions(
                    parent=self,
                    depends_on=deps,
                    aliases=[system_pool.urn.apply(lambda u, n=old_name: child_urn(u, ADDON_TYPE, n))],
                ),
            )
        return list(self.node_addons.values())

    def exports(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "clusterName": self.eks_cluster_name,
            "clusterEndpoint": self.eks.eks_cluster.endpoint,
            "kubeconfig": self.kubeconfig,
            "oidcProviderArn": self.eks.oidc_provider_arn,
            "oidcProviderUrl": self.eks.oidc_provider_url,
            "clusterSecurityGroupId": self.cluster_security_group_id,
            "podIdentity": {
                "agentAddonVersion": self.boot_addons["eks-pod-identity-agent"].addon_version,
                "roles": {n: r.arn for n, r in self.pod_identity_roles.items()},
            },
        }
        return out
