"""Deploy checks: what a real `pulumi preview` / `pulumi up` refuses before it creates anything, with one message per
problem, and what `python -m ops preflight --stack S` reports.

Two kinds, both pure functions of the typed config and an `Answers` object:

- config checks that need no cloud, rules of the `deploy` stage of the registry (stacks/rules.py): `publicAccessCidrs` holding an RFC 5737 documentation range (the placeholder
  of the committed prod file) or `0.0.0.0/0` outside a dev stack; an EFA engine image in ECR of AWS's documentation
  account (the committed files' placeholder for the image the user builds);
- capacity checks that read the account: each pool's instance type offered in its zones
  (ec2:DescribeInstanceTypeOfferings), the On-Demand vCPU quota of each instance class against what the pools need
  at `maxNodes` (servicequotas:GetServiceQuota), each reservation or Capacity Block against its pool (type, zone,
  count, state, dates, platform, tenancy, placement group; ec2:DescribeCapacityReservations), and the deployer
  listed in `adminPrincipalArns` of a cluster that does not exist yet (sts:GetCallerIdentity, eks:DescribeCluster).

The real program asks AWS (stacks/preflight_aws.py, boto3 with the credentials the AWS provider uses); the offline
render and the tests answer from recorded responses (tooling/fakes.py). Only the render warns instead of failing:
stacks/runmode.py says how the program tells the two apart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from facts.catalog import instance_type, vcpu_quota
from stacks.config.base import MISSING, ConfigError, Issue, key_path
from stacks.config.stack import StackConfig
from stacks.plan import pool_zones
from stacks.rules import check as check_rules
from stacks.rules import rule

# RFC 5737: blocks reserved for documentation; no packet on the internet comes from them.
DOCUMENTATION_RANGES = {
    "192.0.2.0/24": "TEST-NET-1",
    "198.51.100.0/24": "TEST-NET-2",
    "203.0.113.0/24": "TEST-NET-3",
}
OPEN = "0.0.0.0/0"
# The account id AWS's own documentation uses in examples (the committed stack files' placeholder for the EFA engine
# image's ECR registry): no real registry lives there, so every engine pod of a stack that keeps it fails ImagePull.
DOCUMENTATION_ACCOUNT = "123456789012"
DEV_TAG, DEV_VALUE = "environment", "dev"

# EKS scales a Capacity Block node group to 0 this long before the block ends; EC2 terminates at 30 minutes (EKS
# user guide ml/capacity-blocks-mng).
BLOCK_SCALEDOWN = dt.timedelta(minutes=40)
# Reservation states a pool can use now (ODCR) or once it starts (Capacity Block); DescribeCapacityReservations
# `State`. AWS PCS documents the same two for blocks ("Capacity Blocks must be in a scheduled or active state").
USABLE_RESERVATION_STATES = {"capacityReservation": ("active",), "capacityBlock": ("active", "scheduled")}
RESERVATION_TYPES = {"capacityReservation": "default", "capacityBlock": "capacity-block"}
LINUX = "Linux/UNIX"
# A managed node group update with the DEFAULT strategy (the system pool) first adds up to twice its zone count in
# nodes (EKS user guide nodes/managed-node-update-behavior.adoc, scale-up phase); GPU pools use MINIMAL and add none.
SURGE_PER_ZONE = 2


@dataclass(frozen=True)
class Reservation:
    """One capacity reservation as DescribeCapacityReservations reports it (only what the checks read)."""

    id: str
    instance_type: str
    availability_zone: str
    total_instances: int
    available_instances: int
    state: str
    reservation_type: str  # "default" (On-Demand Capacity Reservation) or "capacity-block"
    platform: str
    tenancy: str
    start: dt.datetime | None
    end: dt.datetime | None
    placement_group_arn: str | None


class Unanswered(Exception):
    """A question the cloud did not answer (no permission, no credentials, throttled): reported as its own problem."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class Answers(Protocol):
    region: str

    def offered(self, zones: Sequence[str], types: Sequence[str]) -> dict[str, set[str]]:
        """zone -> the given instance types offered there."""

    def vcpu_quota(self, code: str) -> float:
        """Applied value of an EC2 vCPU quota in the region."""

    def reservation(self, reservation_id: str) -> Reservation | None:
        """The reservation, or None when the account has no reservation of that id in the region."""

    def caller_arn(self) -> str:
        """ARN of the identity the checks (and the AWS provider) run as."""

    def cluster_exists(self, name: str) -> bool:
        """Whether an EKS cluster of that name exists in the region."""

    def now(self) -> dt.datetime:
        """The current time (UTC)."""


