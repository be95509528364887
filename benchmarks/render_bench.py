"""Render-time benchmark: prints figures, asserts nothing (timing belongs here, never in a test).

Measures, each as the median of N fresh processes (wall time and peak RSS):
  - the import floor: `import pulumi, pulumi_aws, pulumi_eks, pulumi_kubernetes` (the issue's bare floor), and the
    imports the program really does (the AWS, EKS and Kubernetes submodules it uses);
  - `python -m tooling.render` of every stack file in the repo;
  - renders of generated configs with 1, 4 and 16 GPU pools per role (2, 8 and 32 pools: a stack needs a
    prefill and a decode pool, so one pool in total is not a valid stack).
Target from the foundation issue: the prod render within 3x the bare import floor.

    python benchmarks/render_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = "import pulumi, pulumi_aws, pulumi_eks, pulumi_kubernetes"
PROGRAM = (
    "import pulumi, pulumi_aws, pulumi_eks, pulumi_kubernetes; "
    "import pulumi_aws.ec2, pulumi_aws.eks, pulumi_aws.iam, pulumi_aws.kms, pulumi_aws.vpc; "
    "import pulumi_kubernetes.helm.v3, pulumi_kubernetes.apps.v1, pulumi_kubernetes.core.v1, pulumi_kubernetes.apiextensions"
)


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MiB) of `runs` fresh processes."""
    walls, rss = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.read().decode()[-2000:]}")
        rss.append(usage.ru_maxrss / 1024)
    return statistics.median(walls), statistics.median(rss)


def pools_config(per_role: int, base: Path) -> dict:
    """prod with `per_role` p5 pools per role (one node each) and replicas filling them."""
    doc = yaml.safe_load(base.read_text())
    cfg = doc["config"]
    pools = []
    for role in ("prefill", "decode"):
        for i in range(per_role):
            pools.append({"name": f"{role}-{i}", "role": role, "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]})
    cfg["disagg:gpuPools"] = pools
    serving = copy.deepcopy(cfg["disagg:serving"])
    serving["prefill"]["replicas"] = 2 * per_role
    serving["decode"]["replicas"] = 4 * per_role
    cfg["disagg:serving"] = serving
    return doc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each (median)\n")
    bare, bare_rss = measure([py, "-c", BARE], args.runs)
    prog, prog_rss = measure([py, "-c", PROGRAM], args.runs)
    print(f"{'what':<44} {'wall s':>8} {'x bare floor':>13} {'peak MiB':>9}")
    print(f"{'import floor (bare: ' + BARE[7:40] + '...)':<44} {bare:>8.2f} {1.0:>13.2f} {bare_rss:>9.0f}")
    print(f"{'import floor (submodules the program uses)':<44} {prog:>8.2f} {prog / bare:>13.2f} {prog_rss:>9.0f}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
            stack = stack_file.name.split(".")[1]
            wall, rss = measure([py, "-m", "tooling.render", "--stack", stack, "--out", f"{tmp}/{stack}"], args.runs)
            results[stack] = wall
            print(f"{'render ' + stack:<44} {wall:>8.2f} {wall / bare:>13.2f} {rss:>9.0f}")
        for per_role in (1, 4, 16):
            path = Path(tmp) / f"Pulumi.pools{per_role}.yaml"
            path.write_text(yaml.safe_dump(pools_config(per_role, ROOT / "Pulumi.prod.yaml")))
            wall, rss = measure([py, "-m", "tooling.render", "--config", str(path), "--out", f"{tmp}/p{per_role}"], args.runs)
            print(f"{f'render prod, {per_role} GPU pools per role ({2 * per_role} pools)':<44} {wall:>8.2f} {wall / bare:>13.2f} {rss:>9.0f}")
    ratio = results.get("prod", float("nan")) / bare
    print(f"\nprod render / bare import floor = {ratio:.2f} (target <= 3.00): {'met' if ratio <= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
