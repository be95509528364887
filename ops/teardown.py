"""Teardown that leaves nothing behind: clean what Kubernetes created in AWS, then sweep leftovers by tag.

Pulumi only deletes what it created. Load balancers (AWS Load Balancer Controller or the in-tree provider),
their target groups and security groups, EBS volumes of PersistentVolumeClaims and ENIs left by the VPC CNI
are created by controllers inside the cluster, and they block the deletion of subnets, security groups and the
VPC (pulumi/pulumi-eks#1226, #194; kubernetes-sigs/aws-load-balancer-controller#2014; the ordered cleanup
script of awslabs/ai-on-eks). So:

1. `pre_destroy`: while the cluster still runs, delete LoadBalancer Services, Ingresses and PVCs (and the pods
   holding those PVCs) and wait until the load balancers and volumes are gone in AWS, so the controllers clean
   up through their finalizers.
2. `pulumi state unprotect --all --yes -s <stack>` (the cluster, VPC, subnets, KMS key and, with deletion
   protection, the GPU node groups are `protect`ed), then `pulumi destroy` (ops.lifecycle).
3. `sweep`: find what is still tagged for the cluster or the stack and delete it in dependency order
   (load balancers -> target groups -> available ENIs -> available volumes -> security groups), with retries;
   report what remains and fail if anything does.

AWS clients are passed in (boto3 clients, or moto's in tests); so is the Kubernetes client (ops.kube).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from components.builders import karpenter, lbc_iam, tags
from ops.kube import INGRESSES, PVCS, PVS, SERVICES, KubeClient, KubeError

PODS = "pods"
STACK_TAG = tags.STACK_TAG
LBC_CLUSTER_TAG = lbc_iam.CLUSTER_TAG  # set by the AWS Load Balancer Controller on LBs, TGs and SGs
CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"  # set by the VPC CNI on the ENIs it creates
NOT_FOUND = {
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "InvalidNetworkInterfaceID.NotFound",
    "InvalidVolume.NotFound",
    "InvalidGroup.NotFound",
    "AccessPointNotFound",
}

Log = Callable[[str], None]


def cluster_tag(cluster: str) -> str:
    return f"kubernetes.io/cluster/{cluster}"


@dataclass
class AwsClients:
    ec2: Any
    elbv2: Any
    elb: Any | None = None  # classic ELBs of in-tree `type: LoadBalancer` Services; optional

    @classmethod
    def for_region(cls, region: str, session: Any = None) -> "AwsClients":
        import boto3

        session = session or boto3.session.Session(region_name=region)
        return cls(session.client("ec2"), session.client("elbv2"), session.client("elb"))


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def _owned(tags: dict[str, str], cluster: str, stack: str | None) -> bool:
    return (
        cluster_tag(cluster) in tags
        or tags.get(LBC_CLUSTER_TAG) == cluster
        or tags.get(CNI_CLUSTER_TAG) == cluster
        or (stack is not None and tags.get(STACK_TAG) == stack)
    )


def _ec2_filters(cluster: str, stack: str | None) -> list[list[dict[str, Any]]]:
    """EC2 ANDs filters within a call, so each ownership tag is its own query."""
    filters = [
        [{"Name": "tag-key", "Values": [cluster_tag(cluster)]}],
        [{"Name": f"tag:{LBC_CLUSTER_TAG}", "Values": [cluster]}],
        [{"Name": f"tag:{CNI_CLUSTER_TAG}", "Values": [cluster]}],
    ]
    if stack:
        filters.append([{"Name": f"tag:{STACK_TAG}", "Values": [stack]}])
    return filters


# ---- finding leftovers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    kind: str  # load-balancer | classic-load-balancer | target-group | eni | volume | security-group | karpenter-*
    id: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.id}" + (f" ({self.detail})" if self.detail else "")


def _elbv2_tagged(elbv2: Any, arns: list[str], cluster: str, stack: str | None) -> set[str]:
    owned: set[str] = set()
    for i in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for desc in elbv2.describe_tags(ResourceArns=arns[i : i + 20])["TagDescriptions"]:
            if _owned(_tags(desc.get("Tags")), cluster, stack):
                owned.add(desc["ResourceArn"])
    return owned


def find_load_balancers(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    lbs = [lb for page in aws.elbv2.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancers"]]
    owned = _elbv2_tagged(aws.elbv2, [lb["LoadBalancerArn"] for lb in lbs], cluster, stack)
    out = [Leftover("load-balancer", lb["LoadBalancerArn"], lb.get("LoadBalancerName", "")) for lb in lbs if lb["LoadBalancerArn"] in owned]
    if aws.elb is not None:
        names = [lb["LoadBalancerName"] for page in aws.elb.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancerDescriptions"]]
        for i in range(0, len(names), 20):
            for desc in aws.elb.describe_tags(LoadBalancerNames=names[i : i + 20])["TagDescriptions"]:
                if _owned(_tags(desc.get("Tags")), cluster, stack):
                    out.append(Leftover("classic-load-balancer", desc["LoadBalancerName"]))
    return out


def find_target_groups(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    tgs = [tg for page in aws.elbv2.get_paginator("describe_target_groups").paginate() for tg in page["TargetGroups"]]
    owned = _elbv2_tagged(aws.elbv2, [tg["TargetGroupArn"] for tg in tgs], cluster, stack)
    return [Leftover("target-group", tg["TargetGroupArn"], tg.get("TargetGroupName", "")) for tg in tgs if tg["TargetGroupArn"] in owned]


def _ec2_find(aws: AwsClients, op: str, key: str, id_key: str, cluster: str, stack: str | None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for filters in _ec2_filters(cluster, stack):
        for page in aws.ec2.get_paginator(op).paginate(Filters=filters):
            for item in page[key]:
                found[item[id_key]] = item
    return found


def find_enis(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    enis = _ec2_find(aws, "describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId", cluster, stack)
    return [Leftover("eni", i, e.get("Status", "")) for i, e in sorted(enis.items())]


def find_volumes(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    vols = _ec2_find(aws, "describe_volumes", "Volumes", "VolumeId", cluster, stack)
    return [Leftover("volume", i, v.get("State", "")) for i, v in sorted(vols.items()) if v.get("State") != "deleted"]


def find_security_groups(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    groups = _ec2_find(aws, "describe_security_groups", "SecurityGroups", "GroupId", cluster, stack)
    return [Leftover("security-group", i, g.get("GroupName", "")) for i, g in sorted(groups.items()) if g.get("GroupName") != "default"]


# ---- Karpenter's nodes (disagg:nodeProvisioning karpenter) ----------------------------------------------------
# Karpenter's instances and launch templates are not in Pulumi state. `pulumi destroy` removes them through the
# NodePools and EC2NodeClasses while the controller runs (components/nodeprovisioning.py); these find what a failed
# or interrupted destroy left. Karpenter tags every instance, volume, network interface and launch template it
# creates with `eks:eks-cluster-name` and `karpenter.sh/nodepool` (launch templates also `karpenter.k8s.aws/
# ec2nodeclass`) (aws/karpenter-provider-aws @ v1.14.1 pkg/utils/utils.go GetTags, pkg/apis/v1/labels.go). Both tags
# must match, so an instance of a managed node group (tagged `eks:cluster-name`, not `eks:eks-cluster-name`) is never
# touched. Their volumes and network interfaces go with the instance (deleteOnTermination); leftovers of those are
# found by the cluster tag like the VPC CNI's.
KARPENTER_NODEPOOL_TAG = karpenter.NODEPOOL_TAG
KARPENTER_NODECLASS_TAG = karpenter.NODECLASS_TAG
EKS_CLUSTER_NAME_TAG = karpenter.EKS_CLUSTER_NAME_TAG
_LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def _karpenter_filters(cluster: str, tag_key: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{EKS_CLUSTER_NAME_TAG}", "Values": [cluster]}, {"Name": "tag-key", "Values": [tag_key]}]


def find_karpenter_instances(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    filters = _karpenter_filters(cluster, KARPENTER_NODEPOOL_TAG) + [{"Name": "instance-state-name", "Values": _LIVE_STATES}]
    out = []
    for page in aws.ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for inst in reservation["Instances"]:
                pool = _tags(inst.get("Tags")).get(KARPENTER_NODEPOOL_TAG, "")
                out.append(Leftover("karpenter-instance", inst["InstanceId"], f"nodepool {pool}, {inst['State']['Name']}"))
    return sorted(out, key=lambda x: x.id)


def find_karpenter_launch_templates(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    out = []
    for page in aws.ec2.get_paginator("describe_launch_templates").paginate(Filters=_karpenter_filters(cluster, KARPENTER_NODECLASS_TAG)):
        for lt in page["LaunchTemplates"]:
            out.append(Leftover("karpenter-launch-template", lt["LaunchTemplateId"], lt.get("LaunchTemplateName", "")))
    return sorted(out, key=lambda x: x.id)


def terminate_karpenter_instances(
    aws: AwsClients, cluster: str, log: Log, *, delay: int = 15, max_attempts: int = 60
) -> list[str]:
    """Terminate every instance Karpenter launched for the cluster, all at once, and wait until they are gone (at
    most delay * max_attempts seconds): their network interfaces hold the security groups and subnets the rest of the
    sweep deletes. Returns the instance ids."""
    ids = [i.id for i in find_karpenter_instances(aws, cluster)]
    if not ids:
        return []
    aws.ec2.terminate_instances(InstanceIds=ids)
    log(f"sweep: terminating {len(ids)} instance(s) Karpenter launched: {', '.join(ids)}")
    try:
        aws.ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts})
    except Exception as exc:  # noqa: BLE001 - botocore WaiterError: the passes below retry what still depends on them
        log(f"sweep: instances still terminating: {exc}")
    return ids


def _delete_karpenter(aws: AwsClients, item: Leftover) -> bool:
    if item.kind == "karpenter-instance":
        aws.ec2.terminate_instances(InstanceIds=[item.id])
    elif item.kind == "karpenter-launch-template":
        aws.ec2.delete_launch_template(LaunchTemplateId=item.id)
    else:
        raise ValueError(item.kind)
    return True


KARPENTER_KINDS = ("karpenter-instance", "karpenter-launch-template")

# Deletion order: instances first (their interfaces hold groups and subnets), launch templates last.
FINDERS = (
    find_karpenter_instances,
    find_load_balancers,
    find_target_groups,
    find_enis,
    find_volumes,
    find_security_groups,
    find_karpenter_launch_templates,
)


def find_all(aws: AwsClients, cluster: str, stack: str | None = None) -> list[Leftover]:
    """Everything still tagged for the cluster or the stack, in deletion order."""
    out: list[Leftover] = []
    for finder in FINDERS:
        out.extend(finder(aws, cluster, stack))
    return out


# ---- pre-destroy: let the controllers clean up while the cluster is alive -------------------------------------


@dataclass
class PreDestroyReport:
    cluster: str
    deleted: list[str] = field(default_factory=list)  # Kubernetes objects asked to go
    waited_for: list[str] = field(default_factory=list)  # AWS resources the deletions should remove
    remaining: list[str] = field(default_factory=list)  # still there at the deadline
    skipped: str = ""  # why the Kubernetes part did not run (cluster unreachable)

    @property
    def ok(self) -> bool:
        return not self.remaining

    def render(self) -> str:
        lines = [f"pre-destroy cleanup of cluster {self.cluster}:"]
        if self.skipped:
            lines.append(f"  Kubernetes part skipped: {self.skipped}")
        lines += [f"  deleted {d}" for d in self.deleted]
        lines += [f"  waited for {w}" for w in self.waited_for]
        if self.remaining:
            lines.append("  STILL PRESENT at the deadline (the post-destroy sweep will retry):")
            lines += [f"    - {r}" for r in self.remaining]
        elif not self.skipped:
            lines.append("  everything Kubernetes created in AWS is gone.")
        return "\n".join(lines)


def _ref(obj: dict[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


def _volume_id(pv: dict[str, Any]) -> str | None:
    spec = pv.get("spec") or {}
    handle = (spec.get("csi") or {}).get("volumeHandle") or (spec.get("awsElasticBlockStore") or {}).get("volumeID")
    if not handle:
        return None
    return handle.rsplit("/", 1)[-1]  # in-tree IDs may read aws://us-east-1a/vol-...


def _volume_gone(ec2: Any, volume_id: str) -> bool:
    try:
        vols = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    except Exception as exc:  # botocore ClientError; any client works in tests
        if _error_code(exc) in NOT_FOUND:
            return True
        raise
    return not vols or vols[0].get("State") == "deleted"


def pre_destroy(
    kube: KubeClient | None,
    aws: AwsClients,
    cluster: str,
    *,
    timeout: float = 900,
    interval: float = 15,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
    log: Log = print,
) -> PreDestroyReport:
    """Delete LB Services, Ingresses and PVCs and wait until their load balancers and volumes are gone."""
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    report = PreDestroyReport(cluster)
    claims: set[tuple[str | None, str]] = set()
    volumes: dict[str, str] = {}  # volume id -> "namespace/claim" for the report
    k8s_pending: list[tuple[str, tuple[str | None, str]]] = []
    if kube is None:
        report.skipped = "no Kubernetes client (the cluster does not exist or is unreachable)"
    else:
        try:
            services = [s for s in kube.list(SERVICES) if (s.get("spec") or {}).get("type") == "LoadBalancer"]
            ingresses = kube.list(INGRESSES)
            pvcs = kube.list(PVCS)
            pvs = kube.list(PVS)
            pods = kube.list(PODS)
        except KubeError as exc:
            report.skipped = f"cluster unreachable: {exc}"
            services = ingresses = pvcs = pvs = pods = []
        claims = {_ref(p) for p in pvcs}
        for pv in pvs:
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if (ref.get("namespace"), ref.get("name", "")) in claims:
                vid = _volume_id(pv)
                if vid and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
                    volumes[vid] = f"{ref.get('namespace')}/{ref.get('name')}"
        # Ingresses and Services first: the Load Balancer Controller removes the LB, then its finalizer.
        for kind, objs in ((INGRESSES, ingresses), (SERVICES, services), (PVCS, pvcs)):
            for obj in objs:
                ns, name = _ref(obj)
                try:
                    kube.delete(kind, ns, name)
                except KubeError as exc:
                    log(f"warning: {exc}")
                    continue
                report.deleted.append(f"{kind}/{ns}/{name}")
                k8s_pending.append((kind, (ns, name)))
        # A PVC in use stays (kubernetes.io/pvc-protection) until its pods are gone; their controllers may
        # recreate them, but a pod on a terminating claim is never started, so the claim is released.
        for pod in pods:
            ns, name = _ref(pod)
            uses = {
                (ns, (v.get("persistentVolumeClaim") or {}).get("claimName"))
                for v in (pod.get("spec") or {}).get("volumes") or []
                if v.get("persistentVolumeClaim")
            }
            if uses & claims:
                try:
                    kube.delete(PODS, ns, name)
                    report.deleted.append(f"{PODS}/{ns}/{name}")
                except KubeError as exc:
                    log(f"warning: {exc}")
    report.waited_for = [f"volume {v} (claim {c})" for v, c in sorted(volumes.items())]

    deadline = clock() + timeout
    while True:
        remaining: list[str] = []
        lbs = [lb for lb in find_load_balancers(aws, cluster) if lb.kind in ("load-balancer", "classic-load-balancer")]
        remaining += [str(lb) for lb in lbs]
        remaining += [f"volume {v} (claim {c})" for v, c in sorted(volumes.items()) if not _volume_gone(aws.ec2, v)]
        if kube is not None and k8s_pending and not report.skipped:
            try:
                present = {kind: {_ref(o) for o in kube.list(kind)} for kind in {k for k, _ in k8s_pending}}
                remaining += [f"{kind}/{ns}/{name}" for kind, (ns, name) in k8s_pending if (ns, name) in present[kind]]
            except KubeError as exc:  # the cluster went away: AWS is what matters
                log(f"warning: {exc}")
        if not remaining:
            break
        if clock() >= deadline:
            report.remaining = remaining
            break
        sleep(interval)
    return report


# ---- post-destroy sweep ---------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    cluster: str
    stack: str | None
    deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return not self.remaining

    def render(self) -> str:
        who = f"cluster {self.cluster}" + (f" / stack {self.stack}" if self.stack else "")
        lines = [f"post-destroy sweep of {who} ({self.attempts} pass(es)):"]
        lines += [f"  deleted {d}" for d in self.deleted]
        if self.remaining:
            lines.append("  LEFT BEHIND (delete by hand, see docs/runbook.md#the-destroy-sweep):")
            lines += [f"    - {r}" for r in self.remaining]
            if self.errors:
                lines.append("  last errors:")
                lines += [f"    - {e}" for e in self.errors[-20:]]
        else:
            lines.append("  nothing left.")
        return "\n".join(lines)


def _revoke_rules(ec2: Any, group_id: str) -> None:
    """Drop a group's rules first: groups that reference each other cannot be deleted in any order otherwise.

    Best effort, one rule at a time: a rule naming an already deleted group fails alone, and whatever still
    blocks the group shows up in its own delete call.
    """
    try:
        groups = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    except Exception as exc:  # noqa: BLE001 - a missing group is handled by the delete that follows
        if _error_code(exc) in NOT_FOUND:
            return
        raise
    if not groups:
        return
    for key, revoke in (("IpPermissions", ec2.revoke_security_group_ingress), ("IpPermissionsEgress", ec2.revoke_security_group_egress)):
        for perm in groups[0].get(key) or []:
            clean = {k: v for k, v in perm.items() if v not in ([], None)}
            try:
                revoke(GroupId=group_id, IpPermissions=[clean])
            except Exception:  # noqa: BLE001,S110 - see the docstring
                pass


def _delete(aws: AwsClients, item: Leftover) -> bool:
    """Delete one leftover; False when it is not deletable yet (in use)."""
    if item.kind == "load-balancer":
        aws.elbv2.delete_load_balancer(LoadBalancerArn=item.id)
    elif item.kind == "classic-load-balancer":
        aws.elb.delete_load_balancer(LoadBalancerName=item.id)
    elif item.kind == "target-group":
        aws.elbv2.delete_target_group(TargetGroupArn=item.id)
    elif item.kind == "eni":
        if item.detail != "available":  # attached: goes with its instance or load balancer
            return False
        aws.ec2.delete_network_interface(NetworkInterfaceId=item.id)
    elif item.kind == "volume":
        if item.detail not in ("available", "error"):
            return False
        aws.ec2.delete_volume(VolumeId=item.id)
    elif item.kind == "security-group":
        _revoke_rules(aws.ec2, item.id)
        aws.ec2.delete_security_group(GroupId=item.id)
    elif item.kind in KARPENTER_KINDS:
        return _delete_karpenter(aws, item)
    else:
        raise ValueError(item.kind)
    return True


def _wait_deleted(aws: AwsClients, arns: list[str], log: Log, *, delay: int = 15, max_attempts: int = 20) -> None:
    """Block until the load balancers are gone (at most delay * max_attempts seconds); a timeout only logs."""
    try:
        aws.elbv2.get_waiter("load_balancers_deleted").wait(
            LoadBalancerArns=arns, WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts}
        )
    except Exception as exc:  # noqa: BLE001 - botocore WaiterError: the next pass retries what still depends on them
        log(f"sweep: load balancers still deleting: {exc}")


def sweep(
    aws: AwsClients,
    cluster: str,
    stack: str | None,
    *,
    attempts: int = 5,
    delay: float = 30,
    sleep: Callable[[float], None] | None = None,
    log: Log = print,
) -> SweepReport:
    """Delete everything still tagged for the cluster or stack, in dependency order, retrying; report the rest."""
    sleep = sleep or time.sleep
    report = SweepReport(cluster, stack)
    report.deleted += [f"karpenter-instance {i}" for i in terminate_karpenter_instances(aws, cluster, log)]
    for attempt in range(1, attempts + 1):
        leftovers = find_all(aws, cluster, stack)
        report.attempts = attempt
        if not leftovers:
            return report
        report.errors = []
        deleted_lbs: list[str] = []
        waited = False
        for item in leftovers:
            if deleted_lbs and not waited and item.kind not in ("load-balancer", "classic-load-balancer"):
                # DeleteLoadBalancer returns while the load balancer is still going away; its target groups stay
                # ResourceInUse and its ENIs keep its security groups until it is gone. Wait for it once per pass
                # (elbv2 waiter LoadBalancersDeleted) instead of burning the pass on errors.
                _wait_deleted(aws, deleted_lbs, log)
                waited = True
            try:
                if _delete(aws, item) and str(item) not in report.deleted:
                    report.deleted.append(str(item))
                    log(f"sweep: deleted {item}")
                if item.kind == "load-balancer":
                    deleted_lbs.append(item.id)
            except Exception as exc:  # DependencyViolation, ResourceInUse...: retried on the next pass
                code = _error_code(exc)
                if code in NOT_FOUND:
                    continue
                report.errors.append(f"{item}: {code}: {exc}")
        sleep(delay)
    report.remaining = [str(x) for x in find_all(aws, cluster, stack)]
    return report