class PreflightError(ConfigError):
    """The deploy checks found problems: the preview stops before registering a resource."""

    def __init__(self, issues: list[Issue]):
        super().__init__(issues)
        lines = "\n".join(f"  - {i}" for i in self.issues)
        self.args = (
            f"deploy checks: {len(self.issues)} problem(s); nothing was created (python -m ops preflight --stack "
            f"<stack> runs the same checks):\n{lines}",
        )


# ---- config checks (no cloud) -----------------------------------------------------------------------------------


def is_dev(cfg: StackConfig) -> bool:
    """A dev stack says so in its tags (`disagg:tags.environment: dev`, as Pulumi.dev.yaml and the review stacks
    copied from it do)."""
    return cfg.tags.get(DEV_TAG) == DEV_VALUE


def _public_cidrs(cfg: StackConfig):
    cc = cfg.cluster
    return enumerate(cc.public_access_cidrs) if cc.endpoint_public_access else ()


def _documentation_range(cidr: str) -> str | None:
    # Inside a documentation block (a wider range that merely contains one, like 0.0.0.0/0, is not a placeholder).
    net = ipaddress.IPv4Network(cidr)
    return next((name for block, name in DOCUMENTATION_RANGES.items() if net.subnet_of(ipaddress.IPv4Network(block))), None)


@rule("cluster.public-cidr-not-documentation-range", "cluster.publicAccessCidrs", stage="deploy")
def public_cidr_not_documentation_range(cfg: StackConfig):
    """No public endpoint CIDR is an RFC 5737 documentation range (the placeholder of the committed prod file)."""
    for i, cidr in _public_cidrs(cfg):
        doc = _documentation_range(cidr)
        if doc:
            yield Issue(
                key_path("cluster", "publicAccessCidrs", i),
                cidr,
                f"is in an RFC 5737 documentation range ({doc}), a placeholder no traffic comes from: the public API "
                "endpoint would answer nobody, including this stack's own Kubernetes provider",
                "set the egress CIDRs of your network and CI runners: pulumi config set --path "
                f"'disagg:cluster.publicAccessCidrs[{i}]' <cidr> -s <stack> (your address: curl -s "
                "https://checkip.amazonaws.com), or set cluster.endpointPublicAccess to false and deploy from inside "
                "the VPC",
            )


@rule("cluster.public-cidr-not-open", "cluster.publicAccessCidrs", "tags", stage="deploy")
def public_cidr_not_open(cfg: StackConfig):
    """Outside a dev stack the public endpoint is not open to the whole internet (0.0.0.0/0)."""
    for i, cidr in _public_cidrs(cfg):
        if cidr == OPEN and not is_dev(cfg):
            yield Issue(
                key_path("cluster", "publicAccessCidrs", i),
                cidr,
                "opens the cluster's API endpoint to the whole internet outside a dev stack",
                "list the CIDRs of your network and CI runners instead; a dev stack says so with "
                f"disagg:tags.{DEV_TAG}: {DEV_VALUE}",
            )


def check_public_access_cidrs(cfg: StackConfig) -> list[Issue]:
    """The public endpoint's CIDRs: no documentation placeholder, and not the whole internet outside dev."""
    return check_rules(cfg, stage="deploy", ids=_CIDR_RULES)


@rule("serving.efa-image-not-placeholder", "serving.engine.efaImage", stage="deploy")
def efa_image_not_placeholder(cfg: StackConfig):
    """The EFA engine image is one the user built and pushed, not the committed files' placeholder.

    The committed stack files carry an image in ECR of AWS's documentation account, which would leave every GPU
    pod in ImagePullBackOff after the nodes are paid for.
    """
    image = cfg.serving.engine.efa_image
    if not image or not re.match(rf"^{DOCUMENTATION_ACCOUNT}\.dkr\.ecr\.", image):
        return
    build = "tensorrt-llm-efa" if cfg.serving.engine.kind == "tensorrt-llm" else "vllm-efa"
    # Each image has its workflow (.github/workflows/vllm-efa-image.yml, tensorrt-llm-efa-image.yml).
    how = f" with the {build}-image workflow"
    yield Issue(
        key_path("serving", "engine", "efaImage"),
        image,
        f"is in ECR of account {DOCUMENTATION_ACCOUNT}, the example account of AWS's documentation (a placeholder): no "
        "engine pod could pull it",
        f"build images/{build}{how} (docs/serving.md) and set the digest it prints: "
        f"pulumi config set --path 'disagg:serving.engine.efaImage' <registry>/disagg/{build}@sha256:... -s <stack>",
    )


