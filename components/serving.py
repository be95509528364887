"""Serving: prefill, decode and the router as LeaderWorkerSets or one Grove PodCliqueSet.

Thin on purpose: every manifest comes from `components.builders.serving.manifests` (pure, unit-tested); this
component registers them with the stack's Kubernetes provider, in order, each after the platform release that
installs its CRD or controller.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.builders.serving import HF_TOKEN, ROUTER_API_KEY, Manifest, manifests
from components.builders.serving.common import namespace, served_model_name, workload_name
from components.builders.serving.router import router_url
from components.builders.serving.spec import ServingSpec
from components.cluster import Cluster
from components.platform import Platform

TYPE = "disagg:serving:Serving"

# Built-in kinds and their resource classes; anything else is a custom resource.
_BUILTIN = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


class Serving(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        spec: ServingSpec,
        cluster: Cluster,
        platform: Platform,
        hf_token: pulumi.Output[str] | None,
        opts: pulumi.ResourceOptions | None = None,
        gpu_pools: list[pulumi.Resource] | None = None,
        router_api_key: pulumi.Output[str] | None = None,
    ):
        super().__init__(TYPE, name, None, opts)
        releases: dict[str, pulumi.Resource] = dict(platform.releases)
        self.resources: dict[str, pulumi.Resource] = {}
        ns_res: pulumi.Resource | None = None
        for m in manifests(spec, platform.serving_facts):
            deps: list[pulumi.Resource] = [releases[k] for k in m.needs if k in releases]
            if m.workload:
                # The engine pods run on the GPU pools: created once their nodes (or NodePools) exist, deleted before
                # them, so no node group is drained and no NodePool waits on pods the stack is about to delete. The
                # platform itself waits for the system pool only (stacks/stack.py).
                deps += [platform, *(gpu_pools or [])]
            if ns_res is not None:
                deps.append(ns_res)
            res = self._register(name, m, cluster, deps, {HF_TOKEN: hf_token, ROUTER_API_KEY[0]: router_api_key})
            self.resources[f"{m.kind}/{m.name}"] = res
            if m.kind == "Namespace":
                ns_res = res

        self.namespace = namespace(spec)
        self.router_service_name = workload_name(spec, "router")
        self.router_url = router_url(spec)
        self.model_name = served_model_name(spec)
        self.register_outputs(
            {"namespace": self.namespace, "routerServiceName": self.router_service_name, "routerUrl": self.router_url}
        )

    def _register(self, name: str, m: Manifest, cluster: Cluster, deps: list[pulumi.Resource], secrets: dict[str, pulumi.Output[str] | None]) -> pulumi.Resource:
        obj = dict(m.obj)
        api_version, kind = obj.pop("apiVersion"), obj.pop("kind")
        # Child names: <component>-<kind>-<object name>, unique in the stack and stable across renames of nothing else.
        child = f"{name}-{kind.lower()}-{obj['metadata']['name']}"
        opts = pulumi.ResourceOptions(
            parent=self,
            provider=cluster.provider,
            depends_on=deps,
            ignore_changes=list(m.ignore_changes) or None,
        )
        if m.secret:
            which, data_key = m.secret
            value = secrets.get(which)
            if value is None:
                raise ValueError(f"the {which} Secret is in the plan but no {which} was passed")
            return k8s.core.v1.Secret(child, metadata=obj["metadata"], type=obj.get("type"), string_data={data_key: value}, opts=opts)
        cls = _BUILTIN.get((api_version, kind))
        if cls is not None:
            return cls(child, **_snake_top(obj), opts=opts)
        metadata = obj.pop("metadata")
        return k8s.apiextensions.CustomResource(child, api_version=api_version, kind=kind, metadata=metadata, opts=opts, **obj)

    def exports(self) -> dict[str, Any]:
        return {
            "routerUrl": self.router_url,
            "routerServiceName": self.router_service_name,
            "servingNamespace": self.namespace,
            "modelName": self.model_name,
        }


# Top-level fields of the built-in objects used here, in the Python SDK's argument names. Nested values are passed
# as plain dicts in the API's camelCase, which the SDK sends unchanged.
_TOP = {"automountServiceAccountToken": "automount_service_account_token", "stringData": "string_data", "roleRef": "role_ref"}


def _snake_top(obj: dict) -> dict:
    return {_TOP.get(k, k): v for k, v in obj.items()}
