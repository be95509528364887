"""The observability pack: Grafana dashboards as code, PrometheusRules, and the scrape configs of the controllers.

Everything here is plain data (Kubernetes manifests), created by the Platform component when monitoring is on:

- dashboards: one ConfigMap each, labelled for Grafana's dashboard sidecar (platform_values.GRAFANA_DASHBOARD_LABEL)
  and filed in the `disagg` folder;
- PrometheusRules: GPU XID errors and row-remap failures, KV transfer failures and TCP fallback, TTFT/ITL SLO burn,
  serving pods stuck Pending, nodes NotReady, degraded controllers;
- ServiceMonitors: DCGM (the stack's own, see platform_values.gpu_operator_values), KAI's scheduler and queue
  controller, Grove, and LWS through a metrics Service of our own (its chart adds one only with a ServiceMonitor that
  would tie the LWS release to kube-prometheus-stack's CRDs).

Every metric name used is one a component of the stack exports; `METRIC_SOURCES` says which and where it is defined,
and the tests parse every expression (promql-parser) and check each metric name against that table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.builders import platform_values as pv
from components.builders.efa_exporter import METRIC as EFA_METRIC
from components.builders.platform_args import PlatformArgs
from components.builders.platform_objects import PlatformObject

FOLDER = "disagg"
# The role of an engine or router series. Serving's ServiceMonitor copies the pods' Service label
# app.kubernetes.io/component onto every series (targetLabels), which the Prometheus Operator sanitizes to this
# (components/builders/serving/policies.py service_monitor).
ROLE = "app_kubernetes_io_component"

_VLLM = "vllm-project/vllm v0.30.0 (the pinned image)"
_NIXL = f"{_VLLM} vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py NixlPromMetrics"
_VLLM_LOGGERS = f"{_VLLM} vllm/v1/metrics/loggers.py PrometheusStatLogger"
_ROUTER = "vllm-router 0.1.17 (PyPI wheel, the router the stack runs): src/metrics.rs RouterMetrics; names checked in the wheel's vllm_router_rs.abi3.so"
_TRTLLM = "NVIDIA/TensorRT-LLM 1.2.1 (the pinned image) tensorrt_llm/metrics/collector.py MetricsCollector (prefix trtllm_)"
_DCGM = (
    "NVIDIA/dcgm-exporter etc/dcp-metrics-included.csv, the collectors file the GPU Operator v26.7.0 sets "
    "(assets/state-dcgm-exporter/0800_daemonset.yaml DCGM_EXPORTER_COLLECTORS); read at the newest commit available "
    "offline (unchanged since 2025-12-04), the operator's 4.6.0-4.8.3 tag itself could not be read"
)
_KSM = "kubernetes/kube-state-metrics v2.20.0 (kube-state-metrics chart 8.4.0 of kube-prometheus-stack 88.5.3) internal/store"
_KAI = "kai-scheduler/KAI-Scheduler v0.17.0 (metrics namespace `kai`, pkg/common/constants DefaultMetricsNamespace)"
_CR = "kubernetes-sigs/controller-runtime v0.23.3 (Grove, KAI) / v0.24.1 (LWS)"
_EFA = "components/builders/efa_exporter.py (the node-exporter sidecar): one series per EFA port hw counter of the efa kernel driver"
_NODE_EXPORTER = "prometheus/node_exporter v1.12.1 collector/infiniband_linux.go (EFA devices report state and rate)"

# metric name -> where it is exported. Histograms are listed by their base name (_bucket/_sum/_count are allowed),
# counters by their exposed name (prometheus_client and client_golang add `_total`).
METRIC_SOURCES: dict[str, str] = {
    "vllm:num_requests_running": _VLLM_LOGGERS,
    "vllm:num_requests_waiting": _VLLM_LOGGERS,
    "vllm:kv_cache_usage_perc": _VLLM_LOGGERS,
    "vllm:prefix_cache_queries_total": _VLLM_LOGGERS,
    "vllm:prefix_cache_hits_total": _VLLM_LOGGERS,
    "vllm:num_preemptions_total": _VLLM_LOGGERS,
    "vllm:prompt_tokens_total": _VLLM_LOGGERS,
    "vllm:generation_tokens_total": _VLLM_LOGGERS,
    "vllm:request_success_total": _VLLM_LOGGERS,
    "vllm:time_to_first_token_seconds": _VLLM_LOGGERS,
    "vllm:inter_token_latency_seconds": _VLLM_LOGGERS,
    "vllm:e2e_request_latency_seconds": _VLLM_LOGGERS,
    "vllm:request_queue_time_seconds": _VLLM_LOGGERS,
    "vllm:nixl_xfer_time_seconds": _NIXL,
    "vllm:nixl_post_time_seconds": _NIXL,
    "vllm:nixl_bytes_transferred": _NIXL,
    "vllm:nixl_num_descriptors": _NIXL,
    "vllm:nixl_num_failed_transfers_total": _NIXL,
    "vllm:nixl_num_failed_notifications_total": _NIXL,
    "vllm:nixl_num_kv_expired_reqs_total": _NIXL,
    "vllm_router_requests_total": _ROUTER,
    "vllm_router_request_duration_seconds": _ROUTER,
    "vllm_router_request_errors_total": _ROUTER,
    "vllm_router_retries_total": _ROUTER,
    "vllm_router_pd_prefill_errors_total": _ROUTER,
    "vllm_router_pd_decode_errors_total": _ROUTER,
    "vllm_router_worker_health": _ROUTER,
    "vllm_router_running_requests": _ROUTER,
    "vllm_router_cb_state": _ROUTER,
    # serving.engine.kind tensorrt-llm: what trtllm-serve 1.2.1 exports on /prometheus/metrics with return_perf_metrics
    # (the five request metrics of NVIDIA/TensorRT-LLM#5785; the KV-cache and queue gauges came in 1.3, #11243, #12545).
    "trtllm_request_success_total": _TRTLLM,
    "trtllm_e2e_request_latency_seconds": _TRTLLM,
    "trtllm_time_to_first_token_seconds": _TRTLLM,
    "trtllm_time_per_output_token_seconds": _TRTLLM,
    "trtllm_request_queue_time_seconds": _TRTLLM,
    "DCGM_FI_DEV_GPU_UTIL": _DCGM,
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": _DCGM,
    "DCGM_FI_PROF_DRAM_ACTIVE": _DCGM,
    "DCGM_FI_DEV_FB_USED": _DCGM,
    "DCGM_FI_DEV_FB_FREE": _DCGM,
    "DCGM_FI_DEV_POWER_USAGE": _DCGM,
    "DCGM_FI_DEV_GPU_TEMP": _DCGM,
    "DCGM_FI_DEV_XID_ERRORS": _DCGM,
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": _DCGM,
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": _DCGM,
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": _DCGM,
    EFA_METRIC: _EFA,
    "node_infiniband_state_id": _NODE_EXPORTER,
    "kube_pod_info": f"{_KSM}/pod.go",
    "kube_pod_status_phase": f"{_KSM}/pod.go",
    "kube_node_status_condition": f"{_KSM}/node.go",
    "kube_node_status_capacity": f"{_KSM}/node.go",
    "kube_deployment_spec_replicas": f"{_KSM}/deployment.go",
    "kube_deployment_status_replicas_available": f"{_KSM}/deployment.go",
    "kai_queue_allocated_gpus": f"{_KAI} pkg/queuecontroller/metrics/metrics.go",
    "kai_queue_deserved_gpus": f"{_KAI} pkg/queuecontroller/metrics/metrics.go",
    "kai_e2e_scheduling_latency_milliseconds": f"{_KAI} pkg/scheduler/metrics/metrics.go",
    "controller_runtime_reconcile_errors_total": f"{_CR} pkg/internal/controller/metrics/metrics.go",
    "controller_runtime_webhook_requests_total": f"{_CR} pkg/webhook/internal/metrics/metrics.go",
    "workqueue_depth": f"{_CR} pkg/metrics/workqueue.go",
    "leader_election_master_status": f"{_CR} pkg/metrics/leaderelection.go",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Default bucket bounds of vLLM's latency histograms (vllm v0.30.0 vllm/v1/metrics/buckets.py
# TIME_TO_FIRST_TOKEN_BUCKETS, INTER_TOKEN_LATENCY_BUCKETS): an SLO objective must be one of them.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
# TensorRT-LLM's (tensorrt_llm/metrics/collector.py MetricsCollector: histogram_time_to_first_token and
# histogram_time_per_output_token, "Adapted from" vLLM's): the same bounds in the oldest and the newest version of that
# file the code index holds (before and after 1.2.1; 48 versions). Written out, not aliased, so a bump that changes
# one engine's buckets is caught by the SLO rule (stacks/validation.py slo_on_bucket_bound) rather than hidden.
TRTLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TRTLLM_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)


@dataclass(frozen=True)
class SloSeries:
    """One engine's latency histograms, as the SLO burn rules read them. The pack carries the rules of every engine
    (like its dashboards), so switching `serving.engine.kind` changes only the serving objects; an engine's half of a
    rule reads no series on a stack of the other engine and never fires there."""

    engine: str
    ttft: str
    ttft_buckets: tuple[float, ...]
    itl: str  # vLLM: inter-token latency, one observation per token gap; TensorRT-LLM: time per output token, per request
    itl_buckets: tuple[float, ...]
    by: str  # the labels a burn rate is computed per


SLO_SERIES = (
    SloSeries("vllm", "vllm:time_to_first_token_seconds", TTFT_BUCKETS, "vllm:inter_token_latency_seconds", ITL_BUCKETS, f"namespace, model_name, {ROLE}"),
    # Per role only: 1.2.1's servers label their series with a fixed model_name, not the served model.
    SloSeries("tensorrt-llm", "trtllm_time_to_first_token_seconds", TRTLLM_TTFT_BUCKETS, "trtllm_time_per_output_token_seconds", TRTLLM_TPOT_BUCKETS, f"namespace, {ROLE}"),
)

_DS = {"type": "prometheus", "uid": "${datasource}"}


def le(bound: float) -> str:
    """A bucket bound as the exporters write `le` (Go's/prometheus_client's float formatting: 2.5, 1.0, 0.1)."""
    return repr(float(bound))


# --- dashboards -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[dict[str, Any], ...]
    variables: tuple[dict[str, Any], ...]


def _var_datasource() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0}


def _var(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": _DS,
        "query": {"query": query, "refId": f"var-{name}"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": multi,
        "allValue": ".*",
        "current": {},
        "hide": 0,
        "sort": 1,
    }


def _ts(title: str, targets: list[tuple[str, str]], unit: str, *, description: str = "", stack: bool = False, max_: float | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "stacking": {"mode": "normal" if stack else "none"}}}
    if max_ is not None:
        defaults["max"] = max_
        defaults["min"] = 0
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(targets)],
    }


def _layout(panels: list[dict[str, Any]], per_row: int = 2) -> tuple[dict[str, Any], ...]:
    """Ids and a grid: `per_row` panels of equal width per row, 8 units high."""
    w = 24 // per_row
    out = []
    for i, p in enumerate(panels):
        out.append({**p, "id": i + 1, "gridPos": {"x": (i % per_row) * w, "y": (i // per_row) * 8, "w": w, "h": 8}})
    return tuple(out)


def _sel(**matchers: str) -> str:
    return "{" + ", ".join(f'{k}=~"{v}"' for k, v in matchers.items()) + "}"


def _quantiles(metric: str, sel: str, by: str, qs=(0.5, 0.99)) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{sel}[$__rate_interval])))", f"p{int(q * 100)} {{{{{by}}}}}")
        for q in qs
    ]


def engines_dashboard() -> Dashboard:
    sel = _sel(namespace="$namespace", **{ROLE: "$role"}, pod="$pod")
    by = f"{ROLE}"
    panels = [
        _ts("Time to first token", _quantiles("vllm:time_to_first_token_seconds", sel, by, (0.5, 0.9, 0.99)), "s",
            description="Per role. Prefill engines see the prompt; a decode engine's TTFT is its queue, the KV pull and the first step."),
        _ts("Inter-token latency", _quantiles("vllm:inter_token_latency_seconds", sel, by, (0.5, 0.9, 0.99)), "s"),
        _ts("End-to-end request latency", _quantiles("vllm:e2e_request_latency_seconds", sel, by), "s"),
        _ts("Queue time", _quantiles("vllm:request_queue_time_seconds", sel, by), "s"),
        _ts("Requests waiting (queue)", [(f"sum by (pod) (vllm:num_requests_waiting{sel})", "{{pod}}")], "short"),
        _ts("Requests running", [(f"sum by (pod) (vllm:num_requests_running{sel})", "{{pod}}")], "short"),
        _ts("KV cache use", [(f"max by (pod) (vllm:kv_cache_usage_perc{sel})", "{{pod}}")], "percentunit", max_=1),
        _ts(
            "Prefix cache hit rate",
            [(f"sum by (pod) (rate(vllm:prefix_cache_hits_total{sel}[$__rate_interval])) / sum by (pod) (rate(vllm:prefix_cache_queries_total{sel}[$__rate_interval]))", "{{pod}}")],
            "percentunit",
            max_=1,
            description="Share of prompt tokens served from the prefix cache.",
        ),
        _ts(
            "Tokens per second",
            [
                (f"sum by ({by}) (rate(vllm:prompt_tokens_total{sel}[$__rate_interval]))", "prompt {{" + by + "}}"),
                (f"sum by ({by}) (rate(vllm:generation_tokens_total{sel}[$__rate_interval]))", "generated {{" + by + "}}"),
            ],
            "short",
        ),
        _ts(
            "Finished requests and preemptions",
            [
                (f"sum by (finished_reason) (rate(vllm:request_success_total{sel}[$__rate_interval]))", "{{finished_reason}}"),
                (f"sum (rate(vllm:num_preemptions_total{sel}[$__rate_interval]))", "preemptions"),
            ],
            "reqps",
        ),
    ]
    return Dashboard(
        "disagg-engines",
        "disagg / vLLM engines",
        "Prefill and decode engines: latency, queues, KV cache and prefix cache.",
        _layout(panels),
        (
            _var_datasource(),
            _var("namespace", "Namespace", "label_values(vllm:num_requests_running, namespace)"),
            _var("role", "Role", f"label_values(vllm:num_requests_running{{namespace=~\"$namespace\"}}, {ROLE})"),
            _var("pod", "Pod", f"label_values(vllm:num_requests_running{{namespace=~\"$namespace\", {ROLE}=~\"$role\"}}, pod)"),
        ),
    )


def kv_transfer_dashboard() -> Dashboard:
    sel = _sel(namespace="$namespace", pod="$pod")
    panels = [
        _ts("KV bytes transferred", [(f"sum by (pod) (rate(vllm:nixl_bytes_transferred_sum{sel}[$__rate_interval]))", "{{pod}}")], "Bps",
            description="NIXL KV cache reads per engine (recorded by the side that pulls, the decode engine)."),
        _ts(
            "Effective transfer throughput",
            [(f"sum by (pod) (rate(vllm:nixl_bytes_transferred_sum{sel}[$__rate_interval])) / sum by (pod) (rate(vllm:nixl_xfer_time_seconds_sum{sel}[$__rate_interval]))", "{{pod}}")],
            "Bps",
            description="Bytes per second of transfer time. Over EFA this is tens of GB/s; a few hundred MB/s means TCP.",
        ),
        _ts("Transfer time", _quantiles("vllm:nixl_xfer_time_seconds", sel, "pod"), "s"),
        _ts("Post time", _quantiles("vllm:nixl_post_time_seconds", sel, "pod"), "s"),
        _ts("Transfers per second", [(f"sum by (pod) (rate(vllm:nixl_xfer_time_seconds_count{sel}[$__rate_interval]))", "{{pod}}")], "ops"),
        _ts("Descriptors per transfer", _quantiles("vllm:nixl_num_descriptors", sel, "pod", (0.5,)), "short"),
        _ts(
            "Failures",
            [
                (f"sum by (pod) (increase(vllm:nixl_num_failed_transfers_total{sel}[$__rate_interval]))", "failed transfers {{pod}}"),
                (f"sum by (pod) (increase(vllm:nixl_num_failed_notifications_total{sel}[$__rate_interval]))", "failed notifications {{pod}}"),
                (f"sum by (pod) (increase(vllm:nixl_num_kv_expired_reqs_total{sel}[$__rate_interval]))", "expired KV (prefill) {{pod}}"),
            ],
            "short",
        ),
    ]
    return Dashboard(
        "disagg-kv-transfer",
        "disagg / NIXL KV transfer",
        "KV cache moved from prefill to decode over NIXL: volume, speed, failures.",
        _layout(panels),
        (
            _var_datasource(),
            _var("namespace", "Namespace", "label_values(vllm:nixl_xfer_time_seconds_count, namespace)"),
            _var("pod", "Pod", 'label_values(vllm:nixl_xfer_time_seconds_count{namespace=~"$namespace"}, pod)'),
        ),
    )


def trtllm_engines_dashboard() -> Dashboard:
    """serving.engine.kind tensorrt-llm: context (prefill) and generation (decode) servers. Always installed, so
    switching the engine changes only the serving objects; it shows no data for a vLLM stack."""
    sel = _sel(namespace="$namespace", **{ROLE: "$role"}, pod="$pod")
    by = f"{ROLE}"
    panels = [
        _ts("Time to first token", _quantiles("trtllm_time_to_first_token_seconds", sel, by, (0.5, 0.9, 0.99)), "s",
            description="Per role: on context servers the prompt's prefill, on generation servers the KV arrival and the first step."),
        _ts("Time per output token", _quantiles("trtllm_time_per_output_token_seconds", sel, by, (0.5, 0.9, 0.99)), "s",
            description="Generation servers scale on its mean (KEDA)."),
        _ts("End-to-end request latency", _quantiles("trtllm_e2e_request_latency_seconds", sel, by), "s"),
        _ts("Queue time", _quantiles("trtllm_request_queue_time_seconds", sel, by), "s",
            description="Context servers scale on its mean (KEDA)."),
        _ts(
            "Finished requests",
            [(f"sum by ({by}, finished_reason) (rate(trtllm_request_success_total{sel}[$__rate_interval]))", "{{" + by + "}} {{finished_reason}}")],
            "reqps",
        ),
    ]
    return Dashboard(
        "disagg-trtllm-engines",
        "disagg / TensorRT-LLM servers",
        "TensorRT-LLM context and generation servers: latency, queue time and finished requests.",
        _layout(panels),
        (
            _var_datasource(),
            _var("namespace", "Namespace", "label_values(trtllm_request_success_total, namespace)"),
            _var("role", "Role", f"label_values(trtllm_request_success_total{{namespace=~\"$namespace\"}}, {ROLE})"),
            _var("pod", "Pod", f"label_values(trtllm_request_success_total{{namespace=~\"$namespace\", {ROLE}=~\"$role\"}}, pod)"),
        ),
    )


def router_dashboard() -> Dashboard:
    sel = _sel(namespace="$namespace")
    panels = [
        _ts("Requests per second by route", [(f"sum by (route) (rate(vllm_router_requests_total{sel}[$__rate_interval]))", "{{route}}")], "reqps"),
        _ts("Request duration", _quantiles("vllm_router_request_duration_seconds", sel, "route"), "s"),
        _ts("Errors by type", [(f"sum by (error_type) (rate(vllm_router_request_errors_total{sel}[$__rate_interval]))", "{{error_type}}")], "reqps"),
        _ts(
            "Prefill / decode errors by worker",
            [
                (f"sum by (worker) (rate(vllm_router_pd_prefill_errors_total{sel}[$__rate_interval]))", "prefill {{worker}}"),
                (f"sum by (worker) (rate(vllm_router_pd_decode_errors_total{sel}[$__rate_interval]))", "decode {{worker}}"),
            ],
            "reqps",
        ),
        _ts("Retries", [(f"sum by (route) (rate(vllm_router_retries_total{sel}[$__rate_interval]))", "{{route}}")], "reqps"),
        _ts("Running requests per worker", [(f"max by (worker) (vllm_router_running_requests{sel})", "{{worker}}")], "short"),
        _ts("Worker health (1 = healthy)", [(f"min by (worker) (vllm_router_worker_health{sel})", "{{worker}}")], "short", max_=1),
        _ts("Circuit breaker (0 closed, 1 open, 2 half-open)", [(f"max by (worker) (vllm_router_cb_state{sel})", "{{worker}}")], "short"),
    ]
    return Dashboard(
        "disagg-router",
        "disagg / P/D router",
        "vllm-router: traffic, latency, errors and the health of the prefill/decode workers it routes to.",
        _layout(panels),
        (_var_datasource(), _var("namespace", "Namespace", "label_values(vllm_router_requests_total, namespace)")),
    )


def gpu_dashboard() -> Dashboard:
    node = _sel(node="$node")
    pod = _sel(namespace="$namespace", pod="$pod")
    panels = [
        _ts("GPU utilization per GPU", [(f"avg by (node, gpu) (DCGM_FI_DEV_GPU_UTIL{node})", "{{node}} gpu {{gpu}}")], "percent", max_=100),
        _ts("Tensor pipe active per GPU", [(f"avg by (node, gpu) (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{node})", "{{node}} gpu {{gpu}}")], "percentunit", max_=1),
        _ts("Memory interface active per GPU", [(f"avg by (node, gpu) (DCGM_FI_PROF_DRAM_ACTIVE{node})", "{{node}} gpu {{gpu}}")], "percentunit", max_=1),
        _ts(
            "Framebuffer used per GPU",
            [(f"max by (node, gpu) (DCGM_FI_DEV_FB_USED{node}) / (max by (node, gpu) (DCGM_FI_DEV_FB_USED{node}) + max by (node, gpu) (DCGM_FI_DEV_FB_FREE{node}))", "{{node}} gpu {{gpu}}")],
            "percentunit",
            max_=1,
        ),
        _ts("GPU utilization per pod", [(f"avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{pod})", "{{namespace}}/{{pod}}")], "percent", max_=100,
            description="GPUs attributed to the pod that holds them (DCGM's Kubernetes mapping, honorLabels on the scrape)."),
        _ts("Framebuffer used per pod", [(f"sum by (namespace, pod) (DCGM_FI_DEV_FB_USED{pod})", "{{namespace}}/{{pod}}")], "decmbytes"),
        _ts("Power per GPU", [(f"max by (node, gpu) (DCGM_FI_DEV_POWER_USAGE{node})", "{{node}} gpu {{gpu}}")], "watt"),
        _ts("Temperature per GPU", [(f"max by (node, gpu) (DCGM_FI_DEV_GPU_TEMP{node})", "{{node}} gpu {{gpu}}")], "celsius"),
        _ts("NVLink bandwidth per node", [(f"sum by (node) (rate(DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{node}[$__rate_interval]))", "{{node}}")], "short"),
        _ts("Last XID error (0 = none)", [(f"max by (node, gpu) (DCGM_FI_DEV_XID_ERRORS{node})", "{{node}} gpu {{gpu}}")], "short"),
    ]
    return Dashboard(
        "disagg-gpus",
        "disagg / GPUs (DCGM)",
        "Per GPU and per pod: utilization, tensor and memory activity, memory, power, NVLink, XID errors.",
        _layout(panels),
        (
            _var_datasource(),
            _var("node", "Node", "label_values(DCGM_FI_DEV_GPU_UTIL, node)"),
            _var("namespace", "Namespace", "label_values(DCGM_FI_DEV_GPU_UTIL, namespace)"),
            _var("pod", "Pod", 'label_values(DCGM_FI_DEV_GPU_UTIL{namespace=~"$namespace"}, pod)'),
        ),
    )


def _efa(counter: str, node: str = "$node") -> str:
    return f'{EFA_METRIC}{{node=~"{node}", counter="{counter}"}}'


def efa_dashboard() -> Dashboard:
    panels = [
        _ts(
            "EFA bytes per second per node",
            [
                (f"sum by (node) (rate({_efa('tx_bytes')}[$__rate_interval]))", "tx {{node}}"),
                (f"sum by (node) (rate({_efa('rx_bytes')}[$__rate_interval]))", "rx {{node}}"),
            ],
            "Bps",
        ),
        _ts(
            "RDMA read bytes per second per node",
            [
                (f"sum by (node) (rate({_efa('rdma_read_bytes')}[$__rate_interval]))", "read {{node}}"),
                (f"sum by (node) (rate({_efa('rdma_read_resp_bytes')}[$__rate_interval]))", "served {{node}}"),
            ],
            "Bps",
            description="NIXL's LIBFABRIC backend moves KV with RDMA reads: the decode node reads, the prefill node serves.",
        ),
        _ts("Bytes per second per device", [(f"sum by (node, device) (rate({_efa('tx_bytes')}[$__rate_interval]) + rate({_efa('rx_bytes')}[$__rate_interval]))", "{{node}} {{device}}")], "Bps",
            description="Spread over the devices: multi-rail transfers use every EFA interface."),
        _ts(
            "Drops and errors",
            [
                (f"sum by (node) (rate({_efa('rx_drops')}[$__rate_interval]))", "rx drops {{node}}"),
                (f"sum by (node) (rate({_efa('rdma_read_wr_err')}[$__rate_interval]))", "RDMA read errors {{node}}"),
            ],
            "short",
        ),
        _ts("Devices not active", [('count by (node) (node_infiniband_state_id{node=~"$node"} != 4)', "{{node}}")], "short",
            description="Ports not in state 4 (ACTIVE), from node-exporter's infiniband collector."),
    ]
    return Dashboard(
        "disagg-efa",
        "disagg / EFA",
        "Elastic Fabric Adapter counters of the GPU nodes (the efa driver's hw_counters).",
        _layout(panels),
        (_var_datasource(), _var("node", "Node", f"label_values({EFA_METRIC}, node)")),
    )


def controllers_dashboard() -> Dashboard:
    panels = [
        _ts(
            "Serving queue GPUs (KAI)",
            [("sum by (queue_name) (kai_queue_allocated_gpus)", "allocated {{queue_name}}"), ("sum by (queue_name) (kai_queue_deserved_gpus)", "deserved {{queue_name}}")],
            "short",
        ),
        _ts("KAI scheduling cycle", [("max(kai_e2e_scheduling_latency_milliseconds)", "e2e")], "ms"),
        _ts("Pending pods per namespace", [('sum by (namespace) (kube_pod_status_phase{phase="Pending"})', "{{namespace}}")], "short"),
        _ts("Reconcile errors", [("sum by (namespace, controller) (rate(controller_runtime_reconcile_errors_total[$__rate_interval]))", "{{namespace}} {{controller}}")], "ops"),
        _ts("Work queue depth", [("sum by (namespace, name) (workqueue_depth)", "{{namespace}} {{name}}")], "short"),
        _ts("Webhook requests by code", [("sum by (namespace, code) (rate(controller_runtime_webhook_requests_total[$__rate_interval]))", "{{namespace}} {{code}}")], "reqps"),
        _ts("Leader (1 per controller)", [("sum by (namespace, name) (leader_election_master_status)", "{{namespace}} {{name}}")], "short"),
        _ts(
            "Controller replicas available",
            [(f'kube_deployment_status_replicas_available{{namespace=~"{_CONTROLLER_NAMESPACES}"}}', "{{namespace}}/{{deployment}}")],
            "short",
        ),
    ]
    return Dashboard(
        "disagg-controllers",
        "disagg / Scheduling controllers",
        "KAI, LWS and Grove: queue quota, scheduling, reconciles, webhooks, leaders, replicas.",
        _layout(panels),
        (_var_datasource(),),
    )


_CONTROLLER_NAMESPACES = "kai-scheduler|lws-system|grove-system"


def dashboards() -> list[Dashboard]:
    return [engines_dashboard(), kv_transfer_dashboard(), router_dashboard(), gpu_dashboard(), efa_dashboard(), controllers_dashboard(), trtllm_engines_dashboard()]


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["disagg"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": list(d.variables)},
        "annotations": {"list": []},
        "links": [],
        "panels": list(d.panels),
    }


def dashboard_configmap(d: Dashboard, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"dashboard-{d.uid}",
            "namespace": namespace,
            "labels": {pv.GRAFANA_DASHBOARD_LABEL: "1", "app.kubernetes.io/part-of": "disagg", "app.kubernetes.io/managed-by": "pulumi"},
            "annotations": {pv.GRAFANA_FOLDER_ANNOTATION: FOLDER},
        },
        "data": {f"{d.uid}.json": json.dumps(dashboard_json(d), indent=1, sort_keys=True)},
    }


# --- alert rules ------------------------------------------------------------------------------------------------------


def _rule(alert: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


# Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate: page at 14.4x the budget rate over 1h and 5m,
# ticket at 6x over 6h and 30m.
BURN_WINDOWS = (("1h", "5m", 14.4, "critical"), ("6h", "30m", 6.0, "warning"))


def _bad_ratio(metric: str, bound: float, window: str, ns: str, by: str) -> str:
    sel = f'namespace="{ns}"'
    return (
        f"(1 - sum by ({by}) (rate({metric}_bucket{{{sel}, le=\"{le(bound)}\"}}[{window}])) "
        f"/ sum by ({by}) (rate({metric}_count{{{sel}}}[{window}])))"
    )


def _burn_rules(name: str, series: list[tuple[str, str]], bound: float, target: float, ns: str, what: str) -> list[dict[str, Any]]:
    """`series`: (histogram, grouping) per engine; one rule per window pair whose expression is the `or` of the
    engines' halves (each a long- and a short-window burn above the threshold)."""
    budget = round(1 - target, 6)
    out = []
    for long_w, short_w, factor, severity in BURN_WINDOWS:
        threshold = round(factor * budget, 6)
        halves = [
            f"{_bad_ratio(metric, bound, long_w, ns, by)} > {threshold} and {_bad_ratio(metric, bound, short_w, ns, by)} > {threshold}"
            for metric, by in series
        ]
        expr = halves[0] if len(halves) == 1 else " or ".join(f"({h})" for h in halves)
        out.append(
            _rule(
                f"{name}BudgetBurn{'Fast' if severity == 'critical' else 'Slow'}",
                expr,
                "2m" if severity == "critical" else "15m",
                severity,
                f"{what} objective ({le(bound)} s for {target:.2%} of requests) burning {factor}x its error budget",
                f"{{{{ with $labels.model_name }}}}{{{{ . }}}} {{{{ end }}}}({{{{ $labels.{ROLE} }}}}) in {{{{ $labels.namespace }}}}: more than "
                f"{threshold:.2%} of requests over {le(bound)} s in the last {long_w} and {short_w}.",
            )
        )
    return out


