"""Fail a preview that would replace (or delete) the EKS cluster or the Kubernetes provider.

Replacing the cluster deletes every node and workload; replacing the Kubernetes provider replaces every
Kubernetes object the stack manages (pulumi-kubernetes DiffConfig, pulumi/pulumi-kubernetes#2745,
pulumi-eks#764). Either can come from an innocent-looking refactor, so CI reads `pulumi preview --json` and
stops unless the pull request carries the `allow-replace` label. A refactor that renames the component or moves
it under another parent changes its URN: the engine then plans a `create` of the new URN and a `delete` of the
old one instead of a `replace`, with the same effect, so a `delete` of these types counts too.

A preview that reported an error is incomplete (the engine stops registering resources at the failure) and
cannot vouch for anything: it is an error (exit 2) even though the document still carries the steps planned
before the failure, at least the root stack's.

Input: the JSON document of `pulumi preview --json` (`{"steps": [{"op", "urn", "newState": {"type"}}...]}`),
or the engine events of a streaming JSON preview / `--event-log` (one JSON object per line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

PROTECTED_TYPES = ("eks:index:Cluster", "aws:eks/cluster:Cluster", "pulumi:providers:kubernetes")
# Step ops (pulumi pkg/resource/deploy/step.go) that take the existing resource away: a replacement (the JSON
# digest shows `replace`; with replacement steps shown, create-before-delete emits create-replacement +
# delete-replaced), or a plain delete (an URN change without an alias).
REPLACE_OPS = (
    "replace", "create-replacement", "delete-replaced", "discard-replaced", "import-replacement", "read-replacement",
    "delete",
)
ALLOW_LABEL = "allow-replace"


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
    if "steps" not in doc and "changeSummary" not in doc:
        raise PreviewUnreadable("no `steps` in the document: is this `pulumi preview --json` output?")
    return steps_from_digest(doc)


def violations(steps: Iterable[Step], protected: Iterable[str] = PROTECTED_TYPES) -> list[Step]:
    protected = tuple(protected)
    seen: set[str] = set()
    out = []
    for s in steps:
        if s.op in REPLACE_OPS and s.type in protected and s.urn not in seen:
            seen.add(s.urn)
            out.append(s)
    return out


def report(found: list[Step], *, stack: str = "", allowed: bool = False) -> str:
    where = f" of stack {stack}" if stack else ""
    if not found:
        return f"preview guard: no replacement or deletion of the cluster or the Kubernetes provider{where}."
    lines = [f"preview guard: the preview{where} would REPLACE or DELETE:"]
    lines += [f"  - {s.type}  {s.urn}  ({s.op})" for s in found]
    if allowed:
        lines.append(f"allowed by the `{ALLOW_LABEL}` label: every node and Kubernetes object under it is recreated.")
    else:
        lines.append(
            "This recreates the cluster or every Kubernetes object. If intended, add the "
            f"`{ALLOW_LABEL}` label to the pull request; otherwise add aliases or keep clusterIdentifier stable "
            "(see docs/runbook.md)."
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
