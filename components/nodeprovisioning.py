"""GPU nodes from Karpenter or EKS Auto Mode (`disagg:nodeProvisioning`): wiring only, the objects are built in
components/builders/karpenter.py.

- `Karpenter`: the controller, installed before any GPU node exists and after the system node group it runs on:
  its node role (EC2_LINUX access entry), its Pod Identity role with the controller policies, the SQS interruption
  queue and the EventBridge rules feeding it, and the chart as a `helm.v3.Release`.
- `KarpenterGpuPool`: one EC2NodeClass and one NodePool per GPU pool, both after the release whose chart installs
  their CRDs.
- `AutoModeGpuPool`: one NodePool per GPU pool on EKS Auto Mode's built-in NodeClass.

Teardown: Karpenter's instances are not in Pulumi state. Every NodePool and EC2NodeClass depends on the controller
release, so `pulumi destroy` deletes them while the controller still runs; the NodePool is deleted in the foreground
and waits for its NodeClaims (and so their instances), and the EC2NodeClass's finalizer waits for every NodeClaim of
the class, then removes Karpenter's launch templates and instance profile (aws/karpenter-provider-aws @ v1.14.1
pkg/controllers/nodeclass/controller.go `finalize`). Only then are the release, the queue and the node role deleted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_args import GpuPoolArgs, KarpenterArgs
from components.builders import karpenter as kb
from components.cluster import Cluster
from components.network import Network
from components.nodepools import node_role
from components.pod_identity import pod_identity
from facts.versions import pin

KARPENTER_TYPE = "disagg:aws:Karpenter"
KARPENTER_POOL_TYPE = "disagg:aws:KarpenterGpuPool"
AUTO_MODE_POOL_TYPE = "disagg:aws:AutoModeGpuPool"

# A p5 drains its pods (engine grace periods), terminates and gives back its 32 EFA interfaces in minutes; the
# provider's default wait for a deleted custom resource is 10 minutes (pulumi-kubernetes await logic).
NODE_DELETE_TIMEOUT = "45m"


class Karpenter(pulumi.ComponentResource):
    """The Karpenter controller and what it needs in AWS."""

    release: k8s.helm.v3.Release
    node_role: aws.iam.Role
    queue: aws.sqs.Queue

    def __init__(
        self,
        name: str,
        args: KarpenterArgs,
        cluster: Cluster,
        after_nodes: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`after_nodes`: what the controller waits for and outlives: the system node group it runs on and the add-ons
        that run there (CoreDNS)."""
        super().__init__(KARPENTER_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        part = args.partition

        # The nodes' role: the managed node groups' policies (ECR, CNI, SSM); Karpenter makes the instance profile.
        self.node_role, node_attachments = node_role(name, part, self)
        # EKS creates access entries for managed node group roles only; nodes Karpenter launches join through this
        # one (type EC2_LINUX: EKS maps it to system:nodes itself).
        self.access_entry = aws.eks.AccessEntry(
            f"{name}-node",
            cluster_name=cluster.eks_cluster_name,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster.eks]),
        )

        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            name=kb.interruption_queue_name(args.cluster_name),
            message_retention_seconds=kb.QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=self.queue.id,
            policy=self.queue.arn.apply(lambda arn: json.dumps(kb.interruption_queue_policy(arn))),
            opts=child,
        )
        self.event_targets: list[aws.cloudwatch.EventTarget] = []
        for key, source, detail_type in kb.INTERRUPTION_EVENTS:
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}",
                description=f"Karpenter interruption events of {args.cluster_name}: {detail_type}",
                event_pattern=json.dumps(kb.event_pattern(source, detail_type)),
                opts=child,
            )
            self.event_targets.append(
                aws.cloudwatch.EventTarget(
                    f"{name}-{key}",
                    rule=rule.name,
                    arn=self.queue.arn,
                    target_id=kb.EVENT_TARGET_ID,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
                )
            )

        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        documents = pulumi.Output.all(account, self.node_role.arn, self.queue.arn).apply(
            lambda a: kb.controller_policies(
                cluster_name=args.cluster_name, region=args.region, partition=part, account_id=a[0], node_role_arn=a[1], queue_arn=a[2]
            )
        )

        def grant(role: aws.iam.Role) -> list[pulumi.Resource]:
            # Managed policies, one per policy of Karpenter's CloudFormation: together they exceed the 10,240
            # characters IAM allows a role's inline policies.
            attachments: list[pulumi.Resource] = []
            for key in ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "resource-discovery"):
                policy = aws.iam.Policy(
                    f"{name}-{key}",
                    description=f"Karpenter controller of {args.cluster_name}: {key}",
                    policy=documents.apply(lambda d, k=key: json.dumps(d[k])),
                    opts=child,
                )
                attachments.append(aws.iam.RolePolicyAttachment(f"{name}-{key}", role=role.name, policy_arn=policy.arn, opts=child))
            return attachments

        identity = pod_identity(
            f"{name}-controller",
            parent=self,
            cluster_name=cluster.eks_cluster_name,
            namespace=kb.NAMESPACE,
            service_account=kb.SERVICE_ACCOUNT,
            grant=grant,
            description=f"Karpenter controller of EKS cluster {args.cluster_name}",
            association_after=[cluster.boot_addons["eks-pod-identity-agent"]],
        )
        self.controller_role = identity.role
        self.pod_identity = identity.association

        p = pin("karpenter")
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            k8s.helm.v3.ReleaseArgs(
                name=kb.RELEASE,
                chart=p.chart,
                version=p.version,
                namespace=kb.NAMESPACE,
                values=kb.helm_values(args.cluster_name, self.queue.name, args.node_repair),
                timeout=kb.RELEASE_TIMEOUT,
                atomic=False,
                cleanup_on_fail=True,
                max_history=10,
                skip_await=False,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=cluster.provider,
                # The controller reads its credentials and queue at start, runs on the system nodes, and must outlive
                # every node it launched: all of these are deleted after it.
                depends_on=[*after_nodes, self.pod_identity, self.access_entry, *node_attachments, *self.event_targets],
            ),
        )
        self.register_outputs({"release": self.release.status, "interruptionQueue": self.queue.name})

    def exports(self) -> dict[str, Any]:
        return {
            "karpenter": {
                "version": self.release.version,
                "interruptionQueue": self.queue.name,
                "nodeRoleArn": self.node_role.arn,
                "controllerRoleArn": self.controller_role.arn,
            }
        }


