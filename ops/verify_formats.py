"""The upstream formats `ops verify` reads, as pure parsers: vLLM's and TensorRT-LLM's Prometheus pages, NIXL's and
TensorRT-LLM's log lines, the EFA driver's sysfs counters and the OpenAI-compatible server-sent event stream. Each name and format is cited at the version the stack
pins (facts/versions.py); tests/fixtures/verify holds a sample of each."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

# ---- upstream names ------------------------------------------------------------------------------------------------
# Prometheus series of the NixlConnector, vllm @ v0.30.0 : vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py
# (NixlPromMetrics): histograms vllm:nixl_xfer_time_seconds and vllm:nixl_bytes_transferred (one observation per
# finished transfer, NixlKVConnectorStats.record_transfer, called from nixl/base_worker.py _pop_done_transfers when
# check_xfer_state is DONE), counters vllm:nixl_num_failed_transfers / _failed_notifications / _kv_expired_reqs
# (prometheus_client exports a Counter as <name>_total). Labels model_name and engine (vllm v1/metrics/loggers.py
# PrometheusStatLogger). `NixlConnector` is `NixlPullConnector` (nixl/connector.py): the decode side READs the KV
# and counts the transfers, so they grow on decode pods (NixlPushConnector writes from prefill; both are summed).
NIXL_TRANSFERS = "vllm:nixl_xfer_time_seconds_count"
NIXL_XFER_SECONDS = "vllm:nixl_xfer_time_seconds_sum"
NIXL_BYTES = "vllm:nixl_bytes_transferred_sum"
NIXL_FAILED_TRANSFERS = "vllm:nixl_num_failed_transfers_total"
NIXL_FAILED_NOTIFICATIONS = "vllm:nixl_num_failed_notifications_total"
NIXL_KV_EXPIRED = "vllm:nixl_num_kv_expired_reqs_total"

# What NIXL's Python agent logs while it creates the backends vLLM asked for (kv_connector_extra_config.backends,
# nixl/base_worker.py builds nixl_agent_config(backends=...)). ai-dynamo/nixl @ v1.4.0 : src/api/python/_api.py:
# nixl_agent.create_backend logs "Backend %s was instantiated"; nixl_agent.__init__ warns "Skipping backend
# registration %s due to the missing plugin." when the plugin did not load (e.g. libfabric.so.1 missing from the
# image) and errors "No plugins available, cannot start transfers!". src/plugins/libfabric/libfabric_backend.cpp
# logs "Failed to initialize libfabric backend: ..." (e.g. no EFA device or provider). The same strings are in
# nixl v1.3.0 and on main (2026-08). The nixl logger writes to stdout (src/api/python/logging.py), which vLLM
# prefixes with "(Worker_TP<n> pid=<pid>) " (vllm v0.30.0 utils/system_utils.py _add_prefix).
_BACKEND_OK = re.compile(r"Backend (\S+) was instantiated")
_BACKEND_PROBLEMS = (
    re.compile(r"Skipping backend registration \S+ due to the missing plugin"),
    re.compile(r"Failed to initialize libfabric backend"),
    re.compile(r"No plugins available, cannot start transfers"),
)

# EFA port counters, amzn/amzn-drivers @ efa_linux_3.1.0 : kernel/linux/efa/src/efa_verbs.c EFA_DEFINE_PORT_STATS,
# exposed by the RDMA core under /sys/class/infiniband/<dev>/ports/<port>/hw_counters/<name>. A NIXL READ (vLLM's
# pull mode: decode reads prefill's KV blocks) shows as rdma_read_resp_bytes on the prefill node and rdma_read_bytes
# on the decode node; a WRITE (push mode) as rdma_write_bytes on prefill, rdma_write_recv_bytes on decode.
EFA_SOURCE_RDMA = ("rdma_read_resp_bytes", "rdma_write_bytes")
EFA_SINK_RDMA = ("rdma_read_bytes", "rdma_write_recv_bytes")
EFA_TX = "tx_bytes"
EFA_RX = "rx_bytes"
EFA_ERRORS = ("rdma_read_wr_err", "rdma_write_wr_err", "unresponsive_remote_events", "impaired_remote_conn_events")
_EFA_LINE = re.compile(r"^/sys/class/infiniband/(?P<dev>[^/]+)/ports/(?P<port>\d+)/hw_counters/(?P<name>[^/:]+):(?P<value>-?\d+)\s*$")
# Read from inside the engine container, without privilege: in the kernel's default `shared` RDMA netns mode the RDMA
# core adds a compat sysfs tree of every device, ports and their attributes included, to each network namespace
# (linux drivers/infiniband/core/device.c add_one_compat_dev -> ib_setup_port_attrs, commit 4e0f7b907072), and the
# counter files are world-readable. No output means the pod's namespace sees no RDMA device at all.
EFA_COUNTERS_COMMAND = ["sh", "-c", "grep -H . /sys/class/infiniband/*/ports/*/hw_counters/* 2>/dev/null || true"]


# TensorRT-LLM 1.2.1 (serving.engine.kind tensorrt-llm). Its servers export no KV transfer counters: the metrics of
# trtllm-serve are per request (tensorrt_llm/metrics/collector.py MetricsCollector, on /prometheus/metrics once
# `return_perf_metrics` is on). trtllm_request_success_total (labels model_name, engine_type, finished_reason) counts
# every finished request of a server, the context phase of a context server included: serve/openai_server.py
# openai_completion awaits _extract_metrics -> MetricsCollector.log_metrics_dict both in completion_response (the
# orchestrator's non-streamed context-only request) and in completion_generator (the streamed generation request).
TRTLLM_REQUEST_SUCCESS = "trtllm_request_success_total"

# What each context and generation server logs while its cache transceiver creates its NIXL agent, one line per rank:
# NVIDIA/TensorRT-LLM cpp/tensorrt_llm/executor/cache_transmission/nixl_utils/transferAgent.cpp, constructor
# NixlTransferAgent::NixlTransferAgent: TLLM_LOG_INFO("NixlTransferAgent::NixlTransferAgent using NIXL backend: %s")
# after reading TRTLLM_NIXL_KVCACHE_BACKEND; a value it does not support is replaced, with TLLM_LOG_WARNING
# ("Unsupported NIXL backend: %s, fallback to UCX"); a backend NIXL cannot create throws ("Failed to create NIXL
# backend: %s"). The C++ logger writes "[TensorRT-LLM][INFO] " before it. The line is INFO: trtllm-serve's
# --log_level defaults to info (tensorrt_llm/commands/serve.py), and TLLM_LOG_LEVEL above info hides it.
_TRTLLM_BACKEND = re.compile(r"NixlTransferAgent::NixlTransferAgent using NIXL backend: (\S+)")
_TRTLLM_BACKEND_PROBLEMS = (
    re.compile(r"Unsupported NIXL backend: \S+, fallback to UCX"),
    re.compile(r"Failed to create NIXL backend"),
)

# ---- Prometheus text exposition ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


class FormatError(ValueError):
    """Text that is not what the upstream format says it is."""


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(line: str, i: int, lineno: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Parse `{a="b",c="d"}` starting at line[i] == "{"; return the pairs and the index after "}"."""
    pairs: list[tuple[str, str]] = []
    i += 1
    while True:
        while i < len(line) and line[i] in " ,":
            i += 1
        if i < len(line) and line[i] == "}":
            return tuple(pairs), i + 1
        m = _LABEL.match(line, i)
        if not m or line[m.end() : m.end() + 2] != '="':
            raise FormatError(f"line {lineno}: bad label at column {i + 1}: {line!r}")
        i = m.end() + 2
        value = []
        while True:
            if i >= len(line):
                raise FormatError(f"line {lineno}: unterminated label value: {line!r}")
            ch = line[i]
            if ch == "\\" and i + 1 < len(line):
                value.append(_ESCAPES.get(line[i + 1], "\\" + line[i + 1]))
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                value.append(ch)
                i += 1
        pairs.append((m.group(0), "".join(value)))


