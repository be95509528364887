"""Fail a preview (or an update plan) that would replace or delete what is expensive to lose.

Protected, and why:

- the EKS cluster (`eks:index:Cluster`, `aws:eks/cluster:Cluster`): replacing it deletes every node and workload;
- the Kubernetes provider: replacing it replaces every Kubernetes object the stack manages (pulumi-kubernetes
  DiffConfig, pulumi/pulumi-kubernetes#2745, pulumi-eks#764);
- a GPU node group (the managed node group of a `disagg:aws:GpuNodePool`, and its `aws:eks/nodeGroup`): every GPU
  node is drained and relaunched, and On-Demand p5 capacity may not come back (modelplaneai/modelplane#113);
- a subnet or the VPC: everything in them (nodes, ENIs, load balancers) goes with them;
- a KMS key (the cluster's secrets-encryption key): EKS cannot change a cluster's key, and what it encrypted
  becomes unreadable once the key is deleted.

Each can come from an innocent-looking change (a renamed pool, a CIDR edit, a refactor that moves a component),
so CI reads the preview and stops unless the pull request carries the `allow-replace` label. A refactor that
renames or re-parents a resource without an alias changes its URN: the engine plans a `create` of the new URN
and a `delete` of the old one instead of a `replace`, with the same effect, so a `delete` counts too. The
`protect` resource option (components/) stops the same deletions at `pulumi up`; this guard stops them at review.

A preview that reported an error is incomplete (the engine stops registering resources at the failure) and
cannot vouch for anything: it is an error (exit 2) even though the document still carries the steps planned
before the failure, at least the root stack's.

Input, any of:
- the update plan of `pulumi preview --save-plan` (apitype.DeploymentPlanV1, pulumi sdk/go/common/apitype/plan.go:
  `{"manifest", "config", "resourcePlans": {urn: {"goal": {"type", ...} | null, "steps": [op, ...]}}}`; a delete
  has no goal), which is what CI reads: the plan is what the deploy applies (`pulumi up --plan`);
- the JSON document of `pulumi preview --json` (`{"steps": [{"op", "urn", "newState": {"type"}}...]}`);
- the engine events of a streaming JSON preview / `--event-log` (one JSON object per line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

# Step ops (pulumi pkg/resource/deploy/step.go) that take the existing resource away: a replacement (the JSON
# digest shows `replace`; with replacement steps shown, create-before-delete emits create-replacement +
# delete-replaced), or a plain delete (an URN change without an alias).
REPLACE_OPS = (
    "replace", "create-replacement", "delete-replaced", "discard-replaced", "import-replacement", "read-replacement",
    "delete",
)
ALLOW_LABEL = "allow-replace"
# The component type of a GPU pool (components/nodepools.py GPU_TYPE; tests/delivery holds the two together):
# its node group is told from the system pool's by the parent in its URN, which a delete step carries too.
GPU_POOL_TYPE = "disagg:aws:GpuNodePool"
NODE_GROUP_TYPES = ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")


@dataclass(frozen=True)
class Protected:
    what: str  # how the report names it
    loses: str  # what is lost when it is replaced or deleted
    matches: Callable[["Step"], bool]


def _of_type(*types: str) -> Callable[["Step"], bool]:
    return lambda s: s.type in types


PROTECTED = (
    Protected("EKS cluster", "every node and workload", _of_type("eks:index:Cluster", "aws:eks/cluster:Cluster")),
    Protected("Kubernetes provider", "every Kubernetes object of the stack is recreated", _of_type("pulumi:providers:kubernetes")),
    Protected(
        "GPU node group", "every GPU node is drained and relaunched; On-Demand p5 capacity may not come back",
        lambda s: s.type in NODE_GROUP_TYPES and GPU_POOL_TYPE in parent_types(s.urn),
    ),
    Protected("subnet", "every node, ENI and load balancer in it", _of_type("aws:ec2/subnet:Subnet")),
    Protected("VPC", "everything in the stack's network", _of_type("aws:ec2/vpc:Vpc")),
    Protected("KMS key", "the cluster's secrets encryption (EKS cannot change a cluster's key)", _of_type("aws:kms/key:Key")),
)


class PreviewUnreadable(ValueError):
    """The file is not a preview: the preview itself probably failed (its errors are in the message)."""


@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    type: str


def type_of_urn(urn: str) -> str:
    """`urn:pulumi:stack::project::parent$...$type::name` -> `type`."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return ""
    return parts[2].rsplit("$", 1)[-1]


