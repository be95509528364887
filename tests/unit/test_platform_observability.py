"""The observability pack: dashboards are valid Grafana JSON, every PromQL expression parses (promql-parser, the
Rust PromQL parser's Python binding) and names only metrics a component of the stack exports, the rules are
well-formed, and the EFA counter exporter reads what the efa driver writes."""

from __future__ import annotations

import copy
import json
import os
import re

import promql_parser
import pytest

from components.builders import efa_exporter
from components.builders import observability as obs
from components.builders import platform_values as pv
from components.builders.addons import addon_namespaces, addon_specs
from stacks.config import ConfigError, parse
from stacks.platform_args import platform_args
from tests.conftest import BASE

# Grafana replaces its variables before a query reaches Prometheus: ranges become durations, `$var` inside a label
# matcher stays a (regex) string.
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def promql(expr: str) -> promql_parser.Expr:
    for var, value in GRAFANA_RANGES.items():
        expr = expr.replace(var, value)
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql(expr), visit)
    return names


def exported(name: str) -> bool:
    if name in obs.METRIC_SOURCES:
        return True
    return any(name.endswith(s) and name[: -len(s)] in obs.METRIC_SOURCES for s in obs.HISTOGRAM_SUFFIXES)


def cfg_of(**platform):
    v = copy.deepcopy(BASE)
    v["platform"] = platform
    return parse(v, stack="t")


def args_of(cfg):
    return platform_args(cfg, stack="t")


def all_expressions(cfg) -> list[tuple[str, str]]:
    """(where, expr) of every dashboard target, variable query and rule."""
    out = []
    for d in obs.dashboards():
        for p in d.panels:
            for t in p["targets"]:
                out.append((f"{d.uid}/{p['title']}/{t['refId']}", t["expr"]))
        for v in d.variables:
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]["query"])
                assert m, f"{d.uid}: variable {v['name']} is not a label_values() query"
                out.append((f"{d.uid}/${v['name']}", m.group(1)))
    for g in obs.rule_groups(args_of(cfg)):
        for r in g["rules"]:
            out.append((f"{g['name']}/{r['alert']}", r["expr"]))
    return out


@pytest.fixture(scope="module")
def prod_like():
    return cfg_of()  # p5 pools with EFA: the KV-over-TCP rule is in


def test_every_expression_parses_and_names_only_exported_metrics(prod_like):
    used: set[str] = set()
    exprs = all_expressions(prod_like)
    assert len(exprs) > 60
    for where, expr in exprs:
        names = metric_names(expr)  # raises on a syntax error
        assert names, f"{where}: no metric in {expr!r}"
        unknown = sorted(n for n in names if not exported(n))
        assert not unknown, f"{where}: {unknown} is exported by nothing the stack runs (add its source to METRIC_SOURCES only after reading it)"
        used |= names
    # No stale entry either: every listed metric is used, so the table stays the list of what the pack reads.
    base = {n for n in used if n in obs.METRIC_SOURCES} | {
        n[: -len(s)] for n in used for s in obs.HISTOGRAM_SUFFIXES if n.endswith(s) and n[: -len(s)] in obs.METRIC_SOURCES
    }
    assert set(obs.METRIC_SOURCES) == base, sorted(set(obs.METRIC_SOURCES) - base)


def test_a_typo_in_a_metric_name_is_caught():
    assert not exported("vllm:time_to_first_token")
    assert not exported("vllm:nixl_bytes_transferred_total")  # a histogram, not a counter
    with pytest.raises(Exception):
        promql("sum by (pod (rate(x[5m]))")


def test_every_metric_source_names_a_versioned_upstream():
    for name, source in obs.METRIC_SOURCES.items():
        assert re.search(r"v?\d+\.\d+|efa_exporter\.py|dcp-metrics-included\.csv", source), f"{name}: {source}"


