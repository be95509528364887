"""The fake cloud behind the offline render: outputs a real provider would return, made up deterministically.

Only what the program reads needs to exist here. pulumi-eks components are remote: under mocks they register
once with no children, so their resource-typed outputs (`eksCluster`, `nodeGroup`, ...) are returned as
references to synthetic resources registered on the monitor, which is how the SDK rehydrates them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ACCOUNT = "123456789012"
_SIG = rpc._special_sig_key
_RESOURCE_SIG = rpc._special_resource_sig


def _h(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/placementGroup:PlacementGroup": "pg",
}

# Types whose `name` the engine fills in (auto-naming: "<resource name>-<7 hex>") when the program leaves it out;
# the program reads it back (a launch template names its placement group), so the fake does the same.
_AUTONAMED = (
    "aws:ec2/placementGroup:PlacementGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/securityGroup:SecurityGroup",
)


class FakeCloud(pulumi_mocks.Mocks):
    def __init__(self, stack: str, config: dict[str, str]):
        self.stack = stack
        self.config = config
        self.monitor: Any = None  # set by the harness; synthetic resources are registered on it
        self.region = self._region()

    def _region(self) -> str:
        raw = self.config.get("disagg:region") or self.config.get("aws:region") or "us-east-1"
        return raw if isinstance(raw, str) else "us-east-1"

    # ---- resources -------------------------------------------------------------------------------------
    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        typ, name = args.typ, args.name
        inputs = dict(args.inputs)
        handler = _SPECIAL.get(typ)
        if handler is not None:
            return handler(self, name, inputs)
        rid = f"{_ID_PREFIX[typ]}-{_h(typ, name)}" if typ in _ID_PREFIX else f"{name}-id"
        state = dict(inputs)
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{name}")
            state.setdefault("id", rid)
        if typ in _AUTONAMED and not state.get("name"):
            state["name"] = f"{name}-{_h('autoname', typ, name, n=7)}"
        if typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
            state["defaultVersion"] = 1
        if typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name', name)}"
            state.setdefault("name", name)
        if typ == "random:index/randomPassword:RandomPassword":
            # A made-up, deterministic value: the render only ever shows it masked (the provider marks it secret).
            state["result"] = _h("random-password", name, n=int(inputs.get("length", 32)))
        if typ == "aws:amp/workspace:Workspace":
            state["prometheusEndpoint"] = f"https://aps-workspaces.{self.region}.amazonaws.com/workspaces/{rid}/"
        if typ == "aws:kms/key:Key":
            state["arn"] = f"arn:aws:kms:{self.region}:{ACCOUNT}:key/{_h(name, n=32)}"
            state["keyId"] = _h(name, n=32)
        if typ.startswith("kubernetes:") and typ != "kubernetes:helm.sh/v3:Release":
            meta = dict(state.get("metadata") or {})
            meta.setdefault("name", name)
            state["metadata"] = meta
        if typ == "kubernetes:helm.sh/v3:Release":
            state["status"] = {
                "name": inputs.get("name", name),
                "namespace": inputs.get("namespace", "default"),
                "status": "deployed",
                "revision": 1,
                "version": inputs.get("version", ""),
            }
        return rid, state

    def _register(self, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any]:
        """Register a synthetic resource on the monitor and return a reference to it."""
        urn = f"urn:pulumi:{self.stack}::disagg::{typ}::{name}"
        rid = f"{name}-id"
        self.monitor.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, rid, state)
        return {_SIG: _RESOURCE_SIG, "urn": urn, "id": rid, "packageVersion": ""}

    def _eks_cluster(self, name: str, inputs: dict[str, Any]):
        cluster_name = inputs.get("name") or name
        endpoint = f"https://{_h(cluster_name, n=32).upper()}.gr7.{self.region}.eks.amazonaws.com"
        ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"  # a placeholder certificate authority, never used offline
        cluster_sg = f"sg-{_h('cluster-sg', cluster_name)}"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", self.region],
                        }
                    },
                }
            ],
        }
        eks_cluster = self._register(
            "aws:eks/cluster:Cluster",
            f"{name}-eksCluster",
            {
                "name": cluster_name,
                "arn": f"arn:aws:eks:{self.region}:{ACCOUNT}:cluster/{cluster_name}",
                "endpoint": endpoint,
                "version": inputs.get("version", ""),
                "certificateAuthority": {"data": ca},
                "vpcConfig": {"clusterSecurityGroupId": cluster_sg, "vpcId": inputs.get("vpcId", "")},
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{_h(cluster_name, n=32).upper()}"}]}],
            },
        )
        oidc_url = f"oidc.eks.{self.region}.amazonaws.com/id/{_h(cluster_name, n=32).upper()}"
        state = {
            "eksCluster": eks_cluster,
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig, sort_keys=True),
            "clusterSecurityGroupId": cluster_sg,
            "nodeSecurityGroupId": f"sg-{_h('node-sg', cluster_name)}",
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{oidc_url}",
            "oidcProviderUrl": oidc_url,
            "oidcIssuer": f"https://{oidc_url}",
            "instanceRoles": [],
            "core": {
                "cluster": eks_cluster,
                "endpoint": endpoint,
                "vpcId": inputs.get("vpcId", ""),
                "subnetIds": inputs.get("subnetIds", []),
                "clusterSecurityGroupId": cluster_sg,
                "nodeGroupOptions": {},
                "kubeconfig": kubeconfig,
            },
        }
        return f"{cluster_name}-id", state

    def _managed_node_group(self, name: str, inputs: dict[str, Any]):
        ng_name = inputs.get("nodeGroupName") or name
        ng = self._register(
            "aws:eks/nodeGroup:NodeGroup",
            f"{name}-nodeGroup",
            {
                "nodeGroupName": ng_name,
                "arn": f"arn:aws:eks:{self.region}:{ACCOUNT}:nodegroup/{ng_name}",
                "status": "ACTIVE",
                "capacityType": inputs.get("capacityType", "ON_DEMAND"),
            },
        )
        return f"{ng_name}-id", {"nodeGroup": ng}

    # ---- invokes -----------------------------------------------------------------------------------------
    def call(self, args: pulumi_mocks.MockCallArgs):
        tok, a = args.token, dict(args.args)
        if tok == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{s}" for s in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": self.region}
        if tok in ("aws:index/getCallerIdentity:getCallerIdentity",):
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/offline", "userId": "AIDAOFFLINE", "id": ACCOUNT}
        if tok == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if tok == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region, "endpoint": f"ec2.{self.region}.amazonaws.com"}
        if tok == "aws:ssm/getParameter:getParameter":
            return {"name": a.get("name"), "value": f"ami-{_h(str(a.get('name')))}", "type": "String", "id": a.get("name")}
        if tok == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps({"Version": "2012-10-17", "Statement": a.get("statements", [])}, sort_keys=True), "id": "policy"}
        if tok == "eks:index:Cluster/getKubeconfig":
            return {"result": json.dumps({"apiVersion": "v1", "kind": "Config"})}
        raise NotImplementedError(
            f"the offline fake cloud has no answer for invoke {tok!r}; add one to stacks/fakes.py (FakeCloud.call)"
        )


_SPECIAL = {
    "eks:index:Cluster": FakeCloud._eks_cluster,
    "eks:index:ManagedNodeGroup": FakeCloud._managed_node_group,
}
