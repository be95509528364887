"""Platform: the operators and add-ons installed into the cluster before the workloads.

Wiring only: the add-ons are `AddonSpec`s (components/builders/addons.py), their custom resources plain manifests
(components/builders/platform_objects.py). One loop installs every spec as a `helm.v3.Release` (Helm hooks run:
KAI applies its config in a post-install hook, pulumi-kubernetes#3284), one loop creates every custom resource
after the release that installs its CRD.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.builders import lbc_iam
from components.builders import platform_values as pv
from components.builders.addons import AddonSpec, addon_specs, managed_namespaces
from components.builders.platform_objects import platform_objects
from components.cluster import Cluster
from stacks.config.stack import StackConfig

TYPE = "disagg:platform:Platform"

LBC = "aws-load-balancer-controller"
MONITORING = "kube-prometheus-stack"


class Platform(pulumi.ComponentResource):
    releases: dict[str, k8s.helm.v3.Release]
    custom_resources: dict[str, k8s.apiextensions.CustomResource]
    queue_name: str
    topology_name: str
    monitoring_release_label: str | None
    monitoring_namespace: str | None
    prometheus_url: str | None

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        cluster: Cluster,
        node_pools: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(TYPE, name, None, opts)
        # A component's depends_on is not inherited by its children: every root child names the node pools itself,
        # so the platform installs after the nodes exist and is removed before they go (its hook jobs need them).
        after_nodes = list(node_pools)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        extra_deps: dict[str, list[pulumi.Resource]] = {}
        specs = addon_specs(
            cfg,
            stack=pulumi.get_stack(),
            vpc_id=cluster.eks.core.vpc_id if cfg.platform.load_balancer_controller.enabled else None,
        )
        if any(s.key == LBC for s in specs):
            extra_deps[LBC] = [self._lbc_identity(name, cfg, after_nodes)]

        self.namespaces: dict[str, k8s.core.v1.Namespace] = {
            ns: k8s.core.v1.Namespace(
                f"{name}-ns-{ns}",
                metadata={"name": ns, "labels": labels} if labels else {"name": ns},
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=after_nodes)),
            )
            for ns, labels in managed_namespaces(specs).items()
        }

        self.releases = {}
        for spec in specs:
            deps: list[pulumi.Resource] = [*after_nodes, *extra_deps.get(spec.key, [])]
            if spec.manage_namespace:
                deps.append(self.namespaces[spec.namespace])
            deps += [self.releases[d] for d in spec.depends_on]
            self.releases[spec.key] = self._release(name, spec, pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=deps)))

        self.custom_resources = {}
        for obj in platform_objects(cfg, set(self.releases)):
            m = obj.manifest
            deps = [self.releases[obj.release], *(self.custom_resources[a] for a in obj.after)]
            self.custom_resources[obj.key] = k8s.apiextensions.CustomResource(
                f"{name}-{obj.key}",
                api_version=m["apiVersion"],
                kind=m["kind"],
                metadata=m["metadata"],
                spec=m["spec"],
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=deps)),
            )

        # For the serving layer.
        self.queue_name = cfg.platform.kai.queue.name
        self.topology_name = cfg.platform.kai.topology_name
        monitoring = MONITORING in self.releases
        # Prometheus selects ServiceMonitors/PodMonitors of every namespace without a label selector (values:
        # *SelectorNilUsesHelmValues false); the conventional `release` label is offered for those who narrow it.
        self.monitoring_release_label = pv.MONITORING_RELEASE if monitoring else None
        self.monitoring_namespace = pv.MONITORING_NAMESPACE if monitoring else None
        self.prometheus_url = pv.prometheus_url() if monitoring else None
        self.register_outputs(
            {
                "releases": {k: r.status for k, r in self.releases.items()},
                "queueName": self.queue_name,
                "topologyName": self.topology_name,
            }
        )

    def _release(self, name: str, spec: AddonSpec, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            f"{name}-{spec.key}",
            k8s.helm.v3.ReleaseArgs(
                name=spec.key,  # a fixed Helm release name (no random suffix): chart object names derive from it
                chart=spec.chart,
                version=spec.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=spec.repository) if spec.repository else None,
                namespace=spec.namespace,
                create_namespace=spec.create_namespace,
                values=spec.values,
                timeout=spec.timeout,
                atomic=spec.atomic,
                cleanup_on_fail=spec.cleanup_on_fail,
                max_history=spec.max_history,
                # Wait for the chart's workloads and webhooks: the custom resources applied next need them.
                skip_await=False,
            ),
            opts=opts,
        )

    def _lbc_identity(self, name: str, cfg: StackConfig, after_nodes: list[pulumi.Resource]) -> pulumi.Resource:
        """IAM role of the Load Balancer Controller, bound to its service account through EKS Pod Identity."""
        aws_opts = pulumi.ResourceOptions(parent=self, depends_on=after_nodes)
        role = aws.iam.Role(
            f"{name}-lbc",
            assume_role_policy=json.dumps(lbc_iam.pod_identity_trust_policy()),
            description=f"AWS Load Balancer Controller of EKS cluster {cfg.cluster_name}",
            opts=aws_opts,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-lbc",
            role=role.id,
            policy=json.dumps(lbc_iam.lbc_iam_policy(cfg.region)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The controller reads credentials at start: the association and the permissions exist before its pods.
        return aws.eks.PodIdentityAssociation(
            f"{name}-lbc",
            cluster_name=cfg.cluster_name,
            namespace=lbc_iam.NAMESPACE,
            service_account=lbc_iam.SERVICE_ACCOUNT,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after_nodes, policy]),
        )

    def exports(self) -> dict[str, Any]:
        return {
            "platformAddons": {k: r.version for k, r in self.releases.items()},
            "kaiQueue": self.queue_name,
        }