# --- dashboards ------------------------------------------------------------------------------------------------------
def test_dashboards_are_valid_grafana_json():
    uids = set()
    for d in obs.dashboards():
        cm = obs.dashboard_configmap(d, "monitoring")
        ((key, text),) = cm["data"].items()
        assert key == f"{d.uid}.json"
        j = json.loads(text)
        for field, kind in (("uid", str), ("title", str), ("panels", list), ("templating", dict), ("schemaVersion", int), ("time", dict)):
            assert isinstance(j[field], kind), f"{d.uid}: {field}"
        assert len(j["uid"]) <= 40 and j["uid"] not in uids
        uids.add(j["uid"])
        names = {v["name"] for v in j["templating"]["list"]}
        assert "datasource" in names
        ids, cells = set(), set()
        for p in j["panels"]:
            assert p["type"] in ("timeseries", "stat", "table") and p["title"]
            assert p["id"] not in ids
            ids.add(p["id"])
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{d.uid}: panel {p['title']} overlaps another"
                    cells.add((x, y))
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(refs) == len(set(refs))
            for t in p["targets"]:
                for var in re.findall(r"\$(\w+)", t["expr"]):
                    assert var in names or var.startswith("__"), f"{d.uid}/{p['title']}: ${var} is not a variable"


def test_dashboards_reach_grafana_through_its_sidecar():
    for d in obs.dashboards():
        meta = obs.dashboard_configmap(d, pv.MONITORING_NAMESPACE)["metadata"]
        # kube-prometheus-stack 88.5.3: sidecar.dashboards label grafana_dashboard, labelValue "1", every namespace.
        assert meta["labels"][pv.GRAFANA_DASHBOARD_LABEL] == "1"
        assert meta["annotations"][pv.GRAFANA_FOLDER_ANNOTATION] == obs.FOLDER
    kps = {s.key: s.values for s in addon_specs(args_of(cfg_of()))}["kube-prometheus-stack"]
    assert kps["grafana"]["sidecar"]["dashboards"]["folderAnnotation"] == pv.GRAFANA_FOLDER_ANNOTATION


def test_the_pack_covers_what_the_issue_asks_for():
    titles = {d.uid: {p["title"] for p in d.panels} for d in obs.dashboards()}
    assert {"Time to first token", "Inter-token latency", "Requests waiting (queue)", "KV cache use", "Prefix cache hit rate"} <= titles["disagg-engines"]
    assert {"KV bytes transferred", "Transfer time", "Failures"} <= titles["disagg-kv-transfer"]
    assert {"GPU utilization per GPU", "GPU utilization per pod"} <= titles["disagg-gpus"]
    assert "EFA bytes per second per node" in titles["disagg-efa"]
    assert titles["disagg-router"]


# --- rules -----------------------------------------------------------------------------------------------------------
def test_rules_are_well_formed(prod_like):
    alerts = {}
    for g in obs.rule_groups(args_of(prod_like)):
        for r in g["rules"]:
            assert r["labels"]["severity"] in ("critical", "warning")
            assert r["annotations"]["summary"] and r["annotations"]["description"]
            promql_parser.parse_duration(r["for"]) if r["for"] != "0m" else None
            assert r["alert"] not in alerts
            alerts[r["alert"]] = r
    for wanted in ("GpuXidError", "KvTransferFailures", "KvTransferNotOnEfa", "TtftBudgetBurnFast", "ItlBudgetBurnSlow", "ServingPodsPending", "GpuNodeNotReady"):
        assert wanted in alerts


def test_slo_burn_reads_the_configured_bucket():
    cfg = cfg_of(monitoring={"slo": {"ttftSeconds": 1.0, "itlSeconds": 0.05, "target": 0.995}})
    slo = {r["alert"]: r["expr"] for g in obs.rule_groups(args_of(cfg)) for r in g["rules"] if g["name"] == "disagg.slo"}
    assert 'le="1.0"' in slo["TtftBudgetBurnFast"] and 'le="0.05"' in slo["ItlBudgetBurnFast"]
    assert "> 0.072" in slo["TtftBudgetBurnFast"]  # 14.4 x 0.5% budget


def test_an_slo_between_buckets_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"platform\.monitoring\.slo\.ttftSeconds.*2\.0.*bucket"):
        cfg_of(monitoring={"slo": {"ttftSeconds": 2.0}})