def check_engine_images(cfg: StackConfig) -> list[Issue]:
    """The EFA engine image is not a placeholder."""
    return check_rules(cfg, stage="deploy", ids=("serving.efa-image-not-placeholder",))


_CIDR_RULES = ("cluster.public-cidr-not-documentation-range", "cluster.public-cidr-not-open")


# ---- capacity checks (read the account) -------------------------------------------------------------------------


def _unanswered(key: str, value, what: str, err: Unanswered) -> Issue:
    return Issue(key, value, f"{what} could not be checked ({err.reason})", err.fix)


def check_offerings(cfg: StackConfig, answers: Answers) -> list[Issue]:
    """Every pool's instance type is offered in each of its zones: EKS would accept the node group and then fail
    every launch (InsufficientInstanceCapacity is not the message you get; the ASG reports an unsupported type)."""
    wanted: list[tuple[str, str, list[str]]] = [
        (key_path("systemPool", "instanceType"), cfg.system_pool.instance_type, list(cfg.availability_zones))
    ]
    wanted += [(key_path("gpuPools", i, "instanceType"), p.instance_type, pool_zones(cfg, p)) for i, p in enumerate(cfg.gpu_pools)]
    zones = sorted({z for _, _, zs in wanted for z in zs})
    types = sorted({t for _, t, _ in wanted})
    try:
        offered = answers.offered(zones, types)
    except Unanswered as err:
        return [_unanswered(key_path("gpuPools"), types, "instance type offerings", err)]
    issues = []
    for key, itype, pool_zone_list in wanted:
        missing = [z for z in pool_zone_list if itype not in offered.get(z, set())]
        if missing:
            elsewhere = sorted(z for z in zones if itype in offered.get(z, set()))
            issues.append(
                Issue(
                    key,
                    itype,
                    f"is not offered in {', '.join(missing)} (region {answers.region})",
                    (f"use a zone where it is offered ({', '.join(elsewhere)}) or another type" if elsewhere else
                     f"pick a type offered in these zones (aws ec2 describe-instance-type-offerings --location-type "
                     f"availability-zone --filters Name=instance-type,Values={itype} --region {answers.region})"),
                )
            )
    return issues


def _quota_groups(cfg: StackConfig) -> dict[str, list[tuple[str, str, int, int]]]:
    """quota code -> [(key, label, vCPUs needed, the key's node count)] for On-Demand capacity. Reserved pools are left out: a
    reservation holds its capacity (and took the quota when it was made), so their check is against the reservation."""
    groups: dict[str, list[tuple[str, str, int, int]]] = {}
    sp = cfg.system_pool
    sys_max = sp.max_nodes or sp.nodes
    sys_nodes = sys_max + SURGE_PER_ZONE * len(cfg.availability_zones)
    sys_it = instance_type(sp.instance_type)
    groups.setdefault(vcpu_quota(sys_it.name).code, []).append(
        (key_path("systemPool", "maxNodes"), f"system {sys_nodes} x {sys_it.name} (maxNodes + update surge)", sys_nodes * sys_it.vcpus, sys_max)
    )
    for i, p in enumerate(cfg.gpu_pools):
        if p.capacity.type != "onDemand":
            continue
        it = instance_type(p.instance_type)
        n = p.max_nodes or p.nodes
        groups.setdefault(vcpu_quota(it.name).code, []).append(
            (key_path("gpuPools", i, "maxNodes"), f"{p.name} {n} x {it.name}", n * it.vcpus, n)
        )
    return groups


def check_quotas(cfg: StackConfig, answers: Answers) -> list[Issue]:
    """The pools' On-Demand vCPUs at `maxNodes`, per instance class, fit the account's quota of that class. The quota
    is shared with everything else running in the account and region; this only catches a quota too small for the
    stack alone (new accounts start P instances at 0)."""
    from facts.catalog import VCPU_QUOTAS

    names = {q.code: q.name for q in VCPU_QUOTAS.values()}
    issues = []
    for code, members in _quota_groups(cfg).items():
        need = sum(v for _, _, v, _ in members)
        key, value = members[0][0], members[0][3]
        try:
            have = answers.vcpu_quota(code)
        except Unanswered as err:
            issues.append(_unanswered(key, value, f"the vCPU quota {code} ({names.get(code, code)})", err))
            continue
        if need > have:
            detail = ", ".join(f"{label} = {v}" for _, label, v, _ in members)
            issues.append(
                Issue(
                    key,
                    value,
                    f"the pools need {need} vCPUs of '{names.get(code, code)}' ({code}) at maxNodes ({detail}) but the "
                    f"account's quota in {answers.region} is {have:g}",
                    f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
                    f"--desired-value {need} --region {answers.region}; or lower maxNodes, or run the pools on a "
                    "reservation or Capacity Block",
                )
            )
    return issues