def parse_metrics(text: str) -> list[Sample]:
    """Prometheus text exposition format 0.0.4 (what vLLM's /metrics serves by default) -> samples."""
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if not m:
            raise FormatError(f"line {lineno}: no metric name: {raw!r}")
        labels: tuple[tuple[str, str], ...] = ()
        i = m.end()
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, lineno)
        rest = line[i:].split()
        if not rest or len(rest) > 2:
            raise FormatError(f"line {lineno}: expected a value (and an optional timestamp): {raw!r}")
        try:
            value = float(rest[0])
        except ValueError:
            raise FormatError(f"line {lineno}: bad value {rest[0]!r}") from None
        out.append(Sample(m.group(0), labels, value))
    return out


@dataclass(frozen=True)
class NixlTotals:
    """The NixlConnector's counters of one engine, summed over its label sets."""

    present: bool = True
    transfers: float = 0.0
    seconds: float = 0.0
    bytes: float = 0.0
    failed_transfers: float = 0.0
    failed_notifications: float = 0.0
    kv_expired: float = 0.0

    def minus(self, before: NixlTotals) -> tuple[NixlTotals, bool]:
        """Growth since `before`, and whether the engine restarted in between (a counter went down: count from 0)."""
        if not before.present:
            return self, False
        keys = ("transfers", "seconds", "bytes", "failed_transfers", "failed_notifications", "kv_expired")
        if any(getattr(self, k) < getattr(before, k) for k in keys):
            return self, True
        return NixlTotals(self.present, *(getattr(self, k) - getattr(before, k) for k in keys)), False


