"""`python -m ops verify --stack S`: prove on a deployed stack that KV moved from prefill to decode over EFA.

One long prompt goes through the router; around it the engines' metrics, their logs and the EFA hardware counters of
the prefill nodes are read, and five checks decide:

  pods            prefill and decode pods that serve HTTP are there and Ready
  request         the long prompt was answered through the router (streamed)
  nixl-transfers  NIXL KV transfer counters grew (vLLM NixlConnector metrics)
  nixl-failures   failed NIXL transfers and notifications did not grow
  nixl-backend    the engine logs name the NIXL backend the stack asks for (LIBFABRIC on EFA)
  efa-rdma        the EFA RDMA byte counters of the prefill nodes grew (the KV left them over EFA, not TCP)

then a short load run prints TTFT and ITL figures (measured here, from the stream; never compared with a target).

Everything that decides is a pure function of text (Prometheus exposition, engine logs, sysfs counters, the SSE
stream) and is tested against recorded fixtures (`tests/fixtures/verify/`). The cluster is reached through the
small `Cluster` interface (`ops/verify_io.py` implements it over kubectl) and one `Streamer` (HTTP).

Exit codes: 0 KV moved (over EFA on an EFA stack); 1 it did not, or it could not be shown (each failed check says
what was expected, what was seen and what to look at: docs/runbook.md "ops verify failures"); 2 the stack config
could not be loaded or the cluster could not be reached.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from components.builders.serving.common import (
    ROLES,
    ROUTER,
    endpoint_selector,
    namespace,
    role_selector,
    served_model_name,
    workload_name,
)
from components.builders.serving.engine import engine_for
from components.builders.serving.pods import CONTAINER, role_efa
from components.builders.serving.router import router_url
from stacks.config.stack import StackConfig
from stacks.plan import kv_backend, plan

RUNBOOK = "docs/runbook.md#ops-verify-failures"

# ---- upstream names ------------------------------------------------------------------------------------------------
# Prometheus series of the NixlConnector, vllm @ v0.30.0 : vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py
# (NixlPromMetrics): histograms vllm:nixl_xfer_time_seconds and vllm:nixl_bytes_transferred (one observation per
# finished transfer, NixlKVConnectorStats.record_transfer, called from nixl/base_worker.py _pop_done_transfers when
# check_xfer_state is DONE), counters vllm:nixl_num_failed_transfers / _failed_notifications / _kv_expired_reqs
# (prometheus_client exports a Counter as <name>_total). Labels model_name and engine (vllm v1/metrics/loggers.py
# PrometheusStatLogger). In the default pull mode the decode side reads the KV, so transfers count on decode pods.
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
EFA_ERRORS = ("rdma_read_wr_err", "rdma_write_wr_err", "unresponsive_remote_events", "impaired_remote_conn_events")
_EFA_LINE = re.compile(r"^/sys/class/infiniband/(?P<dev>[^/]+)/ports/(?P<port>\d+)/hw_counters/(?P<name>[^/:]+):(?P<value>-?\d+)\s*$")
# Read from inside the engine container, without privilege: in the kernel's default `shared` RDMA netns mode the RDMA
# core adds a compat sysfs tree of every device, ports and their attributes included, to each network namespace
# (linux drivers/infiniband/core/device.c add_one_compat_dev -> ib_setup_port_attrs, commit 4e0f7b907072), and the
# counter files are world-readable. No output means the pod's namespace sees no RDMA device at all.
EFA_COUNTERS_COMMAND = ["sh", "-c", "grep -H . /sys/class/infiniband/*/ports/*/hw_counters/* 2>/dev/null || true"]

PASS, FAIL, SKIP, UNKNOWN = "PASS", "FAIL", "SKIP", "UNKNOWN"


# ---- what to check, from the stack config ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Names and expectations of one stack, all from the builders that named the objects."""

    stack: str
    namespace: str
    model: str
    router_service: str
    router_port: int
    router_in_cluster_url: str
    engine_port: int
    metrics_path: str
    container: str
    role_selectors: Mapping[str, Mapping[str, str]]
    endpoint_selectors: Mapping[str, Mapping[str, str]]
    expected_pods: Mapping[str, int]
    backend: str  # the NIXL backend the engines must log
    efa: bool  # prefill and decode pods get EFA devices: KV must go over EFA RDMA
    max_model_len: int | None

    @classmethod
    def from_config(cls, cfg: StackConfig) -> Target:
        engine = engine_for(cfg)
        p = plan(cfg)
        efa = all(role_efa(cfg, r) for r in ROLES)
        return cls(
            stack=cfg.name,
            namespace=namespace(cfg),
            model=served_model_name(cfg),
            router_service=workload_name(cfg, ROUTER),
            router_port=cfg.serving.router.port,
            router_in_cluster_url=router_url(cfg),
            engine_port=engine.port(cfg),
            metrics_path=engine.metrics_path,
            container=CONTAINER,
            role_selectors={r: role_selector(cfg, r) for r in ROLES},
            endpoint_selectors={r: endpoint_selector(cfg, r) for r in ROLES},
            expected_pods={r.role: r.replicas * r.pods_per_replica for r in p.roles},
            # On EFA pools only LIBFABRIC moves KV over EFA (UCX there falls back to TCP), whatever the config says.
            backend="LIBFABRIC" if efa else kv_backend(cfg),
            efa=efa,
            max_model_len=cfg.serving.model.max_model_len,
        )

    def metrics_command(self) -> list[str]:
        """Read the engine's metrics from inside its container: the namespace's NetworkPolicies admit the engine port
        only from the router and the monitoring namespace, so neither the API server proxy nor a debug pod would get
        through, while localhost inside the pod always does. python3 is in every vLLM image."""
        url = f"http://127.0.0.1:{self.engine_port}{self.metrics_path}"
        script = f"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url!r}, timeout=30).read().decode())"
        return ["python3", "-c", script]


