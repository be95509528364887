"""The policies of the disagg policy pack, as plain functions over resource records.

Import-safe on purpose: no pulumi_policy import and nothing runs at import (constructing a `PolicyPack` starts
a gRPC server and blocks forever, so only `__main__.py` does it). The same functions serve three callers:
the pack (`pulumi preview --policy-pack policy`), the offline check over a render (`python -m ops policy
build/<stack>/resources.json`) and the tests.

A record is what the render writes to resources.json:
    {"type", "name", "urn", "parent", "provider": "urn::id" | None, "dependencies": [urn, ...], "inputs": {...}}
with camelCase inputs. Records from the pack may also carry "propertyDependencies" ({input: [urn, ...]}).
Resource rules take (type, inputs, stack) and return violation messages; stack rules take every record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

# ---- facts the rules are written against (conventions of the other layers) ---------------------------------

REQUIRED_TAGS = ("disagg.io/stack", "disagg.io/deployment", "ManagedBy")
MANAGED_BY = "pulumi"

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
NODE_GROUPS = ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")
EKS_COMPONENT = "eks:index:Cluster"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
AWS_PROVIDER = "pulumi:providers:aws"

POOL_LABEL = "disagg.io/pool"
ROLE_LABEL = "disagg.io/role"
GPU_ROLES = ("prefill", "decode")
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"
GPU_RESOURCE = "nvidia.com/gpu"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
EFA_INTERFACE_TYPES = ("efa", "efa-only")
KAI_SCHEDULER = "kai-scheduler"
QUEUE_LABEL = "kai.scheduler/queue"
SECRET_PLACEHOLDER = "[secret]"  # how the render (and a masked preview) shows a Pulumi secret
OPEN_CIDRS = ("0.0.0.0/0", "::/0")

# GPU instance families: p* (A100/H100/H200/B200...) and g* (A10G/L4/L40S/T4g...).
_GPU_INSTANCE = re.compile(r"^(p\d|g\d)[a-z0-9-]*\.")

_TAGGABLE_FILE = Path(__file__).resolve().parent / "taggable-aws-types.txt"


def _load_taggable() -> frozenset[str]:
    try:
        text = _TAGGABLE_FILE.read_text()
    except OSError:  # the pack must still load; the required-tags rule then checks resources that set tags
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


TAGGABLE_AWS_TYPES = _load_taggable()


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str | None
    message: str

    def __str__(self) -> str:
        where = f" [{self.urn}]" if self.urn else ""
        return f"{self.policy}: {self.message}{where}"


# ---- small helpers ------------------------------------------------------------------------------------------


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def is_prod(stack: str) -> bool:
    name = stack.rsplit("/", 1)[-1]
    return name in ("prod", "production") or name.startswith("prod-")


def _get(data: Any, *path: str | int, default: Any = None) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return default
        elif not isinstance(data, Mapping) or part not in data:
            return default
        data = data[part]
    return default if data is None else data


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _maybe_json(value: Any) -> Any:
    """Provider inputs travel JSON-encoded (`defaultTags: '{"tags": {...}}'`); decode them, leave the rest."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _quantity(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _kind(rtype: str, inputs: Mapping[str, Any]) -> str:
    return str(inputs.get("kind") or rtype.rsplit(":", 1)[-1])


def provider_urn(ref: str | None) -> str | None:
    """A provider reference is `<provider urn>::<id>`; the URN itself has exactly three `::`."""
    if not ref:
        return None
    parts = ref.split("::")
    return "::".join(parts[:4]) if len(parts) > 4 else ref


# ---- the stack graph ----------------------------------------------------------------------------------------