def nixl_totals(samples: Iterable[Sample]) -> NixlTotals:
    wanted = {
        NIXL_TRANSFERS: "transfers",
        NIXL_XFER_SECONDS: "seconds",
        NIXL_BYTES: "bytes",
        NIXL_FAILED_TRANSFERS: "failed_transfers",
        NIXL_FAILED_NOTIFICATIONS: "failed_notifications",
        NIXL_KV_EXPIRED: "kv_expired",
    }
    sums = dict.fromkeys(wanted.values(), 0.0)
    seen = False
    for s in samples:
        key = wanted.get(s.name)
        if key:
            sums[key] += s.value
            seen = seen or s.name == NIXL_TRANSFERS
    return NixlTotals(present=seen, **sums)


@dataclass(frozen=True)
class RequestTotals:
    """TensorRT-LLM's finished-request counter of one server, summed over its label sets."""

    present: bool = True
    success: float = 0.0

    def minus(self, before: RequestTotals) -> tuple[RequestTotals, bool]:
        """Growth since `before`, and whether the server restarted in between (the counter went down)."""
        if not before.present:
            return self, False
        if self.success < before.success:
            return self, True
        return RequestTotals(self.present, self.success - before.success), False


def trtllm_totals(samples: Iterable[Sample]) -> RequestTotals:
    found = [s.value for s in samples if s.name == TRTLLM_REQUEST_SUCCESS]
    return RequestTotals(present=bool(found), success=sum(found))

# ---- engine logs -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendLog:
    instantiated: tuple[str, ...]  # NIXL backend names, one per agent that created it (one agent per TP worker)
    problems: tuple[str, ...]  # log lines that say a backend could not be used

    @property
    def backends(self) -> set[str]:
        return set(self.instantiated)


def parse_engine_log(text: str) -> BackendLog:
    instantiated, problems = [], []
    for line in text.splitlines():
        m = _BACKEND_OK.search(line)
        if m:
            instantiated.append(m.group(1))
        elif any(p.search(line) for p in _BACKEND_PROBLEMS):
            problems.append(short(line))
    return BackendLog(tuple(instantiated), tuple(problems))


def parse_trtllm_log(text: str) -> BackendLog:
    """A TensorRT-LLM server's log -> the NIXL backend each rank's transfer agent created, and the lines that say
    the asked-for backend was not used."""
    instantiated, problems = [], []
    for line in text.splitlines():
        m = _TRTLLM_BACKEND.search(line)
        if m:
            instantiated.append(m.group(1))
        elif any(p.search(line) for p in _TRTLLM_BACKEND_PROBLEMS):
            problems.append(short(line))
    return BackendLog(tuple(instantiated), tuple(problems))

