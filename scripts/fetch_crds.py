"""Fetch the upstream CRDs the conformance tests validate custom resources against, checked and cached.

    python -m scripts.fetch_crds --out build/crds            # then: DISAGG_CRD_DIR=build/crds make test
    python -m scripts.fetch_crds --record                    # after a pin bump: print the new checksums

Each CRD is one file from its project's repository at the tag of the version pinned in `facts/versions.py` (the
file the chart or release installs), fetched from GitHub's raw file service, checked against the sha256 recorded
below for that version, and kept in a content-addressed cache (`--cache`, default `~/.cache/disagg/crds`), so a
second run needs no network. A pin bump without new checksums fails loudly instead of validating against files
nobody looked at. The project never commits these files (GUIDE.md); CI fetches them (.github/workflows/ci.yml),
and offline machines point $DISAGG_CRD_DIR at a copy (.ci/run uses ../shared/reference/crds).

Exit status: 0 when every CRD is in place, 1 when any failed (all failures are reported), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class Crd:
    pin: str  # key in facts/versions.py whose version selects the tag
    repo: str  # GitHub owner/name
    tag: str  # tag template: {version} is the pin's version
    path: str  # file in the repository at that tag
    dest: str  # file name in the output directory (<plural>.<group>.yaml)
    group: str
    kind: str
    recorded_for: str  # the pin version the checksum below was recorded for
    sha256: str

    def version(self, pins: dict) -> str | None:
        p = pins.get(self.pin)
        return p.version if p is not None else None

    def url(self, version: str) -> str:
        return f"{RAW}/{self.repo}/{self.tag.format(version=version)}/{self.path}"


# Checksums recorded from the files at these tags (commit in the comment). Those marked "= reference" are
# byte-identical to the file in ../shared/reference/crds (without its first, provenance line where it has one);
# tests/delivery/test_fetch_crds.py checks that. To bump: change the pin, run `--record`, read the upstream diff,
# paste the printed rows here.
CRDS: tuple[Crd, ...] = (
    # kubernetes-sigs/lws v0.10.0 = 2161f38ff333; = reference.
    Crd("lws", "kubernetes-sigs/lws", "v{version}", "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml",
        "leaderworkersets.leaderworkerset.x-k8s.io.yaml", "leaderworkerset.x-k8s.io", "LeaderWorkerSet", "0.10.0",
        "c5dcad8ed943e495490241f00b9a1b45d51203b6d484020db3636d5bf553568e"),
    Crd("lws", "kubernetes-sigs/lws", "v{version}", "config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsets.yaml",
        "disaggregatedsets.disaggregatedset.x-k8s.io.yaml", "disaggregatedset.x-k8s.io", "DisaggregatedSet", "0.10.0",
        "6dc06e630cc88c28ba5406dc4a15ac593f4ec1af89ef439e1bdb770d4a7e74a8"),
    Crd("lws", "kubernetes-sigs/lws", "v{version}", "config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsetrolescalers.yaml",
        "disaggregatedsetrolescalers.disaggregatedset.x-k8s.io.yaml", "disaggregatedset.x-k8s.io", "DisaggregatedSetRoleScaler",
        "0.10.0", "3650e4cd42d12e14569ec8042d0c797c803e05eff9a3959b3406184d39cfef9f"),
    # ai-dynamo/grove v0.1.0-alpha.11 = 8fa3ece93434; = reference.
    Crd("grove", "ai-dynamo/grove", "{version}", "operator/api/core/v1alpha1/crds/grove.io_podcliquesets.yaml",
        "podcliquesets.grove.io.yaml", "grove.io", "PodCliqueSet", "v0.1.0-alpha.11",
        "2a7622f2086fcf9fdd76e03de26b318860340bb27b6f4093700783da0220a466"),
    Crd("grove", "ai-dynamo/grove", "{version}", "operator/api/core/v1alpha1/crds/grove.io_podcliques.yaml",
        "podcliques.grove.io.yaml", "grove.io", "PodClique", "v0.1.0-alpha.11",
        "817388b0b1287b9140de3c44c48d31982db213f98a2475e45ec18638f3c83e04"),
    Crd("grove", "ai-dynamo/grove", "{version}", "operator/api/core/v1alpha1/crds/grove.io_podcliquescalinggroups.yaml",
        "podcliquescalinggroups.grove.io.yaml", "grove.io", "PodCliqueScalingGroup", "v0.1.0-alpha.11",
        "4d8f9bb5768d5ce43d2a81ba3fd046df4d5622b93ba5256676b38b3de8387812"),
    Crd("grove", "ai-dynamo/grove", "{version}", "operator/api/core/v1alpha1/crds/grove.io_clustertopologybindings.yaml",
        "clustertopologybindings.grove.io.yaml", "grove.io", "ClusterTopologyBinding", "v0.1.0-alpha.11",
        "917792ec71a94dc3f87e220961852c7fd192f25bb50cbc8226933cb55f30f16a"),
    Crd("grove", "ai-dynamo/grove", "{version}", "scheduler/api/core/v1alpha1/crds/scheduler.grove.io_podgangs.yaml",
        "podgangs.scheduler.grove.io.yaml", "scheduler.grove.io", "PodGang", "v0.1.0-alpha.11",
        "00b394a84b0af9e92af051be8544814f6c10ff219f1d67582f2fb5276d1d607f"),
    # kai-scheduler/KAI-Scheduler v0.17.0 = f218c69bee5e; = reference. The chart's own crds/ directory.
    Crd("kai-scheduler", "kai-scheduler/KAI-Scheduler", "{version}", "deployments/kai-scheduler/crds/scheduling.run.ai_queues.yaml",
        "queues.scheduling.run.ai.yaml", "scheduling.run.ai", "Queue", "v0.17.0",
        "a5930d76ba7457f3e08e9cfa38859a7bee9168e76c6a987d202621692a07e6e8"),
    Crd("kai-scheduler", "kai-scheduler/KAI-Scheduler", "{version}", "deployments/kai-scheduler/crds/scheduling.run.ai_podgroups.yaml",
        "podgroups.scheduling.run.ai.yaml", "scheduling.run.ai", "PodGroup", "v0.17.0",
        "a30fdc1bb846ed41a85008bea6cf4dfbc9d4a49564a48db60c5c1d464141bee2"),
    Crd("kai-scheduler", "kai-scheduler/KAI-Scheduler", "{version}", "deployments/kai-scheduler/crds/kai.scheduler_topologies.yaml",
        "topologies.kai.scheduler.yaml", "kai.scheduler", "Topology", "v0.17.0",
        "bd985987aab8737d13c363a15762d6e66f3248db80a5088c8372108cce1150eb"),
    # kedacore/keda v2.20.2 = 68a5b5028f35 (the chart 2.20.2 installs KEDA 2.20.2); = reference.
    Crd("keda", "kedacore/keda", "v{version}", "config/crd/bases/keda.sh_scaledobjects.yaml",
        "scaledobjects.keda.sh.yaml", "keda.sh", "ScaledObject", "2.20.2",
        "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80"),
    # prometheus-community/helm-charts kube-prometheus-stack-88.5.3 = ea930baeebeb: the CRDs this chart installs,
    # prometheus-operator v0.93.1's with a one-line source comment on top. Not = reference: the reference files are
    # v0.93.0's, which differ only in the `operator.prometheus.io/version` annotation (checked against the mirror).
    Crd("kube-prometheus-stack", "prometheus-community/helm-charts", "kube-prometheus-stack-{version}",
        "charts/kube-prometheus-stack/charts/crds/crds/crd-servicemonitors.yaml",
        "servicemonitors.monitoring.coreos.com.yaml", "monitoring.coreos.com", "ServiceMonitor", "88.5.3",
        "3322d612f23bf144c887c94bf247b0b4a69189adf37c0d482d2c6267ffe906ab"),
    Crd("kube-prometheus-stack", "prometheus-community/helm-charts", "kube-prometheus-stack-{version}",
        "charts/kube-prometheus-stack/charts/crds/crds/crd-podmonitors.yaml",
        "podmonitors.monitoring.coreos.com.yaml", "monitoring.coreos.com", "PodMonitor", "88.5.3",
        "41de2587baafa31240438654a3ae5dc19ef40296c31cb186855fa4ce85b03fb9"),
    Crd("kube-prometheus-stack", "prometheus-community/helm-charts", "kube-prometheus-stack-{version}",
        "charts/kube-prometheus-stack/charts/crds/crds/crd-prometheusrules.yaml",
        "prometheusrules.monitoring.coreos.com.yaml", "monitoring.coreos.com", "PrometheusRule", "88.5.3",
        "72b1e5f9959e67990d1598eb31b24ca4415007e31df3916356ef216316b2bf40"),
    # Mellanox/network-operator v26.4.1 = 85afd6d9c697: the chart's crds/ directory; = reference.
    Crd("network-operator", "Mellanox/network-operator", "v{version}", "deployment/network-operator/crds/mellanox.com_nicclusterpolicies.yaml",
        "nicclusterpolicies.mellanox.com.yaml", "mellanox.com", "NicClusterPolicy", "26.4.1",
        "6e7233dcad83ff1f2f2e14dde7b7bce85129cfd249ec87780f76d67c49fc67df"),
    # aws/karpenter-provider-aws v1.14.1 = bde00654cd31; = reference. facts/versions.py has no `karpenter` pin yet
    # (nothing renders Karpenter objects): skipped until one lands, then checked against this row.
    Crd("karpenter", "aws/karpenter-provider-aws", "v{version}", "pkg/apis/crds/karpenter.sh_nodepools.yaml",
        "nodepools.karpenter.sh.yaml", "karpenter.sh", "NodePool", "1.14.1",
        "3bb64a20c80776b77aa19a699ebdaf34480a7b2e7ec4ef890b43225b3517f878"),
    Crd("karpenter", "aws/karpenter-provider-aws", "v{version}", "pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml",
        "ec2nodeclasses.karpenter.k8s.aws.yaml", "karpenter.k8s.aws", "EC2NodeClass", "1.14.1",
        "62dec59f01c0972d4503ca3ed25f243ba9c2f561be0d964ce7a14c8df406132f"),
)

Fetch = Callable[[str], bytes]
Log = Callable[[str], None]


def http_get(url: str, *, attempts: int = 3, timeout: float = 60) -> bytes:
    """GET with a few retries on network errors and 5xx (a 404 is final: the tag or path is wrong)."""
    last: Exception | None = None
    for i in range(attempts):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "disagg-fetch-crds"}), timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            last = exc
        except (urllib.error.URLError, TimeoutError) as exc:
            last = exc
        time.sleep(2 * (i + 1))
    assert last is not None
    raise last


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "disagg" / "crds"


@dataclass
class Result:
    crd: Crd
    status: str  # fetched | cached | skipped | failed
    detail: str = ""


def fetch_all(out: Path, cache: Path, *, pins: dict | None = None, get: Fetch = http_get, log: Log = print) -> list[Result]:
    """Put every pinned CRD into `out`, verified; report each one."""
    if pins is None:
        from facts.versions import PINS as pins
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    for crd in CRDS:
        version = crd.version(pins)
        if version is None:
            results.append(Result(crd, "skipped", f"no `{crd.pin}` pin in facts/versions.py"))
            continue
        if version != crd.recorded_for:
            results.append(Result(crd, "failed", (
                f"the `{crd.pin}` pin is {version}, the checksum was recorded for {crd.recorded_for}: run "
                "`python -m scripts.fetch_crds --record`, read the upstream change, and update CRDS in scripts/fetch_crds.py"
            )))
            continue
        url = crd.url(version)
        cached = cache / f"{crd.sha256}.yaml"
        if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == crd.sha256:
            data, status = cached.read_bytes(), "cached"
        else:
            try:
                data = get(url)
            except Exception as exc:  # noqa: BLE001 -- every failure is reported, then the run fails
                results.append(Result(crd, "failed", f"{url}: {exc}"))
                continue
            got = hashlib.sha256(data).hexdigest()
            if got != crd.sha256:
                results.append(Result(crd, "failed", (
                    f"{url}: sha256 {got}, recorded {crd.sha256}. The file at that tag is not the one reviewed "
                    "(a moved tag, or a changed file): do not use it; investigate, then re-record with --record"
                )))
                continue
            cached.write_bytes(data)
            status = "fetched"
        (out / crd.dest).write_bytes(data)
        results.append(Result(crd, status, url))
    sources = [f"{r.crd.dest}\t{r.crd.sha256}\t{r.detail}" for r in results if r.status in ("fetched", "cached")]
    (out / "SOURCES.tsv").write_text("file\tsha256\turl\n" + "\n".join(sources) + "\n")
    for r in results:
        log(f"{r.status:8} {r.crd.dest}" + (f": {r.detail}" if r.status in ("skipped", "failed") else ""))
    return results


def record(*, pins: dict | None = None, get: Fetch = http_get, log: Log = print) -> int:
    """Download each pinned CRD and print its row's version and sha256 (to review and paste into CRDS)."""
    if pins is None:
        from facts.versions import PINS as pins
    failed = 0
    for crd in CRDS:
        version = crd.version(pins)
        if version is None:
            log(f"skipped  {crd.dest}: no `{crd.pin}` pin")
            continue
        try:
            data = get(crd.url(version))
        except Exception as exc:  # noqa: BLE001
            log(f"failed   {crd.dest}: {crd.url(version)}: {exc}")
            failed += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        same = "unchanged" if (version, digest) == (crd.recorded_for, crd.sha256) else "NEW"
        log(f"{same:9} {crd.dest}: recorded_for={version!r} sha256={digest!r}  ({crd.url(version)})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.fetch_crds", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory to put the CRDs in (point DISAGG_CRD_DIR at it)")
    ap.add_argument("--cache", type=Path, default=None, help="content-addressed cache (default ~/.cache/disagg/crds)")
    ap.add_argument("--record", action="store_true", help="print the checksums of the files at the pinned versions")
    args = ap.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.record:
        return record()
    if args.out is None:
        ap.error("--out is required (or --record)")
    results = fetch_all(args.out, args.cache or default_cache())
    failed = [r for r in results if r.status == "failed"]
    done = [r for r in results if r.status in ("fetched", "cached")]
    print(f"{len(done)} CRDs in {args.out}, {len(failed)} failed, {sum(r.status == 'skipped' for r in results)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