class Graph:
    """Records indexed for the stack rules: by URN, by type, and references followed through dependencies."""

    def __init__(self, records: Iterable[Mapping[str, Any]]):
        self.records = [r for r in records if isinstance(r, Mapping) and r.get("type")]
        self.by_urn = {r.get("urn"): r for r in self.records}
        self._by_id: dict[str, Mapping[str, Any]] = {}
        for r in self.records:
            rid = r.get("id") or _get(r, "inputs", "id")
            if isinstance(rid, str) and rid:
                self._by_id[rid] = r

    def of_type(self, *types: str) -> list[Mapping[str, Any]]:
        return [r for r in self.records if r["type"] in types]

    def deps(self, record: Mapping[str, Any], *types: str, prop: str | None = None) -> list[Mapping[str, Any]]:
        """Records of `types` this record depends on (through input `prop` when the engine told us)."""
        urns: Iterable[str] = record.get("dependencies") or []
        prop_deps = record.get("propertyDependencies") or {}
        if prop and prop in prop_deps:
            urns = prop_deps[prop]
        out = []
        for urn in urns:
            dep = self.by_urn.get(urn)
            if dep is not None and (not types or dep["type"] in types):
                out.append(dep)
        return out

    def resolve(self, record: Mapping[str, Any], prop: str, ids: Sequence[Any], rtype: str) -> list[Mapping[str, Any]]:
        """The records an id-valued input points at: by id when records carry ids, else by dependency."""
        found = [self._by_id[i] for i in ids if isinstance(i, str) and i in self._by_id and self._by_id[i]["type"] == rtype]
        if found:
            return found
        return self.deps(record, rtype, prop=prop)

    def provider_default_tags(self, record: Mapping[str, Any]) -> dict[str, str] | None:
        """Tags the record's explicit AWS provider adds to every taggable resource (None: no explicit provider)."""
        provider = self.by_urn.get(provider_urn(record.get("provider")))
        if provider is None or provider["type"] != AWS_PROVIDER:
            return None
        return default_tags_of(provider.get("inputs") or {})


def default_tags_of(provider_inputs: Mapping[str, Any]) -> dict[str, str]:
    default = _maybe_json(provider_inputs.get("defaultTags"))
    tags = default.get("tags") if isinstance(default, Mapping) else None
    tags = _maybe_json(tags)
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


# ---- pod templates inside Kubernetes objects ----------------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    where: str  # e.g. "workerTemplate", "clique decode"
    labels: Mapping[str, Any]
    spec: Mapping[str, Any]
    owner_labels: Mapping[str, Any]


_TEMPLATED_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def pod_templates(rtype: str, inputs: Mapping[str, Any]) -> list[PodTemplate]:
    """Every pod template an object carries: LWS leader/worker, Grove cliques, workload controllers, Pods."""
    if not rtype.startswith("kubernetes:"):
        return []
    kind = _kind(rtype, inputs)
    owner = _get(inputs, "metadata", "labels", default={})
    spec = inputs.get("spec") or {}
    out: list[PodTemplate] = []

    def add(where: str, template: Any) -> None:
        if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
            out.append(PodTemplate(where, _get(template, "metadata", "labels", default={}), template["spec"], owner))

    if kind == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        add("leaderTemplate", lwt.get("leaderTemplate"))
        add("workerTemplate", lwt.get("workerTemplate"))
    elif kind == "PodCliqueSet":
        for clique in _get(spec, "template", "cliques", default=[]):
            pod_spec = _get(clique, "spec", "podSpec")
            if isinstance(pod_spec, Mapping):
                out.append(PodTemplate(f"clique {clique.get('name', '?')}", clique.get("labels") or {}, pod_spec, owner))
    elif kind in _TEMPLATED_KINDS:
        add("template", spec.get("template"))
    elif kind == "CronJob":
        add("jobTemplate", _get(spec, "jobTemplate", "spec", "template"))
    elif kind == "Pod":
        out.append(PodTemplate("pod", owner, spec, owner))
    return out


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        for c in pod_spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


def _resource(container: Mapping[str, Any], name: str) -> tuple[float, float]:
    res = container.get("resources") or {}
    return _quantity(_get(res, "limits", name)), _quantity(_get(res, "requests", name))