def test_tcp_fallback_rule_only_where_kv_moves_over_efa():
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["instanceType"] = "g6e.xlarge"
    v["serving"] = {"model": {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}, "prefill": {"tensorParallel": 1}, "decode": {"tensorParallel": 1}}
    cfg = parse(v, stack="t")
    names = {r["alert"] for g in obs.rule_groups(args_of(cfg)) for r in g["rules"]}
    assert "KvTransferNotOnEfa" not in names and "KvTransferFailures" in names


# --- scrape configs --------------------------------------------------------------------------------------------------
def test_controllers_and_dcgm_are_scraped_on_their_real_ports():
    cfg = cfg_of(workloadApi="grove", lws={"enabled": True})
    enabled = {s.key for s in addon_specs(args_of(cfg))}
    objs = {o.key: o for o in obs.observability_objects(args_of(cfg), enabled, addon_namespaces())}
    ports = {k: [e["port"] for e in o.manifest["spec"]["endpoints"]] for k, o in objs.items() if o.manifest["kind"] == "ServiceMonitor"}
    assert ports == {
        "monitor-dcgm": ["gpu-metrics"],
        "monitor-kai": ["http-metrics", "metrics"],
        "monitor-grove": ["metrics"],
        "monitor-lws": ["https"],
    }
    assert objs["monitor-dcgm"].manifest["spec"]["endpoints"][0]["honorLabels"] is True
    assert objs["lws-metrics-service"].manifest["spec"]["ports"][0]["targetPort"] == 8443
    assert objs["monitor-lws"].after == ("lws-metrics-service",)
    assert all(o.release == "kube-prometheus-stack" for k, o in objs.items() if k.startswith("monitor-"))


def test_nothing_without_monitoring():
    v = copy.deepcopy(BASE)
    v["platform"] = {"monitoring": {"enabled": False}}
    for role in ("prefill", "decode"):
        v["serving"][role]["autoscaling"] = {"enabled": False}
    cfg = parse(v, stack="t")
    enabled = {s.key for s in addon_specs(args_of(cfg))}
    assert obs.observability_objects(args_of(cfg), enabled, addon_namespaces()) == []
    assert obs.dashboard_titles(args_of(cfg)) == []


def test_amp_remote_write_signs_with_the_default_chain_and_shortens_local_retention():
    cfg = cfg_of(monitoring={"amp": {"enabled": True}})
    kps = pv.kube_prometheus_stack_values(args_of(cfg), remote_write_url="https://aps/api/v1/remote_write")
    spec = kps["prometheus"]["prometheusSpec"]
    assert spec["remoteWrite"] == [{"url": "https://aps/api/v1/remote_write", "sigv4": {"region": "us-east-1"}}]
    assert spec["retention"] == "6h"
    assert "remoteWrite" not in pv.kube_prometheus_stack_values(args_of(cfg_of()))["prometheus"]["prometheusSpec"]


# --- the EFA counter exporter ----------------------------------------------------------------------------------------
def _device(root, name: str, driver: str, counters: dict[str, str]) -> None:
    dev = root / name
    (dev / "device").mkdir(parents=True)
    drivers = root.parent / "drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    os.symlink(drivers, dev / "device" / "driver")
    hw = dev / "ports" / "1" / "hw_counters"
    hw.mkdir(parents=True)
    for k, v in counters.items():
        (hw / k).write_text(v + "\n")


def test_efa_exporter_reads_efa_port_counters_only(tmp_path):
    root = tmp_path / "class" / "infiniband"
    root.mkdir(parents=True)
    _device(root, "rdmap16s27", "efa", {"tx_bytes": "1000", "rdma_read_bytes": "77", "lifespan": "12"})
    _device(root, "mlx5_0", "mlx5_core", {"out_of_buffer": "3"})
    text = efa_exporter.collect(str(root))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert sorted(lines) == sorted([
        'disagg_efa_port_hw_counter_total{device="rdmap16s27",port="1",counter="rdma_read_bytes"} 77',
        'disagg_efa_port_hw_counter_total{device="rdmap16s27",port="1",counter="tx_bytes"} 1000',
    ])
    assert "# TYPE disagg_efa_port_hw_counter_total counter" in text
    out = tmp_path / "out"
    out.mkdir()
    efa_exporter.write(str(root), str(out))
    assert (out / "efa.prom").read_text() == text and not (out / "efa.prom.tmp").exists()