# EFA port counters that move when NIXL's LIBFABRIC backend moves bytes: sends and receives, RDMA reads (reader and
# responder) and RDMA writes (writer and target; newer efa drivers, components/builders/efa_exporter.py).
_EFA_KV_COUNTERS = "rx_bytes|tx_bytes|rdma_read_bytes|rdma_read_resp_bytes"
_EFA_ANY_RDMA = "rx_bytes|tx_bytes|rdma_read_bytes|rdma_read_resp_bytes|rdma_write_bytes|rdma_write_recv_bytes"


def _on_node(expr: str) -> str:
    """A per-pod series summed per node (kube-state-metrics' kube_pod_info carries the pod's node)."""
    return f"sum by (node) ({expr} * on (namespace, pod) group_left (node) max by (namespace, pod, node) (kube_pod_info))"


def _vllm_kv_not_on_efa(ns: str) -> str:
    transferred = f'rate(vllm:nixl_bytes_transferred_sum{{namespace="{ns}"}}[10m])'
    return (
        f"({_on_node(transferred)} > 1e6) "
        f'unless on (node) (sum by (node) (rate({EFA_METRIC}{{counter=~"{_EFA_KV_COUNTERS}"}}[10m])) > 1e6)'
    )


def _trtllm_kv_not_on_efa(ns: str) -> str:
    # Every request a generation server finishes pulled its KV from a context server (the orchestrator sends each
    # request to a context server first; no conditional disaggregation is configured), so at 3 requests a minute for
    # 10 minutes some KV moved. EFA counters that stay flat on that node mean it moved by other means. A KV block of a
    # short prompt is a few MB, under the 1 MB/s threshold of the vLLM half at low load: so the criterion here is
    # "does not move at all", never a volume.
    finished = f'rate(trtllm_request_success_total{{namespace="{ns}", {ROLE}="decode"}}[10m])'
    return (
        f"({_on_node(finished)} > 0.05) "
        f'unless on (node) (sum by (node) (rate({EFA_METRIC}{{counter=~"{_EFA_ANY_RDMA}"}}[10m])) > 0)'
    )


