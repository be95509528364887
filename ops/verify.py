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
Those are the checks of a vLLM stack; on a TensorRT-LLM stack (serving.engine.kind tensorrt-llm), which exports no
NIXL counters, ops/verify_trtllm.py reads other evidence for the same question (`Target.engine` picks).

Everything that decides is a pure function: the parsers of each upstream format in ops/verify_formats.py (Prometheus
exposition, engine logs, sysfs counters, the SSE stream), the checks here, all tested against recorded fixtures
(`tests/fixtures/verify/`). The cluster is reached through the small `Cluster` interface (`ops/verify_io.py`
implements it over kubectl) and one `Streamer` (HTTP).

Exit codes: 0 KV moved (over EFA on an EFA stack); 1 it did not, or it could not be shown (each failed check says
what was expected, what was seen and what to look at: docs/runbook.md "ops verify failures"); 2 the stack config
could not be loaded or the cluster could not be reached.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from components.builders.serving.common import endpoint_selector, namespace, role_selector, router_api_key_secret_name, selector_args, served_model_name, workload_name
from facts.conventions import ROLES, ROUTER
from components.builders.serving.engine import engine_for
from components.builders.serving.pods import CONTAINER
from components.builders.serving.router import router_url
from components.builders.serving.trtllm import KIND as TRTLLM
from facts.models import lookup
from ops.verify_formats import (
    EFA_COUNTERS_COMMAND,
    EFA_ERRORS,
    EFA_SINK_RDMA,
    EFA_SOURCE_RDMA,
    EFA_RX,
    EFA_TX,
    NIXL_FAILED_NOTIFICATIONS,
    NIXL_FAILED_TRANSFERS,
    NIXL_KV_EXPIRED,
    NIXL_TRANSFERS,
    BackendLog,
    EfaCounters,
    NixlTotals,
    StreamResult,
    short,
    nixl_totals,
    parse_efa_counters,
    parse_engine_log,
    parse_metrics,
    parse_stream,
    percentile,
)
from stacks.config.stack import StackConfig
from stacks.plan import kv_backend, kv_transfer, plan, role_efa
from stacks.serving_args import serving_spec