def _node_targets(pod_spec: Mapping[str, Any]) -> dict[str, set[str]]:
    """Node label key -> values the pod is pinned to (nodeSelector and required node affinity)."""
    targets: dict[str, set[str]] = {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        targets.setdefault(key, set()).add(str(value))
    terms = _get(pod_spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", default=[])
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("operator") == "In":
                targets.setdefault(expr.get("key", ""), set()).update(str(v) for v in expr.get("values") or [])
    return targets


def _asks_for_gpu(pod_spec: Mapping[str, Any]) -> bool:
    return any(max(_resource(c, GPU_RESOURCE)) > 0 for c in _containers(pod_spec))


def _targets_gpu_pool(pod_spec: Mapping[str, Any], gpu_pools: Iterable[str]) -> bool:
    targets = _node_targets(pod_spec)
    return bool(targets.get(ROLE_LABEL, set()) & set(GPU_ROLES)) or bool(targets.get(POOL_LABEL, set()) & set(gpu_pools))


# ---- resource rules: (type, inputs, stack) -> [message] --------------------------------------------------------


def launch_template_imdsv2(rtype: str, inputs: Mapping[str, Any], stack: str) -> list[str]:
    """IMDSv2 only: a pod that reaches IMDSv1 can take the node role's credentials with one GET."""
    if rtype != LAUNCH_TEMPLATE:
        return []
    tokens = _get(inputs, "metadataOptions", "httpTokens")
    if tokens != "required":
        return [f"launch template must set metadataOptions.httpTokens to \"required\" (IMDSv2 only), got {tokens!r}"]
    return []


_SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|SECRET_ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)$", re.I)
_SECRET_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)


def no_secret_env_literals(rtype: str, inputs: Mapping[str, Any], stack: str) -> list[str]:
    """Secrets reach containers through Secret refs (`valueFrom.secretKeyRef`), never as literal values."""
    out = []
    for tmpl in pod_templates(rtype, inputs):
        for c in _containers(tmpl.spec):
            cname = c.get("name", "?")
            for env in c.get("env") or []:
                if not isinstance(env, Mapping) or "value" not in env:
                    continue
                name, value = str(env.get("name", "")), env.get("value")
                text = value if isinstance(value, str) else json.dumps(value)
                if SECRET_PLACEHOLDER in text:
                    out.append(f"{tmpl.where}/{cname}: env {name} holds a Pulumi secret as a literal; use valueFrom.secretKeyRef")
                elif _SECRET_VALUE.search(text):
                    out.append(f"{tmpl.where}/{cname}: env {name} holds what looks like a credential; use valueFrom.secretKeyRef")
                elif _SECRET_NAME.search(name) and text.strip():
                    out.append(f"{tmpl.where}/{cname}: env {name} is a secret by name but set as a literal; use valueFrom.secretKeyRef")
            for key in ("command", "args"):
                for arg in c.get(key) or []:
                    if isinstance(arg, str) and (SECRET_PLACEHOLDER in arg or _SECRET_VALUE.search(arg)):
                        out.append(f"{tmpl.where}/{cname}: a secret is written into {key}; read it from a mounted Secret instead")
    return out


def prod_endpoint_not_public(rtype: str, inputs: Mapping[str, Any], stack: str) -> list[str]:
    """In prod the API endpoint is private or limited to named CIDRs (pulumi-eks defaults to public, 0.0.0.0/0)."""
    if not is_prod(stack):
        return []
    if rtype == EKS_COMPONENT:
        public, cidrs = inputs.get("endpointPublicAccess", True), inputs.get("publicAccessCidrs")
    elif rtype == EKS_CLUSTER:
        vpc = inputs.get("vpcConfig") or {}
        public, cidrs = vpc.get("endpointPublicAccess", True), vpc.get("publicAccessCidrs")
    else:
        return []
    if public is not None and not _truthy(public):  # unset means public: the pulumi-eks and EKS default
        return []
    if not cidrs:
        return ["the cluster endpoint is public and open to 0.0.0.0/0 (publicAccessCidrs unset); set disagg:cluster.publicAccessCidrs"]
    open_ = [c for c in cidrs if c in OPEN_CIDRS]
    if open_:
        return [f"the cluster endpoint is open to {', '.join(open_)} in {stack}; list your networks in disagg:cluster.publicAccessCidrs"]
    return []


