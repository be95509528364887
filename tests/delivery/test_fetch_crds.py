"""scripts/fetch_crds.py: the pinned upstream CRDs, checked against recorded checksums, cached; offline here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from scripts import fetch_crds
from scripts.fetch_crds import CRDS, Crd, fetch_all
from facts.versions import PINS, pin
from tests.conftest import ROOT

REFERENCE = ROOT.parent / "shared" / "reference" / "crds"
# Rows whose file is not the reference file: the chart's Prometheus Operator CRDs are v0.93.1's (the reference
# holds v0.93.0's, one annotation apart), with a source comment on top.
NOT_REFERENCE = {"servicemonitors.monitoring.coreos.com.yaml", "podmonitors.monitoring.coreos.com.yaml", "prometheusrules.monitoring.coreos.com.yaml"}


def upstream_bytes(path: Path) -> bytes:
    """A reference file as upstream serves it: without the provenance line the reference copy starts with."""
    data = path.read_bytes()
    first, _, rest = data.partition(b"\n")
    return rest if first.startswith(b"# upstream: ") else data


needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference/crds is not beside the checkout")


@needs_reference
@pytest.mark.parametrize("crd", [c for c in CRDS if c.dest not in NOT_REFERENCE], ids=lambda c: c.dest)
def test_recorded_checksum_is_the_reference_files(crd):
    ref = REFERENCE / crd.dest
    assert ref.is_file(), f"no reference copy of {crd.dest}"
    assert hashlib.sha256(upstream_bytes(ref)).hexdigest() == crd.sha256
    first = ref.read_text().splitlines()[0]
    if first.startswith("# upstream: "):  # the provenance line names the same repo, path and tag
        assert f"github.com/{crd.repo} path: {crd.path} " in first and f"(tag {crd.tag.format(version=crd.recorded_for)})" in first


@needs_reference
@pytest.mark.parametrize("dest", sorted(NOT_REFERENCE))
def test_the_charts_prometheus_crds_are_the_reference_but_for_the_version_annotation(dest):
    # What the row's checksum stands for, rebuilt from the reference: the chart's source comment, then v0.93.0's
    # file with the version annotation of v0.93.1. Recorded from the helm-charts repository at the tag.
    crd = next(c for c in CRDS if c.dest == dest)
    name = dest.split(".", 1)[0]
    body = (REFERENCE / dest).read_text().replace("operator.prometheus.io/version: 0.93.0", "operator.prometheus.io/version: 0.93.1")
    chart_file = (
        f"# https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.1/example/prometheus-operator-crd/"
        f"monitoring.coreos.com_{name}.yaml\n" + body
    )
    assert hashlib.sha256(chart_file.encode()).hexdigest() == crd.sha256


def test_every_custom_resource_the_stacks_render_has_a_pinned_crd(rendered):
    from tests.conformance.test_manifests import all_manifests, is_builtin

    table = {(c.group, c.kind): c for c in CRDS}
    used = {(doc["apiVersion"].split("/")[0], doc["kind"]) for _, _, doc in all_manifests(rendered) if not is_builtin(doc)}
    assert used, "the renders have custom resources"
    missing = sorted(used - set(table))
    assert not missing, f"add a row to scripts/fetch_crds.py CRDS for {missing}, or the conformance test cannot check them in CI"
    skipped = sorted(k for k in used if table[k].pin not in PINS)
    assert not skipped, f"{skipped} are rendered but their pin is not in facts/versions.py: CI would skip them"


def test_urls_follow_the_versions_table():
    lws = next(c for c in CRDS if c.kind == "LeaderWorkerSet")
    assert lws.url(pin("lws").version) == (
        f"https://raw.githubusercontent.com/kubernetes-sigs/lws/v{pin('lws').version}/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml"
    )
    prom = next(c for c in CRDS if c.kind == "ServiceMonitor")
    assert f"/kube-prometheus-stack-{pin('kube-prometheus-stack').version}/" in prom.url(pin("kube-prometheus-stack").version)
    for c in CRDS:
        if c.pin in PINS:
            assert c.recorded_for == PINS[c.pin].version, f"{c.dest}: recorded for {c.recorded_for}, pinned {PINS[c.pin].version}"
        assert re.fullmatch(r"[0-9a-f]{64}", c.sha256)
    assert len({c.dest for c in CRDS}) == len(CRDS)


class FakeNet:
    """Serves fixed bytes per URL and counts the requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.calls = files, []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.files:
            raise OSError(f"404 for {url}")
        return self.files[url]


def small_table(monkeypatch) -> tuple[tuple[Crd, ...], dict[str, bytes]]:
    good, other = b"kind: CustomResourceDefinition\n# a\n", b"kind: CustomResourceDefinition\n# b\n"
    table = (
        Crd("lws", "o/a", "v{version}", "a.yaml", "a.x.yaml", "x", "A", pin("lws").version, hashlib.sha256(good).hexdigest()),
        Crd("keda", "o/b", "v{version}", "b.yaml", "b.x.yaml", "x", "B", pin("keda").version, hashlib.sha256(other).hexdigest()),
        Crd("no-such-pin", "o/c", "v{version}", "c.yaml", "c.x.yaml", "x", "C", "1.0", "0" * 64),
    )
    monkeypatch.setattr(fetch_crds, "CRDS", table)
    return table, {table[0].url(pin("lws").version): good, table[1].url(pin("keda").version): other}


def test_fetch_verifies_caches_and_skips_unpinned(tmp_path, monkeypatch):
    table, files = small_table(monkeypatch)
    net = FakeNet(files)
    results = fetch_all(tmp_path / "out", tmp_path / "cache", get=net, log=lambda _: None)
    assert [r.status for r in results] == ["fetched", "fetched", "skipped"]
    assert (tmp_path / "out" / "a.x.yaml").read_bytes() == files[table[0].url(pin("lws").version)]
    assert "a.x.yaml\t" in (tmp_path / "out" / "SOURCES.tsv").read_text()
    # A second run is served from the cache: no network at all.
    net.calls.clear()
    results = fetch_all(tmp_path / "out2", tmp_path / "cache", get=net, log=lambda _: None)
    assert [r.status for r in results] == ["cached", "cached", "skipped"] and net.calls == []


def test_a_changed_upstream_file_or_a_moved_pin_fails_and_is_not_used(tmp_path, monkeypatch):
    table, files = small_table(monkeypatch)
    files[table[1].url(pin("keda").version)] = b"kind: CustomResourceDefinition\n# tampered\n"
    results = fetch_all(tmp_path / "out", tmp_path / "cache", get=FakeNet(files), log=lambda _: None)
    assert results[1].status == "failed" and "recorded" in results[1].detail and "sha256" in results[1].detail
    assert not (tmp_path / "out" / "b.x.yaml").exists() and not (tmp_path / "cache" / f"{table[1].sha256}.yaml").exists()
    moved = (Crd("lws", "o/a", "v{version}", "a.yaml", "a.x.yaml", "x", "A", "0.0.1", table[0].sha256),)
    monkeypatch.setattr(fetch_crds, "CRDS", moved)
    (r,) = fetch_all(tmp_path / "out3", tmp_path / "cache3", get=FakeNet(files), log=lambda _: None)
    assert r.status == "failed" and "--record" in r.detail


def test_the_cli_exits_1_on_any_failure(tmp_path, monkeypatch, capsys):
    table, files = small_table(monkeypatch)
    monkeypatch.setattr(fetch_crds, "http_get", FakeNet({}))
    assert fetch_crds.main(["--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 1
    assert "2 failed" in capsys.readouterr().out
