"""The fake cloud behind the offline render: outputs a real provider would return, made up deterministically.

Only what the program reads needs to exist here. pulumi-eks components are remote: under mocks they register
once with no children, so their resource-typed outputs (`eksCluster`, `nodeGroup`, ...) are returned as
references to synthetic resources registered on the monitor, which is how the SDK rehydrates them.

In preview mode it answers as the engine does at `pulumi preview` for a stack that does not exist yet: a resource's
inputs (with the names the provider's Check fills in) come back, every value the provider computes on create (ids,
ARNs, endpoints, a release's status, the kubeconfig) is unknown, so no `apply` on them runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib
import json
from typing import Any

from pulumi import _types
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ACCOUNT = "123456789012"
_SIG = rpc._special_sig_key
_RESOURCE_SIG = rpc._special_resource_sig
_UNKNOWN = rpc.UNKNOWN


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

# Types whose name property the engine fills in (auto-naming: "<resource name>-<7 hex>") when the program leaves it
# out; the program reads it back (a launch template names its placement group), so the fake does the same.
_AUTONAMED = {
    "aws:ec2/placementGroup:PlacementGroup": "name",
    "aws:ec2/launchTemplate:LaunchTemplate": "name",
    "aws:ec2/securityGroup:SecurityGroup": "name",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
    # Karpenter's interruption rules: their targets name the rule by its (auto-)name.
    "aws:cloudwatch/eventRule:EventRule": "name",
}


# Names the provider fills in at Check, so a preview knows them though the program did not set them: the auto-names
# above, and the IAM role name the fake gives a role without one (pulumi-aws auto-names `aws.iam.Role.name`).
_KNOWN_AT_PREVIEW = {typ: {prop} for typ, prop in _AUTONAMED.items()} | {"aws:iam/role:Role": {"name"}}


def sdk_class(typ: str) -> type | None:
    """The provider SDK's class for a resource type token (`aws:ec2/eip:Eip`, `pulumi:providers:aws`), or None when
    no installed provider SDK describes it (our own components, custom resources of a CRD). The SDKs are generated
    from the provider schemas, which the packages do not ship."""
    pkg, mod, name = typ.split(":")
    if pkg == "disagg":
        return None
    try:
        importlib.import_module(f"pulumi_{name if pkg == 'pulumi' else pkg}")
    except ImportError:
        return None
    if (pkg, mod) == ("pulumi", "providers"):
        package = rpc.get_resource_package(name, "")
        return getattr(importlib.import_module(package.pkg_info["fqn"]), "Provider", None) if package else None
    module = rpc.get_resource_module(pkg, mod, "")
    cls_name = module.mod_info["classes"].get(typ) if module is not None else None
    return getattr(importlib.import_module(module.mod_info["fqn"]), cls_name) if cls_name else None


@functools.cache
def _has_output(typ: str, prop: str) -> bool:
    cls = sdk_class(typ)
    return cls is not None and prop in _types.resource_types(cls)


def unknown_at_preview(state: dict[str, Any], known: set[str], path: str = "") -> dict[str, Any]:
    """`state` as a preview of a create sees it: the keys in `known` (dotted paths: the inputs and what Check fills
    in) keep their value, every other (computed) value is unknown. Resource references keep their URN, known before
    the create, and lose their id."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        at = f"{path}{key}"
        if at in known:
            out[key] = value
        elif isinstance(value, dict) and value.get(_SIG) == _RESOURCE_SIG:
            out[key] = {**value, "id": ""}
        elif isinstance(value, dict) and any(k.startswith(f"{at}.") for k in known):
            out[key] = unknown_at_preview(value, known, f"{at}.")
        else:
            out[key] = _UNKNOWN
    return out