@dataclass(frozen=True)
class Options:
    prompt_tokens: int = 4000  # approximate length of the probe prompt (the stream's usage gives the real count)
    max_tokens: int = 32
    load_requests: int = 16
    concurrency: int = 4
    load_prompt_tokens: int = 1000
    load_max_tokens: int = 64
    settle_seconds: float = 30.0  # how long to wait for the engines' metrics to show the probe's transfers
    poll_seconds: float = 2.0
    request_timeout: float = 600.0

    def fit(self, max_model_len: int | None) -> tuple[Options, list[str]]:
        """Shrink prompts that would not fit the model's context (token counts here are estimates, so keep a margin)."""
        if not max_model_len:
            return self, []
        notes, changes = [], {}
        for key, gen in (("prompt_tokens", self.max_tokens), ("load_prompt_tokens", self.load_max_tokens)):
            room = int((max_model_len - gen) * 0.7)
            if getattr(self, key) > room:
                changes[key] = max(room, 16)
                notes.append(f"{key} lowered from {getattr(self, key)} to {changes[key]} to fit maxModelLen {max_model_len}")
        return replace(self, **changes), notes


# ---- kubernetes objects -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    name: str
    node: str
    phase: str
    ready: bool
    labels: Mapping[str, str]
    containers: tuple[str, ...] = ()

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())


def pods_from_json(doc: Mapping) -> list[Pod]:
    """`kubectl get pods -o json` -> pods."""
    out = []
    for item in doc.get("items", []):
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        out.append(
            Pod(
                name=meta.get("name", ""),
                node=spec.get("nodeName") or "",
                phase=status.get("phase", ""),
                ready=conditions.get("Ready") == "True",
                labels=dict(meta.get("labels") or {}),
                containers=tuple(c.get("name", "") for c in spec.get("containers", [])),
            )
        )
    return sorted(out, key=lambda p: p.name)


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

    def minus(self, before: NixlTotals | None) -> tuple[NixlTotals, bool]:
        """Growth since `before`, and whether the engine restarted in between (a counter went down: count from 0)."""
        if before is None or not before.present:
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
            problems.append(_short(line))
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
            error = f"not JSON in the stream: {_short(payload)}"
            return
        if not isinstance(event, dict):
            error = f"unexpected event in the stream: {_short(payload)}"
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
    if data:
        dispatch(data_t)
    if error is None and not done:
        error = "the stream ended without data: [DONE]"
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


@dataclass(frozen=True)
class LoadFigures:
    requests: int
    ok: int
    concurrency: int
    wall_seconds: float
    ttft_p50: float | None = None
    ttft_p90: float | None = None
    itl_p50: float | None = None
    itl_p90: float | None = None
    output_tokens: int = 0
    errors: tuple[str, ...] = ()

    @property
    def output_tokens_per_second(self) -> float | None:
        return self.output_tokens / self.wall_seconds if self.wall_seconds > 0 else None