def parent_types(urn: str) -> tuple[str, ...]:
    """The types of the resource's ancestors (components), outermost first, from the URN's qualified type."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return ()
    return tuple(parts[2].split("$")[:-1])


def _step(op: Any, urn: Any, rtype: Any) -> Step | None:
    if not isinstance(op, str) or not isinstance(urn, str):
        return None
    return Step(op, urn, rtype if isinstance(rtype, str) and rtype else type_of_urn(urn))


def steps_from_digest(doc: Mapping[str, Any]) -> list[Step]:
    out = []
    for s in doc.get("steps") or []:
        state = s.get("newState") or s.get("oldState") or {}
        step = _step(s.get("op"), s.get("urn"), state.get("type"))
        if step:
            out.append(step)
    return out


def steps_from_plan(doc: Mapping[str, Any]) -> list[Step]:
    """Steps of an update plan: each resource's planned ops, in order (a deleted resource has no goal)."""
    out = []
    plans = doc.get("resourcePlans") or {}
    if not isinstance(plans, Mapping):
        raise PreviewUnreadable("`resourcePlans` is not an object: is this a `pulumi preview --save-plan` file?")
    for urn, rp in sorted(plans.items()):
        rp = rp if isinstance(rp, Mapping) else {}
        goal = rp.get("goal") if isinstance(rp.get("goal"), Mapping) else {}
        for op in rp.get("steps") or []:
            step = _step(op, urn, goal.get("type"))
            if step:
                out.append(step)
    return out


def steps_from_events(events: Iterable[Mapping[str, Any]]) -> list[Step]:
    out = []
    events = list(events)
    errors = [
        str(ev["diagnosticEvent"].get("message", "")).strip()
        for ev in events
        if isinstance(ev.get("diagnosticEvent"), Mapping) and ev["diagnosticEvent"].get("severity") == "error"
    ]
    if errors:
        raise PreviewUnreadable("the preview failed:\n" + "\n".join(errors))
    for ev in events:
        for key in ("resourcePreEvent", "resOutputsEvent"):
            meta = (ev.get(key) or {}).get("metadata")
            if meta:
                step = _step(meta.get("op"), meta.get("urn"), meta.get("type"))
                if step:
                    out.append(step)
    return out


def _errors(doc: Mapping[str, Any]) -> list[str]:
    return [str(d.get("message", "")).strip() for d in doc.get("diagnostics") or [] if d.get("severity") == "error"]


def parse(text: str) -> list[Step]:
    """Steps of a preview, from either JSON form. Raises PreviewUnreadable when there is no preview in it."""
    text = text.strip()
    if not text:
        raise PreviewUnreadable("the preview output is empty (did `pulumi preview --json` fail before printing?)")
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            events = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise PreviewUnreadable(f"not JSON: {exc}") from None
        return steps_from_events(events)
    if isinstance(doc, list):
        return steps_from_events(doc)
    if not isinstance(doc, Mapping):
        raise PreviewUnreadable("expected a JSON object")
    errors = _errors(doc)
    if errors:
        raise PreviewUnreadable("the preview failed:\n" + "\n".join(errors))
    if "manifest" in doc and ("resourcePlans" in doc or "config" in doc):
        return steps_from_plan(doc)
    if "steps" not in doc and "changeSummary" not in doc:
        raise PreviewUnreadable(
            "no `steps` (nor `resourcePlans`) in the document: is this `pulumi preview --json` output or a "
            "`--save-plan` file?"
        )
    return steps_from_digest(doc)


@dataclass(frozen=True)
class Violation:
    step: Step
    protected: Protected


def violations(steps: Iterable[Step], protected: Iterable[Protected] = PROTECTED) -> list[Violation]:
    """One entry per protected resource the steps replace or delete (whatever the number of its steps)."""
    protected = tuple(protected)
    seen: set[str] = set()
    out = []
    for s in steps:
        if s.op not in REPLACE_OPS or s.urn in seen:
            continue
        rule = next((p for p in protected if p.matches(s)), None)
        if rule is not None:
            seen.add(s.urn)
            out.append(Violation(s, rule))
    return out


def report(found: list[Violation], *, stack: str = "", allowed: bool = False) -> str:
    where = f" of stack {stack}" if stack else ""
    if not found:
        covered = ", ".join(p.what for p in PROTECTED)
        return f"preview guard: no replacement or deletion of a protected resource{where} ({covered})."
    lines = [f"preview guard: the preview{where} would REPLACE or DELETE:"]
    lines += [f"  - {v.protected.what}: {v.step.urn} ({v.step.op}): {v.protected.loses}" for v in found]
    if allowed:
        lines.append(f"allowed by the `{ALLOW_LABEL}` label: the resources above are recreated or removed.")
    else:
        lines.append(
            f"If this is intended, add the `{ALLOW_LABEL}` label to the pull request. Otherwise find what forces it in "
            "the preview's diff (a renamed pool or component needs an alias; a CIDR, zone or instance-type change "
            "needs a new pool beside the old one; keep clusterIdentifier stable); see docs/runbook.md."
        )
    return "\n".join(lines)


def check(text: str, *, stack: str = "", allow: bool = False) -> tuple[int, str]:
    """Exit code and report: 0 clean or allowed, 1 replacement found, 2 unreadable preview."""
    try:
        found = violations(parse(text))
    except PreviewUnreadable as exc:
        return 2, f"preview guard: cannot read the preview{' of ' + stack if stack else ''}: {exc}"
    code = 1 if found and not allow else 0
    return code, report(found, stack=stack, allowed=allow)