def rule_groups(args: PlatformArgs) -> list[dict[str, Any]]:
    ns = args.namespace
    slo = args.monitoring.slo
    gpu = [
        _rule(
            "GpuXidError",
            "max by (node, gpu) (DCGM_FI_DEV_XID_ERRORS) > 0",
            "0m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} reported XID {{ $value }}",
            "An XID is a driver-reported GPU fault (e.g. 48 double-bit ECC, 79 fallen off the bus, 94/95 contained/uncontained "
            "ECC). Drain the node if it repeats; serving pods on it may hang or return errors.",
        ),
        _rule(
            "GpuRowRemapFailure",
            "max by (node, gpu) (DCGM_FI_DEV_ROW_REMAP_FAILURE) > 0",
            "0m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} failed to remap a memory row",
            "The GPU has exhausted its memory row remapping: replace the instance (stop/start moves it to other hardware).",
        ),
        _rule(
            "GpuUncorrectableRowRemaps",
            "increase(DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS[1h]) > 0",
            "0m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.node }} remapped rows for uncorrectable errors",
            "Uncorrectable memory errors were remapped; a GPU reset is pending. Schedule a drain.",
        ),
    ]
    kv = [
        _rule(
            "KvTransferFailures",
            f'sum by (namespace, pod) (increase(vllm:nixl_num_failed_transfers_total{{namespace="{ns}"}}[5m])) > 0',
            "5m",
            "critical",
            "NIXL KV transfers failing on {{ $labels.pod }}",
            "Decode cannot pull KV cache from prefill: requests fail or are recomputed (kv_load_failure_policy).",
        ),
        _rule(
            "KvTransferNotificationFailures",
            f'sum by (namespace, pod) (increase(vllm:nixl_num_failed_notifications_total{{namespace="{ns}"}}[5m])) > 0',
            "5m",
            "warning",
            "NIXL notifications failing on {{ $labels.pod }}",
            "Prefill is not told its KV blocks were read; they stay allocated until they expire.",
        ),
        _rule(
            "KvBlocksExpiring",
            f'sum by (namespace, pod) (increase(vllm:nixl_num_kv_expired_reqs_total{{namespace="{ns}"}}[15m])) > 0',
            "15m",
            "warning",
            "KV blocks on prefill {{ $labels.pod }} expire before decode reads them",
            "Decode is too slow to pull (or never does): prefill compute is wasted and its KV cache fills.",
        ),
    ]
    if args.kv_backend == "LIBFABRIC":
        # The trap the stack is built around: NIXL moves KV while the EFA devices of the node stay idle, i.e. over TCP.
        kv.append(
            _rule(
                "KvTransferNotOnEfa",
                f"({_vllm_kv_not_on_efa(ns)}) or ({_trtllm_kv_not_on_efa(ns)})",
                "10m",
                "critical",
                "KV transfer on {{ $labels.node }} is not using EFA",
                "vLLM: NIXL transfers over 1 MB/s but the node's EFA counters do not move; TensorRT-LLM (no NIXL byte "
                "counters at 1.2.1): generation servers finish requests, each of which pulled its KV from a context server, "
                "while the node's EFA counters do not move at all. KV is going over TCP (UCX fallback, "
                "missing libfabric in the image, no EFA devices in the pod, or prefill and decode in different AZs). "
                "TTFT is 10-100x worse. See docs/runbook.md.",
            )
        )
    slo_rules = _burn_rules("Ttft", [(e.ttft, e.by) for e in SLO_SERIES], slo.ttft_seconds, slo.target, ns, "TTFT")
    slo_rules += _burn_rules("Itl", [(e.itl, e.by) for e in SLO_SERIES], slo.itl_seconds, slo.target, ns, "Inter-token latency")
    sched = [
        _rule(
            "ServingPodsPending",
            f'sum by (namespace) (kube_pod_status_phase{{namespace="{ns}", phase="Pending"}}) > 0',
            "15m",
            "warning",
            "{{ $value }} serving pods Pending in {{ $labels.namespace }} for 15 minutes",
            "Gang-scheduled pods wait until every pod of the group fits: check `kubectl describe podgroup`, the KAI "
            "queue's GPU quota and the pools' free GPUs and EFA devices.",
        ),
        _rule(
            "GpuNodeNotReady",
            'kube_node_status_condition{condition="Ready", status="true"} == 0 and on (node) kube_node_status_capacity{resource="nvidia_com_gpu"} > 0',
            "5m",
            "critical",
            "GPU node {{ $labels.node }} is NotReady",
            "A GPU node ($55+/h on p5) is not serving; its gangs are rescheduled elsewhere or stay Pending.",
        ),
        _rule(
            "NodeNotReady",
            'kube_node_status_condition{condition="Ready", status="true"} == 0',
            "10m",
            "warning",
            "Node {{ $labels.node }} is NotReady",
            "System nodes run the schedulers' webhooks (fail-closed): losing several blocks pod creation.",
        ),
        _rule(
            "SchedulingControllerDegraded",
            (
                f'kube_deployment_status_replicas_available{{namespace=~"{_CONTROLLER_NAMESPACES}"}} '
                f'< kube_deployment_spec_replicas{{namespace=~"{_CONTROLLER_NAMESPACES}"}}'
            ),
            "10m",
            "warning",
            "{{ $labels.namespace }}/{{ $labels.deployment }} runs below its replicas",
            "KAI, LWS and Grove serve fail-closed webhooks: with no replica left, no serving pod can be created.",
        ),
    ]
    return [
        {"name": "disagg.gpu", "rules": gpu},
        {"name": "disagg.kv-transfer", "rules": kv},
        {"name": "disagg.slo", "rules": slo_rules},
        {"name": "disagg.scheduling", "rules": sched},
    ]