# ---- EFA hardware counters ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EfaCounters:
    devices: Mapping[str, Mapping[str, int]]  # "<device>/<port>" -> counter -> value

    def total(self, names: Iterable[str]) -> int:
        names = tuple(names)
        return sum(c.get(n, 0) for c in self.devices.values() for n in names)

    def minus(self, before: EfaCounters) -> dict[str, int]:
        """Growth of each counter, summed over the devices read both times."""
        out: dict[str, int] = {}
        for dev, counters in self.devices.items():
            old = before.devices.get(dev)
            if old is None:
                continue
            for name, value in counters.items():
                out[name] = out.get(name, 0) + value - old.get(name, value)
        return out


def parse_efa_counters(text: str) -> EfaCounters:
    """Output of EFA_COUNTERS_COMMAND (`<path>:<value>` per counter file) -> counters per device and port."""
    devices: dict[str, dict[str, int]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        m = _EFA_LINE.match(raw)
        if not m:
            raise FormatError(f"line {lineno}: not a /sys/class/infiniband hw_counters line: {raw!r}")
        devices.setdefault(f"{m['dev']}/{m['port']}", {})[m["name"]] = int(m["value"])
    return EfaCounters(devices)


# ---- the OpenAI-compatible stream --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamResult:
    ok: bool
    ttft: float | None = None  # seconds from sending the request to the first token chunk
    gaps: tuple[float, ...] = ()  # seconds between consecutive token chunks
    chunks: int = 0
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def _token_chunk(choice: Mapping) -> str | None:
    """The text a streamed choice carries, or None if it carries no token (a chat role-only delta)."""
    if "text" in choice:  # /v1/completions (vllm entrypoints/openai/completion/protocol.py CompletionResponseStreamChoice)
        return choice.get("text") or ""
    delta = choice.get("delta") or {}  # /v1/chat/completions
    content = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
    return content or None


def parse_stream(lines: Iterable[tuple[float, str]]) -> StreamResult:
    """Server-sent events of a streamed completion, each line with its arrival time (seconds after the request was
    sent) -> timings. vLLM sends one event per `data:` line, a token per event (`--stream-interval` 1 by default),
    a usage event when `stream_options.include_usage` is set, and `data: [DONE]` last (vllm @ v0.30.0 :
    vllm/entrypoints/openai/completion/serving.py completion_stream_generator); an error mid-stream arrives as a
    `data: {"error": {...}}` event."""
    times: list[float] = []
    text: list[str] = []
    prompt_tokens = completion_tokens = None
    error = None
    done = False
    data: list[str] = []
    data_t = 0.0
    other: str | None = None  # the first line that is not SSE, for the error message

    def dispatch(t: float) -> None:
        nonlocal prompt_tokens, completion_tokens, error, done
        payload = "\n".join(data)
        data.clear()
        if payload.strip() == "[DONE]":
            done = True
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            error = f"not JSON in the stream: {short(payload)}"
            return
        if not isinstance(event, dict):
            error = f"unexpected event in the stream: {short(payload)}"
            return
        if event.get("error"):
            e = event["error"]
            error = e.get("message", str(e)) if isinstance(e, dict) else str(e)
            return
        usage = event.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
        completion_tokens = usage.get("completion_tokens", completion_tokens)
        pieces = [p for p in (_token_chunk(c) for c in event.get("choices") or []) if p is not None]
        if pieces:
            times.append(t)
            text.extend(pieces)

    for t, raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                dispatch(data_t)  # an event ends at a blank line; it arrived with its data
            continue
        if line.startswith(":"):
            continue
        fname, _, value = line.partition(":")
        if fname == "data":
            data.append(value[1:] if value.startswith(" ") else value)
            data_t = t
        elif fname not in ("event", "id", "retry") and other is None:
            other = line
    if data:
        dispatch(data_t)
    if error is None and not done:
        error = f"not an event stream: {short(other)}" if other is not None and not times else "the stream ended without data: [DONE]"
    if error is None and not times:
        error = "the stream carried no token"
    gaps = tuple(b - a for a, b in zip(times, times[1:]))
    return StreamResult(
        ok=error is None,
        ttft=times[0] if times else None,
        gaps=gaps,
        chunks=len(times),
        text="".join(text),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        error=error,
    )


def percentile(values: Iterable[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default `linear` method); q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