def _pg_name(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn else None


def check_reservations(cfg: StackConfig, answers: Answers) -> list[Issue]:
    """Each pool's reservation or Capacity Block is one the pool can launch into: its instance type, zone, size,
    kind, state and dates, platform, tenancy and placement group match the pool."""
    issues: list[Issue] = []
    now = None
    for i, p in enumerate(cfg.gpu_pools):
        cap = p.capacity
        if cap.type == "onDemand" or not cap.reservation_id:
            continue  # a resource group's members are matched by EC2 at launch; the group itself is not checked
        rid = cap.reservation_id
        rkey = key_path("gpuPools", i, "capacity", "reservationId")
        try:
            r = answers.reservation(rid)
            now = now or answers.now()
        except Unanswered as err:
            issues.append(_unanswered(rkey, rid, "the reservation", err))
            continue
        if r is None:
            issues.append(
                Issue(rkey, rid, f"no capacity reservation of this id in {answers.region} for this account",
                      f"check the id and region (aws ec2 describe-capacity-reservations --region {answers.region})")
            )
            continue
        kind = "Capacity Block" if cap.type == "capacityBlock" else "reservation"
        if r.reservation_type != RESERVATION_TYPES[cap.type]:
            actual = "a Capacity Block" if r.reservation_type == "capacity-block" else "an On-Demand Capacity Reservation"
            wanted = "capacityBlock" if r.reservation_type == "capacity-block" else "capacityReservation"
            issues.append(
                Issue(key_path("gpuPools", i, "capacity", "type"), cap.type, f"{rid} is {actual}",
                      f"set capacity.type to {wanted}")
            )
        if r.instance_type != p.instance_type:
            issues.append(
                Issue(key_path("gpuPools", i, "instanceType"), p.instance_type,
                      f"{kind} {rid} holds {r.instance_type}, so the pool's instances would never land in it",
                      f"set instanceType to {r.instance_type}, or target a reservation of {p.instance_type}")
            )
        zones = pool_zones(cfg, p)
        if zones != [r.availability_zone]:
            issues.append(
                Issue(key_path("gpuPools", i, "availabilityZones"), zones,
                      f"{kind} {rid} is in {r.availability_zone}; instances launched in another zone cannot use it",
                      f"set availabilityZones to [{r.availability_zone}]")
            )
        want = p.max_nodes or p.nodes
        if r.total_instances < want:
            key = key_path("gpuPools", i, "maxNodes" if p.max_nodes else "nodes")
            issues.append(
                Issue(key, want, f"{kind} {rid} holds {r.total_instances} instances, fewer than the pool's {want}",
                      f"lower the pool to {r.total_instances} nodes, or grow the reservation")
            )
        if r.state not in USABLE_RESERVATION_STATES[cap.type]:
            allowed = " or ".join(USABLE_RESERVATION_STATES[cap.type])
            issues.append(
                Issue(rkey, rid, f"{kind} is {r.state}, not {allowed}: no instance can launch into it",
                      "buy or create a new one and set its id" if r.state in ("expired", "cancelled", "failed", "payment-failed")
                      else "wait until it is active, then run the preview again")
            )
        elif r.end is not None and r.end - BLOCK_SCALEDOWN <= now and cap.type == "capacityBlock":
            issues.append(
                Issue(rkey, rid,
                      f"Capacity Block ends {r.end.isoformat()}; EKS scales its node group to 0 40 minutes before that",
                      "buy a new block (aws ec2 describe-capacity-block-offerings) and set its id")
            )
        elif r.end is not None and r.end <= now:
            issues.append(Issue(rkey, rid, f"{kind} ended {r.end.isoformat()}", "create a new one and set its id"))
        if r.platform != LINUX:
            issues.append(
                Issue(rkey, rid, f"{kind} is for {r.platform}; the nodes run the EKS AL2023 AMI ({LINUX})",
                      f"use a {LINUX} reservation")
            )
        if r.tenancy != "default":
            issues.append(
                Issue(rkey, rid, f"{kind} has {r.tenancy} tenancy; the launch template launches shared-tenancy instances",
                      "use a reservation with default tenancy")
            )
        in_group = _pg_name(r.placement_group_arn)
        if in_group and p.placement_group_name != in_group:
            issues.append(
                Issue(key_path("gpuPools", i, "placementGroupName"), p.placement_group_name or MISSING,
                      f"{kind} {rid} was made in cluster placement group {in_group}; only instances launched into that "
                      "group use it",
                      f"set placementGroupName to {in_group}")
            )
    return issues


_ROLE_ARN = re.compile(r"^arn:(?P<part>[^:]+):iam::(?P<acct>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")
_USER_ARN = re.compile(r"^arn:(?P<part>[^:]+):iam::(?P<acct>\d{12}):user/(?:.*/)?(?P<name>[^/]+)$")
_ASSUMED = re.compile(r"^arn:(?P<part>[^:]+):sts::(?P<acct>\d{12}):assumed-role/(?P<name>[^/]+)/.+$")


def principal_of(arn: str) -> tuple[str, str, str] | None:
    """(kind, account, name) of an IAM role/user ARN or an STS assumed-role session (the role behind it); role
    paths are dropped, since an assumed-role ARN carries none."""
    for kind, rx in (("role", _ROLE_ARN), ("user", _USER_ARN), ("role", _ASSUMED)):
        m = rx.match(arn)
        if m:
            return kind, m["acct"], m["name"]
    return None


def check_admin_principals(cfg: StackConfig, answers: Answers) -> list[Issue]:
    """On a cluster not created yet, the identity running `pulumi up` must not be in `adminPrincipalArns`: EKS
    gives the creator an admin access entry itself (pulumi-eks sets bootstrapClusterCreatorAdminPermissions,
    nodejs/eks/cluster/cluster.ts), and the second entry for the same principal fails with ResourceInUseException
    after the control plane is up."""
    arns = cfg.cluster.admin_principal_arns
    if not arns:
        return []
    try:
        if answers.cluster_exists(cfg.cluster_name):
            return []
        caller = principal_of(answers.caller_arn())
    except Unanswered as err:
        return [_unanswered(key_path("cluster", "adminPrincipalArns"), list(arns), "whether the deployer is listed", err)]
    return [
        Issue(
            key_path("cluster", "adminPrincipalArns", i),
            arn,
            "is the identity running this deploy; EKS makes the cluster's creator an admin itself, and a second access "
            "entry for it fails the create with ResourceInUseException",
            "remove it from adminPrincipalArns (it stays admin as the creator), or deploy as another identity",
        )
        for i, arn in enumerate(arns)
        if caller is not None and principal_of(arn) == caller
    ]


@dataclass(frozen=True)
class Check:
    title: str
    run: object  # (cfg, answers) -> list[Issue]


# In the order they are reported; the in-program check and `python -m ops preflight` run the same list.
CHECKS = (
    Check("public endpoint CIDRs", lambda cfg, answers: check_public_access_cidrs(cfg)),
    Check("the EFA engine image is not a placeholder", lambda cfg, answers: check_engine_images(cfg)),
    Check("instance types offered in the pools' zones", check_offerings),
    Check("On-Demand vCPU quotas at maxNodes", check_quotas),
    Check("reservations and Capacity Blocks match their pools", check_reservations),
    Check("the deployer is not listed as an admin of a new cluster", check_admin_principals),
)


def results(cfg: StackConfig, answers: Answers) -> list[tuple[Check, list[Issue]]]:
    return [(c, c.run(cfg, answers)) for c in CHECKS]


def run_checks(cfg: StackConfig, answers: Answers) -> list[Issue]:
    return [i for _, found in results(cfg, answers) for i in found]


def enforce(cfg: StackConfig) -> None:
    """Run the deploy checks inside the Pulumi program, before any resource is registered.

    A real preview or up raises `PreflightError` (every problem at once); under the offline render the problems
    become warnings the render prints and writes into summary.md.
    """
    from stacks.runmode import offline_run

    offline = offline_run()
    if offline is None:
        from stacks.preflight_aws import AwsAnswers

        answers: Answers = AwsAnswers(cfg.region)
    else:
        answers = offline.answers
    issues = run_checks(cfg, answers)
    if not issues:
        return
    if offline is not None and not offline.strict:
        import pulumi

        for issue in issues:
            offline.warnings.append(str(issue))
            pulumi.log.warn(f"deploy check (a real preview stops here): {issue}")
        return
    raise PreflightError(issues)
