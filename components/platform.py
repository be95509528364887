"""Platform: the operators and add-ons installed into the cluster before the workloads.

Wiring only: the add-ons are `AddonSpec`s (components/builders/addons.py), their objects plain manifests
(platform_objects.py: queues, topologies, PDBs; observability.py: dashboards, rules, scrape configs), the
webhook-readiness gates Jobs (webhook_gates.py). One loop installs every spec as a `helm.v3.Release` (Helm hooks
run: KAI applies its config in a post-install hook, pulumi-kubernetes#3284); releases without a real dependency
between them install in parallel. One loop creates every object after the release that installs its CRD or
controller, and after the gate of the operator whose fail-closed webhook admits it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.builders import lbc_iam
from components.builders import platform_values as pv
from components.builders.addons import AddonSpec, addon_namespaces, addon_specs, managed_namespaces
from components.builders.observability import dashboard_titles, observability_objects
from components.builders.platform_args import PlatformArgs
from components.builders.platform_objects import PlatformObject, platform_objects, platform_packs
from components.builders.serving.spec import PlatformFacts, platform_facts
from components.builders.webhook_gates import DEADLINE_SECONDS, gate_manifests, gate_name, gates
from components.cluster import Cluster
from components.pod_identity import pod_identity

TYPE = "disagg:platform:Platform"

LBC = "aws-load-balancer-controller"
MONITORING = "kube-prometheus-stack"
# Managed policy granting aps:RemoteWrite on workspaces (AWS docs, "Set up service roles for the ingestion of metrics").
AMP_REMOTE_WRITE_POLICY = "arn:{partition}:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"

# Built-in kinds the platform creates, and their resource classes; anything else is a custom resource.
_BUILTIN: dict[tuple[str, str], Any] = {
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
}
# Top-level fields of those kinds, in the SDK's argument names (nested values go as the API's camelCase dicts).
_TOP = {"roleRef": "role_ref"}


def register_object(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.Resource:
    """One manifest as its typed resource, or a CustomResource."""
    obj = dict(manifest)
    api_version, kind = obj.pop("apiVersion"), obj.pop("kind")
    cls = _BUILTIN.get((api_version, kind))
    if cls is not None:
        return cls(name, **{_TOP.get(k, k): v for k, v in obj.items()}, opts=opts)
    metadata = obj.pop("metadata")
    return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, metadata=metadata, opts=opts, **obj)


def object_options(obj: PlatformObject, deps: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    """Ordering and replacement of one platform object (pure: tested without the engine)."""
    return pulumi.ResourceOptions(
        depends_on=deps,
        replace_on_changes=list(obj.replace_on_changes) or None,
        delete_before_replace=obj.delete_before_replace or None,
    )


class Platform(pulumi.ComponentResource):
    releases: dict[str, k8s.helm.v3.Release]
    custom_resources: dict[str, pulumi.Resource]
    gates: dict[str, pulumi.Resource]
    queue_name: str
    topology_name: str
    monitoring_release_label: str | None
    monitoring_namespace: str | None
    prometheus_url: str | None
    serving_facts: PlatformFacts

    def __init__(
        self,
        name: str,
        args: PlatformArgs,
        cluster: Cluster,
        system_nodes: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(TYPE, name, None, opts)
        # A component's depends_on is not inherited by its children: every root child names the system node pool
        # (and the add-ons that run on it: CoreDNS, the EBS CSI driver) itself. Every controller and Helm hook of the
        # platform runs there (nodeSelector disagg.io/pool=system), and nothing Helm waits for needs a GPU node, so the
        # add-ons install while the GPU node groups are still coming up, and destroy removes them while the system
        # nodes their delete hooks need are still there.
        after_nodes = list(system_nodes)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        def kopts(deps: list[pulumi.Resource], **kw: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=deps, **kw))

        mon = args.monitoring
        extra_deps: dict[str, list[pulumi.Resource]] = {}
        remote_write_url = None
        self.amp_workspace: aws.amp.Workspace | None = None
        if mon.enabled and mon.amp:
            self.amp_workspace, assoc = self._amp(name, args, after_nodes)
            remote_write_url = self.amp_workspace.prometheus_endpoint.apply(lambda e: f"{e.rstrip('/')}/api/v1/remote_write" if e else e)
            extra_deps.setdefault(MONITORING, []).append(assoc)

        self.grafana_admin_password: pulumi.Output[str] | None = None
        if mon.enabled and mon.grafana:
            # Stable across `pulumi up`s (state), a secret everywhere it appears; rotate: pulumi up --replace <its urn>.
            password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=pulumi.ResourceOptions(parent=self))
            self.grafana_admin_password = pulumi.Output.secret(password.result)

        specs = addon_specs(
            args,
            vpc_id=cluster.eks.core.vpc_id if args.load_balancer_controller.enabled else None,
            remote_write_url=remote_write_url,
            grafana_admin_password=self.grafana_admin_password,
        )
        enabled = {s.key for s in specs}
        if LBC in enabled:
            extra_deps.setdefault(LBC, []).append(self._lbc_identity(name, args, after_nodes))

        self.namespaces: dict[str, k8s.core.v1.Namespace] = {
            ns: k8s.core.v1.Namespace(
                f"{name}-ns-{ns}",
                metadata={"name": ns, "labels": labels} if labels else {"name": ns},
                opts=kopts(after_nodes),
            )
            for ns, labels in managed_namespaces(specs).items()
        }

        self.releases = {}
        for spec in specs:
            deps: list[pulumi.Resource] = [*after_nodes, *extra_deps.get(spec.key, [])]
            if spec.manage_namespace:
                deps.append(self.namespaces[spec.namespace])
            deps += [self.releases[d] for d in spec.depends_on]
            self.releases[spec.key] = self._release(name, spec, kopts(deps))

        namespaces = addon_namespaces()
        objects = [*platform_objects(args, enabled, namespaces), *observability_objects(args, enabled, namespaces)]

        # Webhook-readiness gates: each completes once its operator's webhooks accept a dry run of our objects.
        self.gates = {}
        for gate in gates(enabled, objects, namespaces):
            *rbac, job = gate_manifests(gate)
            prev: list[pulumi.Resource] = [self.releases[gate.key]]
            for m in rbac:
                prev.append(register_object(f"{name}-gate-{gate.key}-{m['kind'].lower()}", m, kopts([self.releases[gate.key]])))
            self.gates[gate.key] = register_object(
                f"{name}-gate-{gate.key}",
                job,
                # A Job's template is immutable and its name fixed: a changed probe recreates it, old one first.
                kopts(prev, delete_before_replace=True, custom_timeouts=pulumi.CustomTimeouts(create=f"{DEADLINE_SECONDS + 300}s")),
            )
            assert gate_name(gate) == job["metadata"]["name"]

        self.custom_resources = {}
        for obj in objects:
            deps = [self.releases[obj.release], *(self.releases[r] for r in obj.also_after if r in self.releases)]
            deps += [self.custom_resources[a] for a in obj.after]
            if obj.gate:
                deps.append(self.gates[obj.gate])
            opts_obj = pulumi.ResourceOptions.merge(k8s_opts, object_options(obj, deps))
            self.custom_resources[obj.key] = register_object(f"{name}-{obj.key}", obj.manifest, opts_obj)

        # For the serving layer.
        self.queue_name = args.kai.queue_name
        self.topology_name = args.kai.topology_name
        self.topology_packs = platform_packs(args)
        self.serving_facts = platform_facts(self.queue_name, self.topology_name, self.topology_packs)
        monitoring = MONITORING in self.releases
        # Prometheus selects ServiceMonitors/PodMonitors of every namespace without a label selector (values:
        # *SelectorNilUsesHelmValues false); the conventional `release` label is offered for those who narrow it.
        self.monitoring_release_label = pv.MONITORING_RELEASE if monitoring else None
        self.monitoring_namespace = pv.MONITORING_NAMESPACE if monitoring else None
        self.prometheus_url = pv.prometheus_url() if monitoring else None
        self.dashboards = dashboard_titles(args) if monitoring else []
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
                disable_openapi_validation=spec.disable_openapi_validation or None,
                # Wait for the chart's workloads: the objects applied next need them (webhooks behind a gate).
                skip_await=False,
            ),
            opts=opts,
        )

    def _amp(self, name: str, cfg: PlatformArgs, after_nodes: list[pulumi.Resource]) -> tuple[aws.amp.Workspace, pulumi.Resource]:
        """AMP workspace and the Prometheus pods' permission to write to it."""
        workspace = aws.amp.Workspace(f"{name}-amp", alias=cfg.cluster_name, opts=pulumi.ResourceOptions(parent=self))
        partition = "aws-us-gov" if cfg.region.startswith("us-gov-") else "aws"
        identity = pod_identity(
            f"{name}-amp-ingest",
            parent=self,
            cluster_name=cfg.cluster_name,
            namespace=pv.MONITORING_NAMESPACE,
            service_account=pv.PROMETHEUS_SERVICE_ACCOUNT,
            description=f"Prometheus of EKS cluster {cfg.cluster_name} writes to AMP",
            grant=lambda role: [
                aws.iam.RolePolicyAttachment(
                    f"{name}-amp-ingest", role=role.name, policy_arn=AMP_REMOTE_WRITE_POLICY.format(partition=partition), opts=pulumi.ResourceOptions(parent=self)
                )
            ],
            depends_on=after_nodes,
        )
        return workspace, identity.association

    def _lbc_identity(self, name: str, cfg: PlatformArgs, after_nodes: list[pulumi.Resource]) -> pulumi.Resource:
        """IAM role of the Load Balancer Controller, bound to its service account through EKS Pod Identity."""
        return pod_identity(
            f"{name}-lbc",
            parent=self,
            cluster_name=cfg.cluster_name,
            namespace=lbc_iam.NAMESPACE,
            service_account=lbc_iam.SERVICE_ACCOUNT,
            description=f"AWS Load Balancer Controller of EKS cluster {cfg.cluster_name}",
            grant=lambda role: [
                aws.iam.RolePolicy(
                    f"{name}-lbc", role=role.id, policy=json.dumps(lbc_iam.lbc_iam_policy(cfg.region)), opts=pulumi.ResourceOptions(parent=self)
                )
            ],
            depends_on=after_nodes,
        ).association

    def exports(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "platformAddons": {k: r.version for k, r in self.releases.items()},
            "kaiQueue": self.queue_name,
        }
        if self.grafana_admin_password is not None:
            out["grafanaAdminPassword"] = self.grafana_admin_password
        if self.amp_workspace is not None:
            out["ampWorkspaceId"] = self.amp_workspace.id
        return out
