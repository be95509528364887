"""Estimate the critical path of a first `pulumi up` from a render's dependency graph.

    python benchmarks/critical_path.py                       # renders prod, prints its critical path
    python benchmarks/critical_path.py --resources build/prod/resources.json [--baseline other/resources.json]

Pulumi creates a resource as soon as everything it depends on exists, so the wall-clock time of a first `up` is the
longest chain of dependencies weighted by creation times. The render records every resource with its dependencies
(`resources.json`); this script walks that graph with the typical creation time of each resource type below and
prints the chain that decides the total. The times are typical figures, not measurements of this stack: the point
is which chain is longest and how a change moves it, not the exact minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Typical creation times in minutes. The EKS control plane, a managed node group (instances booted and joined), the
# GPU Operator release (its Helm wait covers the operator and NFD on every node) and any other Helm release (its
# Deployments Ready) are the figures the platform issue gives; a webhook gate Job is our estimate of the operator
# creating its webhook Deployments after its release (KAI: kai-config hook, then the operands). Everything else is
# an API call or two.
MINUTES_BY_TYPE = {
    "eks:index:Cluster": 10.0,
    "aws:eks/cluster:Cluster": 10.0,
    "eks:index:ManagedNodeGroup": 5.0,
    "aws:eks/nodeGroup:NodeGroup": 5.0,
    "kubernetes:helm.sh/v3:Release": 2.0,
    "kubernetes:batch/v1:Job": 1.0,
}
MINUTES_BY_RELEASE = {"gpu-operator": 7.0}
DEFAULT_MINUTES = 0.05


def minutes(rec: dict[str, Any]) -> float:
    if rec["type"] == "kubernetes:helm.sh/v3:Release":
        return MINUTES_BY_RELEASE.get((rec.get("inputs") or {}).get("name"), MINUTES_BY_TYPE[rec["type"]])
    if not rec.get("custom") and not rec.get("remote"):
        return 0.0  # a local component: done when its children are
    return MINUTES_BY_TYPE.get(rec["type"], DEFAULT_MINUTES)


def critical_path(records: list[dict[str, Any]]) -> tuple[float, list[tuple[dict[str, Any], float, float]]]:
    """(total minutes, [(record, start, finish)] of the longest chain, first to last)."""
    by_urn = {r["urn"]: r for r in records}
    children: dict[str, list[str]] = {}
    for r in records:
        if r.get("parent") in by_urn:
            children.setdefault(r["parent"], []).append(r["urn"])

    @lru_cache(maxsize=None)
    def finish(urn: str) -> tuple[float, str | None]:
        """(finish time, the predecessor that decided it)."""
        rec = by_urn[urn]
        start, why = 0.0, None
        for dep in rec.get("dependencies", []):
            if dep in by_urn and dep != urn:
                t, _ = finish(dep)
                if t > start:
                    start, why = t, dep
        end = start + minutes(rec)
        if not rec.get("custom") and not rec.get("remote"):
            for child in children.get(urn, []):
                t, _ = finish(child)
                if t > end:
                    end, why = t, child
        return end, why

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(records) + 100))
    last = max(by_urn, key=lambda u: finish(u)[0])
    chain = []
    urn: str | None = last
    while urn is not None:
        rec = by_urn[urn]
        end, why = finish(urn)
        chain.append((rec, end - minutes(rec), end))
        urn = why
    chain.reverse()
    return finish(last)[0], [c for c in chain if minutes(c[0]) > 0 or c is chain[-1]]


def load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["resources"]


def render_prod(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "tooling.render", "--stack", "prod", "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    return out / "resources.json"


def _label(rec: dict[str, Any]) -> str:
    name = (rec.get("inputs") or {}).get("name") if rec["type"] == "kubernetes:helm.sh/v3:Release" else None
    return f"{rec['type'].split(':')[-1]} {name or rec['name']}"


def report(title: str, records: list[dict[str, Any]]) -> float:
    total, chain = critical_path(records)
    print(f"{title}: {total:.1f} min critical path over {len(records)} resources")
    for rec, start, end in chain:
        print(f"  {start:5.1f} -> {end:5.1f} min  {_label(rec)}")
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=Path, help="a render's resources.json (default: render prod now)")
    ap.add_argument("--baseline", type=Path, help="another render's resources.json to compare against (before)")
    ap.add_argument("--goal", type=float, default=25.0, help="minutes the critical path should stay under (default 25)")
    args = ap.parse_args(argv)
    if args.resources is None:
        with tempfile.TemporaryDirectory() as tmp:
            args.resources = render_prod(Path(tmp) / "prod")
            records = load(args.resources)
    else:
        records = load(args.resources)
    if args.baseline:
        before = report(f"before ({args.baseline})", load(args.baseline))
        print()
    after = report(f"{'after' if args.baseline else 'prod'} ({args.resources})", records)
    if args.baseline:
        print(f"\nbefore {before:.1f} min -> after {after:.1f} min ({after - before:+.1f}); goal <= {args.goal:.0f} min: {'met' if after <= args.goal else 'NOT met'}")
    else:
        print(f"goal <= {args.goal:.0f} min: {'met' if after <= args.goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