RUNBOOK = "docs/runbook.md#ops-verify-failures"

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
    # Disaggregated serving moves KV from prefill to decode; `serving.mode: aggregated` serves whole requests in
    # each replica, so the NIXL and EFA checks have nothing to look at (only the pods and the request are checked).
    kv_moves: bool = True
    # serving.router.apiKey is set: every request carries the key, read from this Secret (key `key`) or from
    # $DISAGG_ROUTER_API_KEY.
    router_api_key_secret: str | None = None
    # serving.engine.kind: the evidence differs by engine (ops/verify_trtllm.py for tensorrt-llm).
    engine: str = "vllm"
    # Whole-model KV bytes per prompt token at one byte per element (FP8 KV, the smallest either engine stores), from
    # the model catalog; None when the catalog does not know the model. The TensorRT-LLM EFA check's lower bound.
    kv_bytes_per_token_min: float | None = None

    @classmethod
    def from_config(cls, cfg: StackConfig) -> Target:
        spec = serving_spec(cfg)
        engine = engine_for(spec)
        p = plan(cfg)
        efa = all(role_efa(cfg, r) for r in ROLES)
        arch = lookup(spec.model.id)
        return cls(
            stack=cfg.name,
            namespace=namespace(spec),
            # trtllm-serve serves the model under the id it was started with (serve/openai_server.py OpenAIServer:
            # `self.model = model` unless it is a local directory; no --served_model_name, rule trtllm-no-served-name).
            model=spec.model.id if spec.engine.kind == TRTLLM else served_model_name(spec),
            router_service=workload_name(spec, ROUTER),
            router_port=spec.router.port,
            router_in_cluster_url=router_url(spec),
            engine_port=engine.port(spec),
            metrics_path=engine.metrics_path,
            container=CONTAINER,
            role_selectors={r: role_selector(spec, r) for r in ROLES},
            endpoint_selectors={r: endpoint_selector(spec, r) for r in ROLES},
            expected_pods={r.role: r.replicas * r.pods_per_replica for r in p.roles},
            # On EFA pools only LIBFABRIC moves KV over EFA (UCX there falls back to TCP), whatever the config says.
            backend="LIBFABRIC" if efa else kv_backend(cfg),
            efa=efa and kv_transfer(cfg),
            max_model_len=cfg.serving.model.max_model_len,
            kv_moves=kv_transfer(cfg),
            router_api_key_secret=router_api_key_secret_name(spec) if spec.router.api_key else None,
            engine=spec.engine.kind,
            kv_bytes_per_token_min=arch.kv_bytes_per_token(1.0) if arch is not None else None,
        )

    def metrics_command(self) -> list[str]:
        """Read the engine's metrics from inside its container: the namespace's NetworkPolicies admit the engine port
        only from the router and the monitoring namespace, so neither the API server proxy nor a debug pod would get
        through, while localhost inside the pod always does. The vLLM image's base stage installs its Python as
        /usr/bin/python3 (vllm docker/Dockerfile, `vllm-base`: update-alternatives ... python3); the engine runs on it.
        The TensorRT-LLM release image runs trtllm-serve on the python3 of its PyTorch base image."""
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
        get = "; ".join(f"kubectl get pods -n {target.namespace} -l {','.join(selector_args(dict(target.role_selectors[r])))} -o wide" for r in missing)
        return Check(
            "pods", FAIL, seen,
            expected=f"at least one Ready {' and '.join(missing)} pod serving HTTP",
            look_at=f"{get}; then the pods' events (kubectl describe pod) and engine logs",
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


def _delta_by_pod(before: Mapping[str, NixlTotals], after: Mapping[str, NixlTotals]) -> tuple[dict[str, NixlTotals], list[str]]:
    """Growth per pod read both times. A pod read only after (its first scrape failed) has no baseline: its whole
    history would pass for growth, so it is left out (and reported as unreadable)."""
    deltas, restarted = {}, []
    for pod, now in after.items():
        if pod not in before:
            continue
        d, reset = now.minus(before[pod])
        deltas[pod] = d
        if reset:
            restarted.append(pod)
    return deltas, restarted


def check_transfers(before: Mapping[str, NixlTotals], after: Mapping[str, NixlTotals], errors: Mapping[str, str]) -> Check:
    expected = f"{NIXL_TRANSFERS} to grow on the decode pods after the long prompt"
    unreadable = "kubectl exec into the engine pods (RBAC pods/exec) and the engine's /metrics"
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
    if total <= 0 and errors:  # the pod that served the request may be one that could not be read
        return Check("nixl-transfers", UNKNOWN, f"+0 transfers on the {len(deltas)} engine pods read twice; " + "; ".join(notes), expected, unreadable)
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


def check_failures(before: Mapping[str, NixlTotals], after: Mapping[str, NixlTotals], errors: Mapping[str, str]) -> Check:
    expected = f"{NIXL_FAILED_TRANSFERS} and {NIXL_FAILED_NOTIFICATIONS} not to grow"
    present = {p: t for p, t in after.items() if t.present}
    deltas, _ = _delta_by_pod(before, present)
    if not deltas:
        return Check("nixl-failures", UNKNOWN, _errors(errors) if errors else "no engine exported vllm:nixl_* series", expected)
    bad = {p: d for p, d in deltas.items() if d.failed_transfers > 0 or d.failed_notifications > 0}
    expired = sum(d.kv_expired for d in deltas.values())
    note = f"; {expired:g} requests' KV expired on prefill pods before decode read it ({NIXL_KV_EXPIRED})" if expired else ""
    if bad:
        seen = ", ".join(f"{p}: +{d.failed_transfers:g} failed transfers, +{d.failed_notifications:g} failed notifications" for p, d in sorted(bad.items()))
        return Check(
            "nixl-failures", FAIL, seen + note, expected,
            "the decode pods' logs (\"NIXL transfer failure: ...\" names the remote host); prefill and decode must run the "
            "same engine image (NIXL checks versions at handshake) and share a zone; EFA errors on the nodes (efa-rdma)",
        )
    return Check("nixl-failures", PASS, f"+0 failed transfers, +0 failed notifications on {len(present)} engine pods{note}")


@dataclass(frozen=True)
class BackendFindings:
    """What the engine pods' logs say of the NIXL backend they created (both engines' nixl-backend check)."""

    wrong: dict[str, list[str]]  # a backend other than the expected one -> the pods that created it
    problems: dict[str, list[str]]  # pod -> its backend error lines
    named: list[str]  # pods whose log names the expected backend
    silent: list[str]  # pods whose log names no backend and no error

    @property
    def failed(self) -> bool:
        return bool(self.wrong or self.problems)

    def failed_parts(self, backend: str, total: int, noun: str) -> list[str]:
        parts = [f"{len(ps)}/{total} {noun} created {b}, not {backend} ({', '.join(sorted(ps))})" for b, ps in sorted(self.wrong.items())]
        return parts + [f"{p}: {lines[0]}" for p, lines in sorted(self.problems.items())]


def backend_findings(logs: Mapping[str, BackendLog], backend: str) -> BackendFindings:
    wrong: dict[str, list[str]] = {}
    for p, log in logs.items():
        for b in sorted(log.backends - {backend}):
            wrong.setdefault(b, []).append(p)
    return BackendFindings(
        wrong,
        {p: log.problems for p, log in logs.items() if log.problems},
        sorted(p for p, log in logs.items() if backend in log.backends),
        sorted(p for p, log in logs.items() if not log.instantiated and not log.problems),
    )


def check_backend(target: Target, logs: Mapping[str, BackendLog], errors: Mapping[str, str]) -> Check:
    expected = f"every engine pod's log names NIXL backend {target.backend} (\"Backend {target.backend} was instantiated\") and no other"
    f = backend_findings(logs, target.backend)
    problems, named, silent = f.problems, f.named, f.silent
    if f.failed:
        parts = f.failed_parts(target.backend, len(logs), "engine pods")
        hints = []
        if f.wrong:
            hints.append(
                "kv_connector_extra_config.backends on the engine command line (disagg:serving.kvTransfer.backend: `auto` "
                "picks LIBFABRIC on EFA pools)"
            )
        if any("missing plugin" in line for lines in problems.values() for line in lines):
            hints.append("the engine image: NIXL's LIBFABRIC plugin needs libfabric.so.1 with the EFA provider and libhwloc.so.15 in it")
        if any("libfabric backend" in line or "No plugins" in line for lines in problems.values() for line in lines):
            hints.append("the pod's vpc.amazonaws.com/efa request, FI_PROVIDER=efa, and `fi_info -p efa -c FI_HMEM` inside the pod")
        hint = "; ".join(hints)
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


@dataclass(frozen=True)
class EfaGrowth:
    """What the EFA counters of a set of nodes did between two reads (both engines' efa-rdma check)."""

    read: list[NodeCounters]  # the nodes read twice
    errors: list[str]  # "<node> (via <pod>): <error>" of the nodes that could not be read
    rdma: int  # growth of the `rdma` counters, summed over `read`
    plain: int  # growth of the one non-RDMA byte counter (tx or rx)
    efa_errors: int  # growth of EFA_ERRORS
    per_node: list[tuple[NodeCounters, int]]  # each node read, with its `rdma` growth

    @property
    def no_devices(self) -> list[str]:
        return [n.node for n in self.read if not n.after.devices]  # type: ignore[union-attr]


def efa_growth(nodes: list[NodeCounters], rdma: tuple[str, ...], plain: str) -> EfaGrowth:
    read = [n for n in nodes if n.before is not None and n.after is not None]
    total, plain_total, errs, per_node = 0, 0, 0, []
    for n in read:
        d = n.after.minus(n.before)  # type: ignore[union-attr,arg-type]
        node_rdma = sum(d.get(k, 0) for k in rdma)
        total += node_rdma
        plain_total += d.get(plain, 0)
        errs += sum(d.get(k, 0) for k in EFA_ERRORS)
        per_node.append((n, node_rdma))
    return EfaGrowth(read, [f"{n.node} (via {n.pod}): {n.error}" for n in nodes if n.error], total, plain_total, errs, per_node)


def check_efa(target: Target, prefill: list[NodeCounters], decode: list[NodeCounters], nixl_bytes: float) -> Check:
    if not target.efa:
        return Check("efa-rdma", SKIP, f"the stack's prefill/decode pods get no EFA devices (NIXL backend {target.backend})", required=False)
    expected = f"EFA RDMA bytes out of the prefill nodes ({' + '.join(EFA_SOURCE_RDMA)}) to grow"
    g = efa_growth(prefill, EFA_SOURCE_RDMA, EFA_TX)
    read, errors, rdma, tx, errs, no_devices = g.read, g.errors, g.rdma, g.plain, g.efa_errors, g.no_devices
    if not read:
        return Check("efa-rdma", UNKNOWN, "; ".join(errors) or "no prefill node read", expected,
                     "kubectl exec into a prefill pod and read /sys/class/infiniband/*/ports/1/hw_counters")
    sink = efa_growth(decode, EFA_SINK_RDMA, EFA_RX).rdma
    seen = "; ".join(f"{n.node} +{_bytes(b)} over {len(n.after.devices)} EFA ports" for n, b in g.per_node)  # type: ignore[union-attr]
    seen += f"; decode nodes received {_bytes(sink)} by RDMA" if decode else ""
    if nixl_bytes > 0:
        seen += f"; NIXL reported {_bytes(nixl_bytes)} ({rdma / nixl_bytes:.0%} of it left the prefill nodes by RDMA)"
    if errs:
        seen += f"; EFA error counters grew by {errs} ({', '.join(EFA_ERRORS)})"
    seen += "".join(f"; could not read {e}" for e in errors)
    if rdma > 0:
        return Check("efa-rdma", PASS, seen)
    if errors:
        return Check("efa-rdma", UNKNOWN, seen, expected, "the prefill nodes that could not be read may be the ones that served the request")
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


def _render_checks(report: Report) -> list[str]:
    """The notes, one line per check (with expected and look-at under a failure), the load run; ends with a blank."""
    out = [f"note: {n}" for n in report.notes]
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
    return out


def failed_checks(report: Report) -> list[str]:
    return [c.name for c in report.checks if c.status == FAIL or (c.required and c.status != PASS)]


def render(report: Report) -> str:
    t = report.target
    if t.engine == TRTLLM and t.kv_moves:
        from ops.verify_trtllm import render_trtllm

        return render_trtllm(report)
    out = [
        f"ops verify: stack {t.stack}, namespace {t.namespace}, model {t.model}, "
        + (f"NIXL backend {t.backend}" + (" over EFA" if t.efa else " (no EFA)") if t.kv_moves else "aggregated serving (no KV transfer)"),
        f"router: {report.router}"
        + (f" (kubectl port-forward service/{t.router_service} {t.router_port})" if report.forwarded else ""),
    ]
    out += _render_checks(report)
    failed = failed_checks(report)
    if not t.kv_moves:
        if report.proven:
            out.append("The router served the model (aggregated serving: no KV transfer to prove).")
        else:
            out.append(f"NOT PROVEN: the router did not serve the model. Failed: {', '.join(failed)}. See {RUNBOOK}.")
    elif report.proven:
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

    def secret_value(self, namespace: str, name: str, key: str) -> str: ...

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
            errors[p.name] = short(str(exc))
    return out, errors


def _efa(cluster: Cluster, target: Target, pod: Pod) -> tuple[EfaCounters | None, str | None]:
    try:
        return parse_efa_counters(cluster.exec(target.namespace, pod.name, target.container, EFA_COUNTERS_COMMAND)), None
    except Exception as exc:  # noqa: BLE001
        return None, short(str(exc))


def stream_request(stream: Streamer, url: str, body: dict, timeout: float) -> tuple[StreamResult | None, str | None]:
    try:
        return parse_stream(stream(url, body, timeout)), None
    except Exception as exc:  # noqa: BLE001 - HTTP status, connection and timeout errors are what the check reports
        return None, short(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Around:
    """The probe request and what was read around it (both engines' run): the engines' totals before and after, and
    the EFA counters of one pod per node and role."""

    url: str
    probe: StreamResult | None
    transport_error: str | None
    before: dict
    before_errors: dict[str, str]
    after: dict
    errors: dict[str, str]
    nodes: dict[str, list[Pod]]
    efa_before: dict
    efa_after: dict

    @property
    def ok(self) -> bool:
        return self.probe is not None and self.probe.ok

    @property
    def unread(self) -> dict[str, str]:
        return {**{p: f"before the request: {e}" for p, e in self.before_errors.items()}, **self.errors}

    def counters(self, role: str) -> list[NodeCounters]:
        out = []
        for p in self.nodes[role]:
            (b, be), (a, ae) = self.efa_before[role][p.node], self.efa_after[role][p.node]
            out.append(NodeCounters(p.node, p.name, b, a, be or ae))
        return out


def probe_around(
    target: Target,
    options: Options,
    cluster: Cluster,
    router: str,
    stream: Streamer,
    pods: Mapping[str, list[Pod]],
    scrape: Callable[[list[Pod]], tuple[dict, dict[str, str]]],
    serving: list[Pod],
    shown: Callable[[dict, dict], bool],
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    nonce: Callable[[], str],
) -> Around:
    """Read `serving`'s totals and the nodes' EFA counters, send the probe, then poll until `shown(before, after)`
    says the probe shows in the totals (or settle_seconds pass, or the request failed), and read both again."""
    nodes = {r: _one_per_node(pods[r]) for r in ROLES} if target.efa else {r: [] for r in ROLES}
    before, before_errors = scrape(serving)
    efa_before = {r: {p.node: _efa(cluster, target, p) for p in nodes[r]} for r in ROLES}

    url = router.rstrip("/") + "/v1/completions"
    probe, transport_error = stream_request(
        stream, url, completion_payload(target.model, prompt(nonce(), options.prompt_tokens), options.max_tokens), options.request_timeout
    )
    deadline = clock() + options.settle_seconds
    while True:
        after, errors = scrape(serving)
        if shown(before, after) or clock() >= deadline or not (probe and probe.ok):
            break
        sleep(options.poll_seconds)
    efa_after = {r: {p.node: _efa(cluster, target, p) for p in nodes[r]} for r in ROLES}
    return Around(url, probe, transport_error, before, before_errors, after, errors, nodes, efa_before, efa_after)


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

    if not target.kv_moves:
        return _run_aggregated(target, options, router, stream, checks, clock=clock, nonce=nonce, notes=notes, forwarded=forwarded)
    if target.engine == TRTLLM:
        from ops.verify_trtllm import run_trtllm

        return run_trtllm(target, options, cluster, router, stream, checks, pods, sleep=sleep, clock=clock, nonce=nonce, notes=notes, forwarded=forwarded)

    endpoints = [p for r in ROLES for p in pods[r] if p.matches(target.endpoint_selectors[r]) and p.ready]
    # The engines publish transfer stats with their scheduler steps, a moment after the transfer: poll until the
    # probe's transfers show (or settle_seconds pass).
    a = probe_around(
        target, options, cluster, router, stream, pods, lambda ps: _scrape(cluster, target, ps), endpoints,
        lambda before, after: any(d.transfers > 0 for d in _delta_by_pod(before, after)[0].values()),
        sleep=sleep, clock=clock, nonce=nonce,
    )
    probe, before, after = a.probe, a.before, a.after
    checks.append(check_request(probe, a.transport_error))

    if a.ok:
        checks.append(check_transfers(before, after, a.unread))
        checks.append(check_failures(before, after, a.unread))
    else:
        # Not run: the failed request already fails the run.
        skipped = "no request reached the engines"
        checks += [Check("nixl-transfers", SKIP, skipped, required=False), Check("nixl-failures", SKIP, skipped, required=False)]

    logs, log_errors = {}, {}
    for p in (p for r in ROLES for p in pods[r] if p.phase == "Running"):
        try:
            logs[p.name] = parse_engine_log(cluster.logs(target.namespace, p.name, target.container))
        except Exception as exc:  # noqa: BLE001
            log_errors[p.name] = short(str(exc))
    checks.append(check_backend(target, logs, log_errors))

    deltas, _ = _delta_by_pod(before, {p: t for p, t in after.items() if t.present})
    if a.ok:
        checks.append(check_efa(target, a.counters("prefill"), a.counters("decode"), sum(d.bytes for d in deltas.values())))
    elif target.efa:
        checks.append(Check("efa-rdma", SKIP, "no request reached the engines", required=False))

    load = load_run(target, options, stream, a.url, clock=clock, nonce=nonce) if a.ok and options.load_requests > 0 else None
    return Report(target, router, tuple(checks), probe, load, notes, forwarded)


AGGREGATED = "serving.mode is aggregated: each replica serves whole requests and no KV moves between pods"
KV_CHECKS = ("nixl-transfers", "nixl-failures", "nixl-backend", "efa-rdma")


def _run_aggregated(
    target: Target, options: Options, router: str, stream: Streamer, checks: list[Check], *,
    clock: Callable[[], float], nonce: Callable[[], str], notes: tuple[str, ...], forwarded: bool,
) -> Report:
    """An aggregated stack: the request and the load run are what can be shown; the KV checks are not applicable."""
    url = router.rstrip("/") + "/v1/completions"
    probe, transport_error = stream_request(
        stream, url, completion_payload(target.model, prompt(nonce(), options.prompt_tokens), options.max_tokens), options.request_timeout
    )
    checks.append(check_request(probe, transport_error))
    checks += [Check(name, SKIP, AGGREGATED, required=False) for name in KV_CHECKS]
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
    from tooling.render import load

    _, _, cfg = load(Path(work_dir) / f"Pulumi.{stack}.yaml", stack)
    return cfg, Target.from_config(cfg)


ROUTER_API_KEY_ENV = "DISAGG_ROUTER_API_KEY"


def router_api_key(target: Target, cluster, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key the router's auth gate asks for (serving.router.apiKey): $DISAGG_ROUTER_API_KEY, else the stack's
    Secret through the cluster (the operator's kubeconfig reads it; the offline config holds only `secure:`)."""
    if target.router_api_key_secret is None:
        return None
    if environ.get(ROUTER_API_KEY_ENV):
        return environ[ROUTER_API_KEY_ENV]
    return cluster.secret_value(target.namespace, target.router_api_key_secret, "key")


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
        key = router_api_key(target, cluster)
        stream = verify_io.stream_lines if key is None else functools.partial(verify_io.stream_lines, api_key=key)
        with verify_io.router(cluster, target, args.router_url) as url:
            forwarded = not args.router_url
            report = run(target, options, cluster, url, stream, notes=tuple(notes), forwarded=forwarded)
    except (KubeError, OSError) as err:  # OSError: kubectl or the AWS CLI is not on PATH
        print(f"ops verify: cannot reach stack {args.stack}'s cluster {cfg.cluster_name}: {err}", file=sys.stderr)
        return 2
    print(render(report))
    return 0 if report.proven else 1