class FakeCloud(pulumi_mocks.Mocks):
    def __init__(self, stack: str, config: dict[str, str], preview: bool = False):
        self.stack = stack
        self.config = config
        self.preview = preview
        self.monitor: Any = None  # set by the harness; synthetic resources are registered on it
        self.region = self._region()

    def _region(self) -> str:
        raw = self.config.get("disagg:region") or self.config.get("aws:region") or "us-east-1"
        return raw if isinstance(raw, str) else "us-east-1"

    # ---- resources -------------------------------------------------------------------------------------
    def new_resource(self, args: pulumi_mocks.MockResourceArgs, identity: str | None = None):
        """`identity`: the name the resource was first created under (its alias's, when it has one), which its id and
        auto-name derive from, as a provider keeps them across an aliased move."""
        handler = _SPECIAL.get(args.typ)
        if handler is not None:
            # A remote component: it returns only its outputs, and may say which of them pass its inputs through
            # (known at preview); a handler that does not is unknown at preview but for its references.
            rid, state, *rest = handler(self, args.name, dict(args.inputs))
            known = rest[0] if rest else ()
        else:
            rid, state = self._answer(args, identity)
            known = set(args.inputs) | _KNOWN_AT_PREVIEW.get(args.typ, set())
        if not self.preview:
            return rid, state
        # A create at preview: no id yet (an empty id reads as unknown; the terraform bridge sends exactly that).
        return "", unknown_at_preview(state, set(known))

    def _answer(self, args: pulumi_mocks.MockResourceArgs, identity: str | None):
        typ, name = args.typ, args.name
        inputs = dict(args.inputs)
        name = identity or name
        rid = f"{_ID_PREFIX[typ]}-{_h(typ, name)}" if typ in _ID_PREFIX else f"{name}-id"
        state = dict(inputs)
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            if _has_output(typ, "arn"):  # most AWS resources have one, not all (a route, a policy attachment)
                state.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{name}")
            state.setdefault("id", rid)
        prop = _AUTONAMED.get(typ)
        if prop and not state.get(prop):
            state[prop] = f"{name}-{_h('autoname', typ, name, n=7)}"
        if typ == "aws:eks/nodeGroup:NodeGroup":
            state.setdefault("status", "ACTIVE")
        if typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
            state["defaultVersion"] = 1
        if typ == "aws:ec2/eip:Eip":
            # A VPC address's id is its allocation id, and the NAT gateway names it by `allocationId`; without it
            # the gateway rendered with no address and no dependency on it (a preview, which keeps the input
            # unknown, showed both).
            state["allocationId"] = rid
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

    def _register(self, typ: str, name: str, state: dict[str, Any], known: tuple[str, ...] = ()) -> dict[str, Any]:
        """Register a synthetic resource on the monitor and return a reference to it. At preview only the `known`
        keys (what the component passed through from its inputs) keep their value."""
        urn = f"urn:pulumi:{self.stack}::disagg::{typ}::{name}"
        rid = f"{name}-id"
        if self.preview:
            state, rid = unknown_at_preview(state, set(known)), ""
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
            known=("name", "version", "vpcConfig.vpcId"),
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
                "nodeGroupOptions": {},
                "kubeconfig": kubeconfig,
            },
        }
        return f"{cluster_name}-id", state, ("instanceRoles", "core.vpcId", "core.subnetIds", "core.nodeGroupOptions")

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
            # The name is the input or the provider's auto-name (known at Check); the capacity type defaults on create.
            known=("nodeGroupName", "capacityType") if "capacityType" in inputs else ("nodeGroupName",),
        )
        return f"{ng_name}-id", {"nodeGroup": ng}, ()

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
            # Built from the cluster's endpoint and certificate: unknown until the cluster exists.
            return {"result": _UNKNOWN if self.preview else json.dumps({"apiVersion": "v1", "kind": "Config"})}
        raise NotImplementedError(
            f"the offline fake cloud has no answer for invoke {tok!r}; add one to tooling/fakes.py (FakeCloud.call)"
        )


_SPECIAL = {
    "eks:index:Cluster": FakeCloud._eks_cluster,
    "eks:index:ManagedNodeGroup": FakeCloud._managed_node_group,
}


# ---- answers of the deploy checks (stacks/preflight.py) -------------------------------------------------------------

# The fake cloud's clock: reservation dates are recorded relative to it.
FAKE_NOW = "2026-09-01T00:00:00Z"