def load_figures(results: Iterable[StreamResult], *, concurrency: int, wall_seconds: float) -> LoadFigures:
    results = list(results)
    good = [r for r in results if r.ok and r.ttft is not None]
    gaps = [g for r in good for g in r.gaps]
    ttfts = [r.ttft for r in good if r.ttft is not None]
    errors = tuple(sorted({r.error or "?" for r in results if not r.ok}))
    return LoadFigures(
        requests=len(results),
        ok=len(good),
        concurrency=concurrency,
        wall_seconds=wall_seconds,
        ttft_p50=percentile(ttfts, 50) if ttfts else None,
        ttft_p90=percentile(ttfts, 90) if ttfts else None,
        itl_p50=percentile(gaps, 50) if gaps else None,
        itl_p90=percentile(gaps, 90) if gaps else None,
        output_tokens=sum(r.completion_tokens if r.completion_tokens is not None else r.chunks for r in good),
        errors=errors,
    )


# ---- prompts ------------------------------------------------------------------------------------------------------------

_SENTENCES = (
    "The prefill engine reads the whole prompt at once and writes the key and value cache of every token.",
    "The decode engine then pulls those cache blocks over the network before it produces the first answer token.",
    "On AWS the blocks should travel over the Elastic Fabric Adapter with RDMA, not over TCP sockets.",
    "A slow or silent fallback to TCP turns a fraction of a second into many seconds of waiting.",
)