def required_tags(
    rtype: str, inputs: Mapping[str, Any], stack: str, *, default_tags: Mapping[str, str] | None = None
) -> list[str]:
    """Every taggable AWS resource carries the stack tags (on itself or from its provider's defaultTags).

    The teardown sweep finds leftovers by `disagg.io/stack`, and cost reports group by `disagg.io/deployment`.
    """
    if rtype not in TAGGABLE_AWS_TYPES and not (rtype.startswith("aws:") and "tags" in inputs):
        return []
    tags: dict[str, Any] = dict(default_tags or {})
    for key in ("tags", "tagsAll"):
        value = _maybe_json(inputs.get(key))
        if isinstance(value, Mapping):
            tags.update(value)
    out = []
    missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
    if missing:
        out.append(f"missing required tag(s) {', '.join(missing)} (set them through the AWS provider's defaultTags)")
    if tags.get("ManagedBy") and tags["ManagedBy"] != MANAGED_BY:
        out.append(f"tag ManagedBy must be {MANAGED_BY!r}, got {tags['ManagedBy']!r}")
    own = tags.get("disagg.io/stack")
    if own and stack and own != stack.rsplit("/", 1)[-1]:
        out.append(f"tag disagg.io/stack is {own!r} but the stack is {stack!r} (the teardown sweep would miss it)")
    return out


def gpu_pod_requirements(
    rtype: str,
    inputs: Mapping[str, Any],
    stack: str,
    *,
    gpu_pools: Mapping[str, bool] | None = None,
    pool_roles: Mapping[str, str] | None = None,
) -> list[str]:
    """A GPU pod asks for GPUs (and EFA on EFA pools), is scheduled by KAI and names its KAI queue.

    `gpu_pools` maps each GPU pool to whether its nodes have EFA interfaces; `pool_roles` maps pool -> role.
    A pod pinned to pools (by `disagg.io/pool` or `disagg.io/role`) needs EFA if any of them has it; a pod
    that names no pool needs EFA when any GPU pool of the stack has it.
    """
    gpu_pools = dict(gpu_pools or {})
    pool_roles = dict(pool_roles or {})
    out = []
    for tmpl in pod_templates(rtype, inputs):
        spec = tmpl.spec
        if not (_asks_for_gpu(spec) or _targets_gpu_pool(spec, gpu_pools)):
            continue
        where = tmpl.where
        gpu_containers = [c for c in _containers(spec) if max(_resource(c, GPU_RESOURCE)) > 0]
        if not gpu_containers:
            out.append(f"{where}: runs on GPU nodes but no container asks for {GPU_RESOURCE}")
        for c in gpu_containers:
            limit, request = _resource(c, GPU_RESOURCE)
            if not limit:
                out.append(f"{where}/{c.get('name', '?')}: {GPU_RESOURCE} must be set in limits (extended resources are not overcommitted)")
            elif request and request != limit:
                out.append(f"{where}/{c.get('name', '?')}: {GPU_RESOURCE} requests ({request:g}) differ from limits ({limit:g})")
        targets = _node_targets(spec)
        pools = set(targets.get(POOL_LABEL, set())) | {p for p, r in pool_roles.items() if r in targets.get(ROLE_LABEL, set())}
        known = pools & set(gpu_pools)
        efa_needed = any(gpu_pools[p] for p in known) if known else any(gpu_pools.values())
        if efa_needed and not any(max(_resource(c, EFA_RESOURCE)) > 0 for c in _containers(spec)):
            out.append(f"{where}: runs on EFA nodes but no container asks for {EFA_RESOURCE} (KV transfer would fall back to TCP)")
        if spec.get("schedulerName") != KAI_SCHEDULER:
            out.append(f"{where}: schedulerName must be {KAI_SCHEDULER!r} (gang scheduling and topology), got {spec.get('schedulerName')!r}")
        if not (tmpl.labels.get(QUEUE_LABEL) or tmpl.owner_labels.get(QUEUE_LABEL)):
            out.append(f"{where}: no {QUEUE_LABEL} label on the pod template or its owner (KAI leaves unqueued pods pending)")
    return out


# ---- stack rules: (graph, stack) -> [Violation] ----------------------------------------------------------------