def test_efa_exporter_without_devices_writes_an_empty_family(tmp_path):
    assert [line for line in efa_exporter.collect(str(tmp_path / "none")).splitlines() if not line.startswith("#")] == []


def test_efa_sidecar_runs_this_very_exporter():
    cmd = efa_exporter.sidecar_command("/host/sys/class/infiniband", pv.EFA_TEXTFILE_DIR)
    assert cmd[:3] == ["python3", "-u", "-c"] and "def collect(root: str)" in cmd[3]
    assert cmd[4:] == ["/host/sys/class/infiniband", pv.EFA_TEXTFILE_DIR]
    ne = pv.kube_prometheus_stack_values(args_of(cfg_of()))["prometheus-node-exporter"]
    assert f"--collector.textfile.directory={pv.EFA_TEXTFILE_DIR}" in ne["extraArgs"]
    assert ne["sidecars"][0]["command"] == cmd
    assert ne["sidecarVolumeMount"][0]["mountPath"] == pv.EFA_TEXTFILE_DIR


# --- TensorRT-LLM halves of the SLO and KV rules -------------------------------------------------------------------
def _alerts(cfg) -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in obs.rule_groups(args_of(cfg)) for r in g["rules"]}


def test_slo_burn_covers_both_engines_per_role(prod_like):
    a = _alerts(prod_like)
    ttft, itl = a["TtftBudgetBurnFast"], a["ItlBudgetBurnSlow"]
    # Each engine's half reads its own histogram at the same bound, grouped per role; TensorRT-LLM's not per model.
    assert 'vllm:time_to_first_token_seconds_bucket{namespace="' in ttft and 'trtllm_time_to_first_token_seconds_bucket{namespace="' in ttft
    assert "vllm:inter_token_latency_seconds_bucket" in itl and "trtllm_time_per_output_token_seconds_bucket" in itl
    assert f"sum by (namespace, {obs.ROLE}) (rate(trtllm_time_to_first_token_seconds_bucket" in ttft
    assert f"sum by (namespace, model_name, {obs.ROLE}) (rate(vllm:time_to_first_token_seconds_bucket" in ttft
    # One half firing is enough: the halves are joined by `or`, each a long- and a short-window burn.
    left, right = ttft.split(") or (")
    assert left.count(" and ") == 1 and right.count(" and ") == 1
    assert "trtllm" not in left and "vllm:" not in right


def test_trtllm_kv_off_efa_rule_reads_generation_servers_and_any_efa_movement(prod_like):
    expr = _alerts(prod_like)["KvTransferNotOnEfa"]
    vllm_half, trtllm_half = expr.split(") or (")
    assert "vllm:nixl_bytes_transferred_sum" in vllm_half and "trtllm" not in vllm_half
    ns = args_of(prod_like).namespace
    assert f'rate(trtllm_request_success_total{{namespace="{ns}", {obs.ROLE}="decode"}}[10m])' in trtllm_half
    # "does not move at all": a short prompt's KV is below any volume threshold at low load.
    assert trtllm_half.rstrip(")").endswith("> 0") and "rdma_write_bytes" in trtllm_half
    promql(expr)


def test_an_slo_bound_missing_from_one_engines_buckets_is_refused_naming_that_histogram(monkeypatch):
    import stacks.validation as validation

    trimmed = obs.SloSeries("tensorrt-llm", "trtllm_time_to_first_token_seconds", tuple(b for b in obs.TRTLLM_TTFT_BUCKETS if b != 0.5),
                            "trtllm_time_per_output_token_seconds", obs.TRTLLM_TPOT_BUCKETS, "namespace")
    monkeypatch.setattr(validation, "SLO_SERIES", (obs.SLO_SERIES[0], trimmed))
    with pytest.raises(ConfigError) as e:
        cfg_of(monitoring={"slo": {"ttftSeconds": 0.5}})
    msg = str(e.value)
    assert "platform.monitoring.slo.ttftSeconds" in msg and "trtllm_time_to_first_token_seconds" in msg
    assert "vllm:time_to_first_token_seconds" not in msg.split("Fix")[0]
    assert "0.5," not in msg.split("use one of")[1]  # the fix lists only bounds every engine has