class KarpenterGpuPool(pulumi.ComponentResource):
    """One GPU pool as a Karpenter EC2NodeClass and NodePool."""

    def __init__(
        self,
        name: str,
        pool: GpuPoolArgs,
        cluster: Cluster,
        network: Network,
        karpenter: Karpenter,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(KARPENTER_POOL_TYPE, name, None, opts)
        self.pool = pool
        self.pool_name = pool.name
        self.zones = list(pool.zones)
        self.efa = pool.efa
        self.node_role = karpenter.node_role
        groups: list[Any] = [cluster.cluster_security_group_id]
        after: list[pulumi.Resource] = [karpenter.release]
        if self.efa:
            if cluster.efa_security_group is None:
                raise ValueError(f"pool {pool.name} uses EFA but the cluster has no EFA security group")
            groups.append(cluster.efa_security_group.id)
            after += cluster.efa_security_group_rules
        self.placement_group = None
        placement: Any = pool.placement_group_name
        if pool.shared_placement_group:
            self.placement_group = cluster.placement_groups[self.zones[0]]
            placement = self.placement_group.name
            after.append(self.placement_group)
        node_class = kb.ec2_node_class(
            pool,
            node_role=karpenter.node_role.name,
            subnet_ids=network.subnets_for(self.zones),
            security_group_ids=groups,
            placement_group_name=placement,
            tags={**pool.tags, "Name": f"{pool.cluster_name}-{pool.name}"},
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=cluster.provider, custom_timeouts=pulumi.CustomTimeouts(delete=NODE_DELETE_TIMEOUT)
        )
        self.node_class = _custom_resource(
            f"{name}-nodeclass", node_class, pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=after))
        )
        self.node_pool = _custom_resource(
            f"{name}-nodepool",
            kb.node_pool(pool, node_class_ref=kb.karpenter_node_class_ref(pool)),
            pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[self.node_class, karpenter.release])),
        )
        self.register_outputs({"nodePool": pool.name})

    def exports(self) -> dict[str, Any]:
        """This pool's entries of the stack's `gpuPools` and `nodeRoleArns` maps (the node role is Karpenter's)."""
        placement = self.placement_group.name if self.placement_group else self.pool.placement_group_name
        return {"gpuPools": {self.pool_name: _pool_entry(self, "karpenter", placement)}, "nodeRoleArns": {self.pool_name: self.node_role.arn}}


class AutoModeGpuPool(pulumi.ComponentResource):
    """One GPU pool as an EKS Auto Mode NodePool on the built-in NodeClass."""

    def __init__(self, name: str, pool: GpuPoolArgs, cluster: Cluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__(AUTO_MODE_POOL_TYPE, name, None, opts)
        self.pool = pool
        self.pool_name = pool.name
        self.zones = list(pool.zones)
        self.efa = pool.efa
        # No node role of ours: EKS Auto Mode's (pulumi-eks creates it with the cluster), so no `nodeRoleArns` entry.
        self.node_pool = _custom_resource(
            f"{name}-nodepool",
            kb.auto_mode_node_pool(pool),
            pulumi.ResourceOptions(
                parent=self,
                provider=cluster.provider,
                custom_timeouts=pulumi.CustomTimeouts(delete=NODE_DELETE_TIMEOUT),
                # The NodePool API exists once the cluster's Auto Mode compute is on.
                depends_on=[cluster.eks],
            ),
        )
        self.register_outputs({"nodePool": pool.name})

    def exports(self) -> dict[str, Any]:
        """This pool's entry of the stack's `gpuPools` map."""
        return {"gpuPools": {self.pool_name: _pool_entry(self, "autoMode", None)}}


def _custom_resource(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


def _pool_entry(component: Any, mode: str, placement_group: Any) -> dict[str, Any]:
    pool = component.pool
    return {
        "nodeProvisioning": mode,
        "nodePool": pool.name,
        "instanceType": pool.instance_type,
        "role": pool.role,
        "nodes": pool.nodes,
        "maxNodes": pool.max_nodes,
        "availabilityZones": list(component.zones),
        "availabilityZone": component.zones[0] if len(component.zones) == 1 else None,
        "capacityType": kb.capacity_types(pool)[0],
        "efa": component.efa,
        "placementGroup": placement_group,
    }