def prometheus_rule(args: PlatformArgs) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "disagg",
            "namespace": pv.MONITORING_NAMESPACE,
            "labels": {"release": pv.MONITORING_RELEASE, "app.kubernetes.io/part-of": "disagg", "app.kubernetes.io/managed-by": "pulumi"},
        },
        "spec": {"groups": rule_groups(args)},
    }


# --- scrape configs -----------------------------------------------------------------------------------------------


def _service_monitor(name: str, namespace: str, selector: dict[str, Any], endpoints: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"release": pv.MONITORING_RELEASE, "app.kubernetes.io/part-of": "disagg", "app.kubernetes.io/managed-by": "pulumi"},
        },
        "spec": {"namespaceSelector": {"matchNames": [namespace]}, "selector": selector, "endpoints": endpoints, **spec},
    }


LWS_METRICS_SERVICE = "lws-controller-manager-metrics"
LWS_METRICS_PORT = 8443  # lws v0.10.0 api/config/v1alpha1/defaults.go DefaultMetricsBindAddress


def scrape_objects(enabled: set[str], namespaces: dict[str, str]) -> list[PlatformObject]:
    """ServiceMonitors (and the LWS metrics Service) of the GPU exporter and the scheduling controllers."""
    out: list[PlatformObject] = []
    node = [pv.node_label_relabeling()]
    if "gpu-operator" in enabled:
        ns = namespaces["gpu-operator"]
        # The operator's Service nvidia-dcgm-exporter, port gpu-metrics (gpu-operator v26.7.0
        # assets/state-dcgm-exporter/0400_service.yaml). honorLabels: DCGM's own namespace/pod/container labels name
        # the pod holding the GPU (DCGM_EXPORTER_KUBERNETES=true) and must win over the exporter pod's.
        sm = _service_monitor(
            "nvidia-dcgm-exporter", ns, {"matchLabels": {"app": "nvidia-dcgm-exporter"}},
            [{"port": "gpu-metrics", "path": "/metrics", "interval": "15s", "honorLabels": True, "relabelings": node}],
        )
        out.append(PlatformObject("monitor-dcgm", "kube-prometheus-stack", sm, also_after=("gpu-operator",)))
    if "kai-scheduler" in enabled:
        ns = namespaces["kai-scheduler"]
        # Services the KAI operator creates, labelled app=<name> (operands/common/common.go ObjectForKAIConfig):
        # kai-scheduler-default port http-metrics (selectorless above one replica: the operator points it at the
        # leader, operands/scheduler/resources_for_shard.go) and queue-controller port metrics
        # (operands/queue_controller/resources.go; default 8080, pkg/apis/kai/v1/queue_controller PortMapping).
        sm = _service_monitor(
            "kai-scheduler",
            ns,
            {"matchExpressions": [{"key": "app", "operator": "In", "values": [pv.KAI_OPERANDS["scheduler"], pv.KAI_OPERANDS["queuecontroller"]]}]},
            [{"port": "http-metrics", "interval": "30s"}, {"port": "metrics", "interval": "30s"}],
        )
        out.append(PlatformObject("monitor-kai", "kube-prometheus-stack", sm, also_after=("kai-scheduler",)))
    if "grove" in enabled:
        ns = namespaces["grove"]
        # Service grove-operator, port metrics 9445, plain HTTP: the manager's metrics server has no secure serving
        # (grove v0.1.0-alpha.11 operator/charts/templates/service.yaml, operator/internal/controller/manager.go).
        sm = _service_monitor(
            "grove-operator", ns,
            {"matchLabels": {"app.kubernetes.io/component": "operator-service", "app.kubernetes.io/name": "grove-operator"}},
            [{"port": "metrics", "interval": "30s"}],
        )
        out.append(PlatformObject("monitor-grove", "kube-prometheus-stack", sm, also_after=("grove",)))
    if "lws" in enabled:
        ns = namespaces["lws"]
        # LWS serves metrics on :8443 with TLS and Kubernetes authn/authz (lws v0.10.0 cmd/main.go: SecureServing,
        # filters.WithAuthenticationAndAuthorization); Prometheus' ClusterRole may GET /metrics (kube-prometheus-stack
        # templates/prometheus/clusterrole.yaml nonResourceURLs) and presents its own token. The certificate is
        # self-signed by the controller, hence no verification.
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": LWS_METRICS_SERVICE, "namespace": ns, "labels": {"app.kubernetes.io/name": LWS_METRICS_SERVICE, "app.kubernetes.io/part-of": "disagg"}},
            "spec": {"type": "ClusterIP", "selector": dict(pv.LWS_POD_LABELS), "ports": [{"name": "https", "port": LWS_METRICS_PORT, "targetPort": LWS_METRICS_PORT, "protocol": "TCP"}]},
        }
        out.append(PlatformObject("lws-metrics-service", "lws", svc))
        sm = _service_monitor(
            "lws-controller-manager", ns, {"matchLabels": {"app.kubernetes.io/name": LWS_METRICS_SERVICE}},
            [{
                "port": "https", "scheme": "https", "interval": "30s",
                "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "tlsConfig": {"insecureSkipVerify": True},
            }],
        )
        out.append(PlatformObject("monitor-lws", "kube-prometheus-stack", sm, after=("lws-metrics-service",), also_after=("lws",)))
    return out


def observability_objects(args: PlatformArgs, enabled: set[str], namespaces: dict[str, str]) -> list[PlatformObject]:
    """Everything the pack creates, for the enabled add-ons (none without kube-prometheus-stack)."""
    if "kube-prometheus-stack" not in enabled:
        return []
    out = scrape_objects(enabled, namespaces)
    mon = args.monitoring
    if mon.alerts:
        out.append(PlatformObject("rules", "kube-prometheus-stack", prometheus_rule(args)))
    if mon.grafana:
        ns = namespaces["kube-prometheus-stack"]
        out += [PlatformObject(f"dashboard-{d.uid}", "kube-prometheus-stack", dashboard_configmap(d, ns)) for d in dashboards()]
    return out


def dashboard_titles(args: PlatformArgs) -> list[tuple[str, str]]:
    """(uid, title) of the dashboards the stack ships, for summary.md."""
    if not (args.monitoring.enabled and args.monitoring.grafana):
        return []
    return [(d.uid, d.title) for d in dashboards()]