def prompt(nonce: str, approx_tokens: int) -> str:
    """A prompt of about `approx_tokens` tokens (about 0.75 English words per token). It starts with a nonce: prefix
    caching matches blocks from the first token, so a prompt seen before could be served from the decode pod's own
    cache without any KV transfer, and the check would prove nothing."""
    words_wanted = max(8, approx_tokens * 3 // 4)
    parts = [f"Request {nonce}. Read the notes below, then summarize them in one sentence."]
    words = len(parts[0].split())
    i = 0
    while words < words_wanted:
        s = f"Note {i + 1}: {_SENTENCES[i % len(_SENTENCES)]}"
        parts.append(s)
        words += len(s.split())
        i += 1
    return " ".join(parts) + "\nSummary:"


def completion_payload(model: str, text: str, max_tokens: int) -> dict:
    # ignore_eos (a vLLM sampling extension, accepted by vllm-router) keeps every request generating max_tokens tokens,
    # so the ITL figures always have the same number of gaps; include_usage returns the real prompt token count.
    return {
        "model": model,
        "prompt": text,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }


# ---- checks ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    seen: str  # what was seen, with the figures
    expected: str = ""
    look_at: str = ""
    required: bool = True  # a required check must PASS; any check that FAILs fails the run


def check_pods(target: Target, pods: Mapping[str, list[Pod]]) -> Check:
    parts, missing, notes = [], [], []
    for role in ROLES:
        endpoints = [p for p in pods.get(role, []) if p.matches(target.endpoint_selectors[role])]
        ready = [p for p in endpoints if p.ready and p.phase == "Running"]
        parts.append(f"{len(ready)}/{len(endpoints)} {role} endpoint pods Ready ({len(pods.get(role, []))} pods, plan {target.expected_pods.get(role, '?')})")
        if not ready:
            missing.append(role)
        notes += [f"{p.name} is {p.phase}{'' if p.ready else ', not Ready'}" for p in endpoints if p not in ready]
    seen = "; ".join(parts) + (f" [{'; '.join(notes)}]" if notes else "")
    if missing:
        sel = " and ".join(",".join(f"{k}={v}" for k, v in sorted(target.endpoint_selectors[r].items())) for r in missing)
        return Check(
            "pods", FAIL, seen,
            expected=f"at least one Ready {' and '.join(missing)} pod serving HTTP",
            look_at=f"kubectl get pods -n {target.namespace} -l {sel} -o wide; then the pods' events and engine logs",
        )
    return Check("pods", PASS, seen)


def check_request(result: StreamResult | None, transport_error: str | None) -> Check:
    expected = "the long prompt answered through the router: HTTP 200, tokens streamed, data: [DONE]"
    look_at = "the router's logs (kubectl logs deploy/<router>), GET /v1/models on the router, and the decode pods' logs"
    if transport_error is not None:
        return Check("request", FAIL, transport_error, expected, look_at)
    assert result is not None
    if not result.ok:
        return Check("request", FAIL, f"stream failed: {result.error} (after {result.chunks} token chunks)", expected, look_at)
    seen = f"{_count(result.prompt_tokens, 'prompt tokens')} -> {result.chunks} token chunks, TTFT {_secs(result.ttft)}"
    return Check("request", PASS, seen)


def _delta_by_pod(before: Mapping[str, NixlTotals | None], after: Mapping[str, NixlTotals]) -> tuple[dict[str, NixlTotals], list[str]]:
    deltas, restarted = {}, []
    for pod, now in after.items():
        d, reset = now.minus(before.get(pod))
        deltas[pod] = d
        if reset:
            restarted.append(pod)
    return deltas, restarted


def check_transfers(before: Mapping[str, NixlTotals | None], after: Mapping[str, NixlTotals], errors: Mapping[str, str]) -> Check:
    expected = f"{NIXL_TRANSFERS} to grow on the decode pods after the long prompt"
    if errors and not after:
        return Check("nixl-transfers", UNKNOWN, _errors(errors), expected, "kubectl exec into the engine pods (RBAC pods/exec) and the engine's /metrics")
    absent = sorted(p for p, t in after.items() if not t.present)
    if absent and len(absent) == len(after):
        return Check(
            "nixl-transfers", FAIL, f"no vllm:nixl_* series on any engine ({', '.join(absent)})", expected,
            "the engines run without the NixlConnector: check --kv-transfer-config on the engine command line",
        )
    deltas, restarted = _delta_by_pod(before, after)
    total = sum(d.transfers for d in deltas.values())
    grew = {p: d for p, d in deltas.items() if d.transfers > 0}
    notes = [f"restarted during the check: {', '.join(restarted)}"] if restarted else []
    notes += [f"could not read {p}: {e}" for p, e in sorted(errors.items())]
    if total <= 0:
        seen = f"+0 transfers on {len(after)} engine pods" + "".join(f"; {n}" for n in notes)
        return Check(
            "nixl-transfers", FAIL, seen, expected,
            "the router must run in P/D mode (--vllm-pd-disaggregation) and find both roles; the decode logs show whether "
            "the request carried kv_transfer_params; a prompt shorter than one KV block transfers nothing",
        )
    nbytes = sum(d.bytes for d in grew.values())
    secs = sum(d.seconds for d in grew.values())
    rate = f", {_rate(nbytes, secs)} per transfer on average" if secs > 0 else ""
    where = ", ".join(f"{p} +{d.transfers:g}" for p, d in sorted(grew.items()))
    seen = f"+{total:g} transfers ({where}), {_bytes(nbytes)} moved{rate}" + "".join(f"; {n}" for n in notes)
    return Check("nixl-transfers", PASS, seen)


def check_failures(before: Mapping[str, NixlTotals | None], after: Mapping[str, NixlTotals], errors: Mapping[str, str]) -> Check:
    expected = f"{NIXL_FAILED_TRANSFERS} and {NIXL_FAILED_NOTIFICATIONS} not to grow"
    present = {p: t for p, t in after.items() if t.present}
    if not present:
        return Check("nixl-failures", UNKNOWN, "no engine exported vllm:nixl_* series" if after else _errors(errors), expected)
    deltas, _ = _delta_by_pod(before, present)
    bad = {p: d for p, d in deltas.items() if d.failed_transfers > 0 or d.failed_notifications > 0}
    expired = sum(d.kv_expired for d in deltas.values())
    note = f"; {expired:g} requests' KV expired on prefill pods before decode read it ({NIXL_KV_EXPIRED})" if expired else ""
    if bad:
        seen = ", ".join(f"{p}: +{d.failed_transfers:g} failed transfers, +{d.failed_notifications:g} failed notifications" for p, d in sorted(bad.items()))
        return Check(
            "nixl-failures", FAIL, seen + note, expected,
            "the decode pods' logs for NIXL transfer errors (failure_type=transfer_failed); prefill and decode must run the "
            "same engine image (NIXL checks versions at handshake) and share a zone; EFA errors on the nodes (efa-rdma)",
        )
    return Check("nixl-failures", PASS, f"+0 failed transfers, +0 failed notifications on {len(present)} engine pods{note}")


def check_backend(target: Target, logs: Mapping[str, BackendLog], errors: Mapping[str, str]) -> Check:
    expected = f"every engine pod's log names NIXL backend {target.backend} (\"Backend {target.backend} was instantiated\") and no other"
    wrong = {p: sorted(log.backends - {target.backend}) for p, log in logs.items() if log.backends - {target.backend}}
    problems = {p: log.problems for p, log in logs.items() if log.problems}
    named = sorted(p for p, log in logs.items() if target.backend in log.backends)
    silent = sorted(p for p, log in logs.items() if not log.instantiated and not log.problems)
    if wrong or problems:
        by_backend: dict[str, list[str]] = {}
        for p, backends in wrong.items():
            for b in backends:
                by_backend.setdefault(b, []).append(p)
        parts = [f"{len(ps)}/{len(logs)} engine pods created {b}, not {target.backend} ({', '.join(sorted(ps))})" for b, ps in sorted(by_backend.items())]
        parts += [f"{p}: {lines[0]}" for p, lines in sorted(problems.items())]
        hint = (
            "the engine's kv_connector_extra_config.backends; for LIBFABRIC the image must carry libfabric with the EFA "
            "provider and hwloc (libplugin_LIBFABRIC.so loads them), and the pod must request vpc.amazonaws.com/efa"
        )
        return Check("nixl-backend", FAIL, "; ".join(parts), expected, hint, required=False)
    notes = [f"could not read {p}: {e}" for p, e in sorted(errors.items())]
    if silent:
        notes.append(
            f"no backend line in {', '.join(silent)} (the kubelet keeps only the newest log: startup lines rotate out "
            "after containerLogMaxSize, 10Mi by default)"
        )
    if not named:
        return Check("nixl-backend", UNKNOWN, "; ".join(notes) or "no engine logs read", expected,
                     "kubectl logs of a freshly started engine pod", required=False)
    agents = sum(logs[p].instantiated.count(target.backend) for p in named)
    seen = f"{target.backend} in {len(named)}/{len(logs)} engine pods ({agents} NIXL agents)" + "".join(f"; {n}" for n in notes)
    return Check("nixl-backend", PASS, seen, required=False)


@dataclass(frozen=True)
class NodeCounters:
    node: str
    pod: str  # the pod the counters were read through
    before: EfaCounters | None
    after: EfaCounters | None
    error: str | None = None


def check_efa(target: Target, prefill: list[NodeCounters], decode: list[NodeCounters], nixl_bytes: float) -> Check:
    if not target.efa:
        return Check("efa-rdma", SKIP, f"the stack's prefill/decode pods get no EFA devices (NIXL backend {target.backend})", required=False)
    expected = f"EFA RDMA bytes out of the prefill nodes ({' + '.join(EFA_SOURCE_RDMA)}) to grow"
    read = [n for n in prefill if n.before is not None and n.after is not None]
    errors = [f"{n.node} (via {n.pod}): {n.error}" for n in prefill if n.error]
    if not read:
        return Check("efa-rdma", UNKNOWN, "; ".join(errors) or "no prefill node read", expected,
                     "kubectl exec into a prefill pod and read /sys/class/infiniband/*/ports/1/hw_counters")
    no_devices = [n.node for n in read if not n.after.devices]  # type: ignore[union-attr]
    rdma, tx, errs, per_node = 0, 0, 0, []
    for n in read:
        d = n.after.minus(n.before)  # type: ignore[union-attr,arg-type]
        node_rdma = sum(d.get(k, 0) for k in EFA_SOURCE_RDMA)
        rdma += node_rdma
        tx += d.get(EFA_TX, 0)
        errs += sum(d.get(k, 0) for k in EFA_ERRORS)
        per_node.append(f"{n.node} +{_bytes(node_rdma)} over {len(n.after.devices)} EFA ports")  # type: ignore[union-attr]
    sink = 0
    for n in decode:
        if n.before is not None and n.after is not None:
            d = n.after.minus(n.before)
            sink += sum(d.get(k, 0) for k in EFA_SINK_RDMA)
    seen = "; ".join(per_node)
    seen += f"; decode nodes received {_bytes(sink)} by RDMA" if decode else ""
    if nixl_bytes > 0:
        seen += f"; NIXL reported {_bytes(nixl_bytes)} ({rdma / nixl_bytes:.0%} of it left the prefill nodes by RDMA)"
    if errs:
        seen += f"; EFA error counters grew by {errs} ({', '.join(EFA_ERRORS)})"
    seen += "".join(f"; could not read {e}" for e in errors)
    if rdma > 0:
        return Check("efa-rdma", PASS, seen)
    if no_devices and len(no_devices) == len(read):
        look = "the pod sees no EFA device: the pool must have EFA (instance type, disagg:gpuPools[].efa) and the EFA device plugin must run on the node"
    elif tx > 0:
        look = f"EFA carried {_bytes(tx)} but not as RDMA: FI_EFA_USE_DEVICE_RDMA=1 in the engine env, and an instance type with EFA RDMA read"
    else:
        look = (
            "KV did not cross EFA: the engine logs' NIXL backend (nixl-backend), FI_PROVIDER=efa in the engine env, "
            "vpc.amazonaws.com/efa in the pod's resources, prefill and decode in one AZ"
        )
    return Check("efa-rdma", FAIL, seen, expected, look)


@dataclass(frozen=True)
class Report:
    target: Target
    router: str
    checks: tuple[Check, ...]
    probe: StreamResult | None = None
    load: LoadFigures | None = None
    notes: tuple[str, ...] = ()
    forwarded: bool = False  # the router was reached through kubectl port-forward

    def status(self, name: str) -> str | None:
        return next((c.status for c in self.checks if c.name == name), None)

    @property
    def proven(self) -> bool:
        return all(c.status == PASS for c in self.checks if c.required) and not any(c.status == FAIL for c in self.checks)


def render(report: Report) -> str:
    t = report.target
    out = [
        f"ops verify: stack {t.stack}, namespace {t.namespace}, model {t.model}, NIXL backend {t.backend}"
        + (" over EFA" if t.efa else " (no EFA)"),
        f"router: {report.router}"
        + (f" (kubectl port-forward service/{t.router_service} {t.router_port})" if report.forwarded else ""),
    ]
    out += [f"note: {n}" for n in report.notes]
    out.append("")
    width = max(len(c.name) for c in report.checks) if report.checks else 0
    for c in report.checks:
        out.append(f"{c.status:<7} {c.name:<{width}}  {c.seen}")
        if c.status in (FAIL, UNKNOWN):
            if c.expected:
                out.append(f"{'':<7} {'':<{width}}  expected: {c.expected}")
            if c.look_at:
                out.append(f"{'':<7} {'':<{width}}  look at:  {c.look_at}")
    if report.load is not None:
        out += ["", render_load(report.load, forwarded=report.forwarded)]
    out.append("")
    failed = [c.name for c in report.checks if c.status == FAIL or (c.required and c.status != PASS)]
    if report.proven:
        how = "over EFA (NIXL LIBFABRIC, RDMA bytes counted on the prefill nodes)" if t.efa else f"over NIXL {t.backend}; this stack has no EFA, so EFA was not checked"
        out.append(f"KV moved from prefill to decode {how}.")
    elif t.efa and report.status("nixl-transfers") == PASS and report.status("efa-rdma") == FAIL:
        out.append(f"NOT PROVEN: KV moved from prefill to decode, but not over EFA. Failed: {', '.join(failed)}. See {RUNBOOK}.")
    else:
        what = "over EFA" if t.efa else f"over NIXL {t.backend}"
        out.append(f"NOT PROVEN: KV did not move {what}, or it could not be shown. Failed: {', '.join(failed)}. See {RUNBOOK}.")
    return "\n".join(out)


def render_load(f: LoadFigures, *, forwarded: bool = False) -> str:
    if not f.ok:
        return f"load run: {f.requests} requests, none succeeded ({'; '.join(f.errors)})"
    line = (
        f"load run: {f.ok}/{f.requests} requests ok, {f.concurrency} concurrent, {f.wall_seconds:.1f} s: "
        f"TTFT p50 {_secs(f.ttft_p50)} p90 {_secs(f.ttft_p90)}; ITL p50 {_ms(f.itl_p50)} p90 {_ms(f.itl_p90)}"
    )
    if f.output_tokens_per_second is not None:
        line += f"; {f.output_tokens_per_second:.0f} output tokens/s"
    if f.errors:
        line += f"\n  errors: {'; '.join(f.errors)}"
    if forwarded:
        line += "\n  (measured through kubectl port-forward, whose tunnel through the API server adds to every figure; --router-url with the NLB avoids it)"
    return line


# ---- the run ----------------------------------------------------------------------------------------------------------------


class Cluster(Protocol):
    def pods(self, namespace: str, selector: Mapping[str, str]) -> list[Pod]: ...

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str: ...

    def logs(self, namespace: str, pod: str, container: str) -> str: ...


# (url, JSON body, timeout seconds) -> (seconds since the request was sent, raw line) as the lines arrive.
Streamer = Callable[[str, dict, float], Iterator[tuple[float, str]]]


def _one_per_node(pods: list[Pod]) -> list[Pod]:
    seen: dict[str, Pod] = {}
    for p in pods:
        if p.phase == "Running" and p.node and p.node not in seen:
            seen[p.node] = p
    return list(seen.values())


def _scrape(cluster: Cluster, target: Target, pods: list[Pod]) -> tuple[dict[str, NixlTotals], dict[str, str]]:
    out, errors = {}, {}
    for p in pods:
        try:
            out[p.name] = nixl_totals(parse_metrics(cluster.exec(target.namespace, p.name, target.container, target.metrics_command())))
        except Exception as exc:  # noqa: BLE001 - kubectl, HTTP inside the pod and parse errors all end up in the report
            errors[p.name] = _short(str(exc))
    return out, errors


def _efa(cluster: Cluster, target: Target, pod: Pod) -> tuple[EfaCounters | None, str | None]:
    try:
        return parse_efa_counters(cluster.exec(target.namespace, pod.name, target.container, EFA_COUNTERS_COMMAND)), None
    except Exception as exc:  # noqa: BLE001
        return None, _short(str(exc))


def stream_request(stream: Streamer, url: str, body: dict, timeout: float) -> tuple[StreamResult | None, str | None]:
    try:
        return parse_stream(stream(url, body, timeout)), None
    except Exception as exc:  # noqa: BLE001 - HTTP status, connection and timeout errors are what the check reports
        return None, _short(f"{type(exc).__name__}: {exc}")


def run(
    target: Target,
    options: Options,
    cluster: Cluster,
    router: str,
    stream: Streamer,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    nonce: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    notes: tuple[str, ...] = (),
    forwarded: bool = False,
) -> Report:
    checks: list[Check] = []
    pods = {r: cluster.pods(target.namespace, target.role_selectors[r]) for r in ROLES}
    checks.append(check_pods(target, pods))
    if checks[-1].status != PASS:
        return Report(target, router, tuple(checks), notes=notes, forwarded=forwarded)

    endpoints = [p for r in ROLES for p in pods[r] if p.matches(target.endpoint_selectors[r]) and p.ready]
    nodes = {r: _one_per_node(pods[r]) for r in ROLES} if target.efa else {r: [] for r in ROLES}
    before, _ = _scrape(cluster, target, endpoints)
    efa_before = {r: {p.node: _efa(cluster, target, p) for p in nodes[r]} for r in ROLES}

    url = router.rstrip("/") + "/v1/completions"
    probe, transport_error = stream_request(
        stream, url, completion_payload(target.model, prompt(nonce(), options.prompt_tokens), options.max_tokens), options.request_timeout
    )
    checks.append(check_request(probe, transport_error))

    # The engines publish transfer stats with their scheduler steps, a moment after the transfer: poll until the
    # probe's transfers show (or settle_seconds pass).
    deadline = clock() + options.settle_seconds
    while True:
        after, errors = _scrape(cluster, target, endpoints)
        grown = any(t.minus(before.get(p))[0].transfers > 0 for p, t in after.items() if t.present)
        if grown or clock() >= deadline or not (probe and probe.ok):
            break
        sleep(options.poll_seconds)
    efa_after = {r: {p.node: _efa(cluster, target, p) for p in nodes[r]} for r in ROLES}

    if probe is not None and probe.ok:
        checks.append(check_transfers(before, after, errors))
        checks.append(check_failures(before, after, errors))
    else:
        # Not run: the failed request already fails the run.
        skipped = "no request reached the engines"
        checks += [Check("nixl-transfers", SKIP, skipped, required=False), Check("nixl-failures", SKIP, skipped, required=False)]

    logs, log_errors = {}, {}
    for p in (p for r in ROLES for p in pods[r] if p.phase == "Running"):
        try:
            logs[p.name] = parse_engine_log(cluster.logs(target.namespace, p.name, target.container))
        except Exception as exc:  # noqa: BLE001
            log_errors[p.name] = _short(str(exc))
    checks.append(check_backend(target, logs, log_errors))

    def counters(role: str) -> list[NodeCounters]:
        out = []
        for p in nodes[role]:
            (b, be), (a, ae) = efa_before[role][p.node], efa_after[role][p.node]
            out.append(NodeCounters(p.node, p.name, b, a, be or ae))
        return out

    deltas, _ = _delta_by_pod(before, {p: t for p, t in after.items() if t.present})
    if probe is not None and probe.ok:
        checks.append(check_efa(target, counters("prefill"), counters("decode"), sum(d.bytes for d in deltas.values())))
    elif target.efa:
        checks.append(Check("efa-rdma", SKIP, "no request reached the engines", required=False))

    load = None
    if probe is not None and probe.ok and options.load_requests > 0:
        load = load_run(target, options, stream, url, clock=clock, nonce=nonce)
    return Report(target, router, tuple(checks), probe, load, notes, forwarded)


def load_run(target: Target, options: Options, stream: Streamer, url: str, *, clock: Callable[[], float], nonce: Callable[[], str]) -> LoadFigures:
    bodies = [
        completion_payload(target.model, prompt(nonce(), options.load_prompt_tokens), options.load_max_tokens)
        for _ in range(options.load_requests)
    ]

    def one(body: dict) -> StreamResult:
        result, error = stream_request(stream, url, body, options.request_timeout)
        return result if result is not None else StreamResult(ok=False, error=error)

    start = clock()
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
        results = list(pool.map(one, bodies))
    return load_figures(results, concurrency=options.concurrency, wall_seconds=clock() - start)


# ---- formatting ---------------------------------------------------------------------------------------------------------------


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _errors(errors: Mapping[str, str]) -> str:
    return "; ".join(f"{p}: {e}" for p, e in sorted(errors.items())) or "nothing read"


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _rate(nbytes: float, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:.1f} GB/s"


def _secs(s: float | None) -> str:
    return "n/a" if s is None else f"{s:.3f} s"


def _ms(s: float | None) -> str:
    return "n/a" if s is None else f"{s * 1000:.1f} ms"


def _count(n: int | None, what: str) -> str:
    return f"? {what}" if n is None else f"{n} {what}"



# ---- the command ----------------------------------------------------------------------------------------------------------


def load_target(work_dir: Path, stack: str) -> tuple[StackConfig, Target]:
    """The stack's typed config from Pulumi.<stack>.yaml (as `pulumi up` validates it) and what to check. Raises
    ConfigError or OSError."""
    from stacks.render import load

    _, _, cfg = load(Path(work_dir) / f"Pulumi.{stack}.yaml", stack)
    return cfg, Target.from_config(cfg)


def options_of(args: argparse.Namespace) -> Options:
    return Options(
        prompt_tokens=args.prompt_tokens,
        max_tokens=args.max_tokens,
        load_requests=args.load_requests,
        concurrency=args.concurrency,
        load_prompt_tokens=args.load_prompt_tokens,
        load_max_tokens=args.load_max_tokens,
        settle_seconds=args.settle_seconds,
        request_timeout=args.request_timeout,
    )


def command(args: argparse.Namespace) -> int:
    """`python -m ops verify`: 0 proven, 1 not proven, 2 no config or no cluster."""
    from ops import verify_io
    from ops.kube import KubeError
    from stacks.config import ConfigError

    try:
        cfg, target = load_target(Path(args.work_dir), args.stack)
    except (ConfigError, OSError) as err:
        print(f"ops verify: cannot load the config of stack {args.stack}: {err}", file=sys.stderr)
        return 2
    options, notes = options_of(args).fit(target.max_model_len)
    try:
        cluster = verify_io.connect(args.kubeconfig, cfg.cluster_name, cfg.region)
        with verify_io.router(cluster, target, args.router_url) as url:
            forwarded = not args.router_url
            report = run(target, options, cluster, url, verify_io.stream_lines, notes=tuple(notes), forwarded=forwarded)
    except (KubeError, OSError) as err:  # OSError: kubectl or the AWS CLI is not on PATH
        print(f"ops verify: cannot reach stack {args.stack}'s cluster {cfg.cluster_name}: {err}", file=sys.stderr)
        return 2
    print(render(report))
    return 0 if report.proven else 1