def _node_group_labels(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return _maybe_json((record.get("inputs") or {}).get("labels")) or {}


def is_gpu_node_group(record: Mapping[str, Any]) -> bool:
    inputs = record.get("inputs") or {}
    labels = _node_group_labels(record)
    if labels.get(ROLE_LABEL) in GPU_ROLES:
        return True
    types = inputs.get("instanceTypes") or []
    if any(isinstance(t, str) and _GPU_INSTANCE.match(t) for t in types):
        return True
    taints = inputs.get("taints") or []
    return any(isinstance(t, Mapping) and t.get("key") == GPU_RESOURCE for t in taints)


def _launch_templates(graph: Graph, node_group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return graph.deps(node_group, LAUNCH_TEMPLATE, prop="launchTemplate")


def _efa_interfaces(launch_template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nics = _get(launch_template, "inputs", "networkInterfaces", default=[])
    return [n for n in nics if isinstance(n, Mapping) and n.get("interfaceType") in EFA_INTERFACE_TYPES]


def gpu_pools_of(graph: Graph) -> tuple[dict[str, bool], dict[str, str]]:
    """GPU pool -> has EFA, and pool -> role, from the GPU node groups and their launch templates."""
    efa: dict[str, bool] = {}
    roles: dict[str, str] = {}
    for ng in graph.of_type(*NODE_GROUPS):
        if not is_gpu_node_group(ng):
            continue
        labels = _node_group_labels(ng)
        pool = str(labels.get(POOL_LABEL) or ng.get("name"))
        efa[pool] = efa.get(pool, False) or any(_efa_interfaces(lt) for lt in _launch_templates(graph, ng))
        if labels.get(ROLE_LABEL):
            roles[pool] = str(labels[ROLE_LABEL])
    return efa, roles


def _is_private(subnet: Mapping[str, Any]) -> bool:
    inputs = subnet.get("inputs") or {}
    tags = _maybe_json(inputs.get("tags")) or {}
    return not _truthy(inputs.get("mapPublicIpOnLaunch")) and str(tags.get(INTERNAL_ELB_TAG, "")) == "1"


def _subnets(graph: Graph, node_group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ids = (node_group.get("inputs") or {}).get("subnetIds") or []
    return graph.resolve(node_group, "subnetIds", ids, SUBNET)


def gpu_nodes_private(graph: Graph, stack: str) -> list[Violation]:
    """GPU nodes never get public addresses: their subnets are private and their NICs ask for no public IP."""
    out = []
    for ng in graph.of_type(*NODE_GROUPS):
        if not is_gpu_node_group(ng):
            continue
        for sn in _subnets(graph, ng):
            if not _is_private(sn):
                out.append(
                    Violation(
                        "gpu-nodes-private-subnets",
                        ng["urn"],
                        f"GPU node group {ng['name']} uses subnet {sn['name']}, which is not private "
                        f"(mapPublicIpOnLaunch unset/false and tag {INTERNAL_ELB_TAG}=1 expected)",
                    )
                )
        for lt in _launch_templates(graph, ng):
            for i, nic in enumerate(_get(lt, "inputs", "networkInterfaces", default=[])):
                if _truthy(nic.get("associatePublicIpAddress")):
                    out.append(
                        Violation("gpu-nodes-private-subnets", lt["urn"], f"launch template {lt['name']} interface {i} asks for a public IP")
                    )
    return out


def efa_security_group_self(graph: Graph, stack: str) -> list[Violation]:
    """Every EFA interface has a security group allowing all traffic to and from itself (an EFA requirement)."""
    self_in: set[str] = set()
    self_out: set[str] = set()
    for kind, target in ((SG_INGRESS, self_in), (SG_EGRESS, self_out)):
        for rule in graph.of_type(kind):
            inputs = rule.get("inputs") or {}
            sg, ref = inputs.get("securityGroupId"), inputs.get("referencedSecurityGroupId")
            if isinstance(sg, str) and sg and sg == ref and str(inputs.get("ipProtocol")) == "-1":
                target.add(sg)
    out = []
    for lt in graph.of_type(LAUNCH_TEMPLATE):
        bad: list[int] = []
        groups_seen: set[str] = set()
        for i, nic in enumerate(_efa_interfaces(lt)):
            groups = [g for g in nic.get("securityGroups") or [] if isinstance(g, str) and g]
            groups_seen.update(groups)
            if not any(g in self_in and g in self_out for g in groups):
                bad.append(i)
        if bad:
            which = f"interface {bad[0]}" if len(bad) == 1 else f"{len(bad)} EFA interfaces ({bad[0]}..{bad[-1]})"
            out.append(
                Violation(
                    "efa-security-group-self-traffic",
                    lt["urn"],
                    f"{which} of launch template {lt['name']}: no security group with all-traffic (-1) ingress and egress "
                    f"rules referencing itself (groups: {', '.join(sorted(groups_seen)) or 'none'})",
                )
            )
    return out


def prefill_decode_one_az(graph: Graph, stack: str) -> list[Violation]:
    """Prefill and decode share one AZ: KV-cache transfer over EFA does not cross AZs (and cross-AZ costs)."""
    zones: dict[str, set[str]] = {}
    for ng in graph.of_type(*NODE_GROUPS):
        role = _node_group_labels(ng).get(ROLE_LABEL)
        if role not in GPU_ROLES:
            continue
        for sn in _subnets(graph, ng):
            az = _get(sn, "inputs", "availabilityZone") or _get(sn, "inputs", "availabilityZoneId")
            if az:
                zones.setdefault(str(az), set()).add(f"{ng['name']} ({role})")
    if len(zones) > 1:
        spread = "; ".join(f"{az}: {', '.join(sorted(groups))}" for az, groups in sorted(zones.items()))
        return [Violation("prefill-decode-one-az", None, f"prefill and decode pools span {len(zones)} AZs ({spread}); pin them to one")]
    return []


def gpu_pods(graph: Graph, stack: str) -> list[Violation]:
    efa, roles = gpu_pools_of(graph)
    out = []
    for r in graph.records:
        for msg in gpu_pod_requirements(r["type"], r.get("inputs") or {}, stack, gpu_pools=efa, pool_roles=roles):
            out.append(Violation("gpu-pod-scheduling", r.get("urn"), f"{r.get('name')}: {msg}"))
    return out


# ---- the policy table ---------------------------------------------------------------------------------------

ResourceRule = Callable[..., list[str]]
StackRule = Callable[[Graph, str], list[Violation]]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    resource_rule: ResourceRule | None = None
    stack_rule: StackRule | None = None


POLICIES: tuple[Policy, ...] = (
    Policy("launch-template-imdsv2", "Launch templates require IMDSv2 (httpTokens=required).", resource_rule=launch_template_imdsv2),
    Policy("gpu-nodes-private-subnets", "GPU node groups run in private subnets without public IPs.", stack_rule=gpu_nodes_private),
    Policy(
        "efa-security-group-self-traffic",
        "EFA interfaces carry a security group allowing all traffic to and from itself.",
        stack_rule=efa_security_group_self,
    ),
    Policy("prefill-decode-one-az", "Prefill and decode GPU pools are in one availability zone.", stack_rule=prefill_decode_one_az),
    Policy(
        "gpu-pod-scheduling",
        "GPU pods request GPUs (and EFA on EFA pools), use the KAI scheduler and carry a KAI queue label.",
        stack_rule=gpu_pods,
    ),
    Policy("no-secret-env-literals", "No secret value is written literally into a container's env, command or args.", resource_rule=no_secret_env_literals),
    Policy(
        "prod-cluster-endpoint-not-public",
        "In prod the EKS API endpoint is private or limited to named CIDRs, never 0.0.0.0/0.",
        resource_rule=prod_endpoint_not_public,
    ),
    Policy("required-tags", "Taggable AWS resources carry disagg.io/stack, disagg.io/deployment and ManagedBy=pulumi.", resource_rule=required_tags),
)


def evaluate(records: Iterable[Mapping[str, Any]], stack: str | None = None) -> list[Violation]:
    """Run every policy over a stack's records (as written by the render) and return the violations."""
    graph = Graph(records)
    if stack is None:
        stack = next((stack_of(r["urn"]) for r in graph.records if r.get("urn")), "")
    out: list[Violation] = []
    for policy in POLICIES:
        if policy.stack_rule is not None:
            out.extend(policy.stack_rule(graph, stack))
            continue
        assert policy.resource_rule is not None
        for r in graph.records:
            inputs = r.get("inputs") or {}
            if policy.resource_rule is required_tags:
                msgs = required_tags(r["type"], inputs, stack, default_tags=graph.provider_default_tags(r))
            else:
                msgs = policy.resource_rule(r["type"], inputs, stack)
            out.extend(Violation(policy.name, r.get("urn"), f"{r.get('name')}: {m}") for m in msgs)
    return out