class RecordedAnswers:
    """Deploy-check answers replayed from recorded API responses, in the shapes boto3 returns them, through the
    parsers the live answers use (stacks/preflight_aws.py).

    `recorded` keys: region, now (ISO), DescribeInstanceTypeOfferings (list of pages), GetServiceQuota (quota code ->
    response), DescribeCapacityReservations (id -> response; a missing id does not exist), GetCallerIdentity
    (response), DescribeCluster (cluster name -> response; a missing name does not exist), and `errors`
    (operation -> {Code, Message}) for a call that fails.
    """

    def __init__(self, recorded: dict[str, Any]):
        self.recorded = recorded
        self.region = recorded["region"]

    def _fail(self, operation: str) -> None:
        from stacks.preflight import Unanswered

        err = (self.recorded.get("errors") or {}).get(operation)
        if err:
            raise Unanswered(f"{err['Code']}: {err.get('Message', '')}", f"allow the {operation} call for the deploying identity")

    def offered(self, zones, types) -> dict[str, set[str]]:
        from stacks.preflight_aws import parse_offerings

        self._fail("DescribeInstanceTypeOfferings")
        found = parse_offerings(self.recorded.get("DescribeInstanceTypeOfferings", []))
        return {z: found.get(z, set()) & set(types) for z in zones}

    def vcpu_quota(self, code: str) -> float:
        from stacks.preflight_aws import parse_quota

        self._fail("GetServiceQuota")
        return parse_quota(self.recorded["GetServiceQuota"][code])

    def reservation(self, reservation_id: str):
        from stacks.preflight_aws import parse_reservation

        self._fail("DescribeCapacityReservations")
        response = (self.recorded.get("DescribeCapacityReservations") or {}).get(reservation_id)
        return parse_reservation(response) if response else None

    def caller_arn(self) -> str:
        self._fail("GetCallerIdentity")
        return self.recorded["GetCallerIdentity"]["Arn"]

    def cluster_exists(self, name: str) -> bool:
        self._fail("DescribeCluster")
        return name in (self.recorded.get("DescribeCluster") or {})

    def now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.recorded.get("now", FAKE_NOW).replace("Z", "+00:00"))


def recorded_for(config: dict[str, str]) -> dict[str, Any]:
    """The fake account's answers for a stack: every catalog type offered in every stack zone, quotas far above
    what any stack asks, each configured reservation matching its pool and active (a block: active for a week), a
    fresh account (no cluster yet) and a deployer that is nobody's admin. The offline render passes them, so what it
    reports is the config checks alone; a real account answers at `pulumi preview` and `python -m ops preflight`."""
    from facts.catalog import CATALOG, VCPU_QUOTAS

    def value(key: str, default: Any) -> Any:
        raw = config.get(f"disagg:{key}")
        if raw is None:
            return default
        try:
            return json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return raw

    region = str(value("region", "us-east-1"))
    zones = [str(z) for z in value("availabilityZones", [])]
    now = dt.datetime.fromisoformat(FAKE_NOW.replace("Z", "+00:00"))
    reservations: dict[str, Any] = {}
    for pool in value("gpuPools", []) or []:
        if not isinstance(pool, dict):
            continue
        cap = pool.get("capacity") or {}
        rid = cap.get("reservationId")
        if not rid:
            continue
        block = cap.get("type") == "capacityBlock"
        item = {
            "CapacityReservationId": rid,
            "InstanceType": pool.get("instanceType", ""),
            "AvailabilityZone": (pool.get("availabilityZones") or zones or [f"{region}a"])[0],
            "TotalInstanceCount": max(int(pool.get("maxNodes") or pool.get("nodes") or 1), 1),
            "AvailableInstanceCount": max(int(pool.get("maxNodes") or pool.get("nodes") or 1), 1),
            "State": "active",
            "ReservationType": "capacity-block" if block else "default",
            "InstancePlatform": "Linux/UNIX",
            "Tenancy": "default",
            "InstanceMatchCriteria": "targeted",
            "StartDate": (now - dt.timedelta(days=1)).isoformat(),
        }
        if block:
            item["EndDate"] = (now + dt.timedelta(days=6)).isoformat()
        if pool.get("placementGroupName"):
            item["PlacementGroupArn"] = f"arn:aws:ec2:{region}:{ACCOUNT}:placement-group/{pool['placementGroupName']}"
        reservations[rid] = {"CapacityReservations": [item]}
    return {
        "region": region,
        "now": FAKE_NOW,
        "DescribeInstanceTypeOfferings": [
            {"InstanceTypeOfferings": [{"InstanceType": t, "LocationType": "availability-zone", "Location": z} for z in zones for t in CATALOG]}
        ],
        "GetServiceQuota": {q.code: {"Quota": {"QuotaCode": q.code, "QuotaName": q.name, "Value": 100000.0}} for q in VCPU_QUOTAS.values()},
        "DescribeCapacityReservations": reservations,
        "GetCallerIdentity": {"Arn": f"arn:aws:iam::{ACCOUNT}:user/offline", "Account": ACCOUNT, "UserId": "AIDAOFFLINE"},
        "DescribeCluster": {},
    }


def FakeAnswers(config: dict[str, str]) -> RecordedAnswers:  # noqa: N802 - reads as the fake cloud's answers
    return RecordedAnswers(recorded_for(config))
