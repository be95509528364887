"""`ops verify` on a TensorRT-LLM stack (serving.engine.kind tensorrt-llm): the same question, other evidence.

TensorRT-LLM 1.2.1 serves prefill as context servers and decode as generation servers behind the `trtllm-serve
disaggregated` orchestrator (components/builders/serving/trtllm.py). It exports no NIXL transfer counters (its metrics
are per request, tensorrt_llm/metrics/collector.py), so the vLLM checks nixl-transfers and nixl-failures have nothing
to read and are SKIPped with that reason. In their place:

  pods          as for vLLM: context and generation pods that serve HTTP are there and Ready
  request       the long prompt was answered through the orchestrator (streamed)
  disagg-path   trtllm_request_success_total grew on a context server AND on a generation server: the orchestrator
                ran the probe's context phase on one and its generation phase on the other, so its KV had to move
  nixl-backend  every context and generation server logged the NIXL backend the stack asks for (LIBFABRIC on EFA)
  efa-rdma      the EFA RDMA bytes received on the generation servers' nodes grew by at least half of the probe's
                KV at one byte per element (the smallest KV either engine stores): with no KV byte counter to
                compare with, the probe's prompt tokens (from the stream's usage) times the model's KV bytes per
                token (facts/models.py) are the yardstick. Background traffic can only add to the counters, so a
                busy stack can pass without the probe's KV; run it on an idle one to be sure.

Everything that decides is a pure function, tested against tests/fixtures/verify/trtllm.
"""

from __future__ import annotations

from typing import Callable, Mapping

from components.builders.serving.trtllm import SERVER_ROLE
from facts.conventions import ROLES
from ops.verify import (
    FAIL,
    PASS,
    RUNBOOK,
    SKIP,
    UNKNOWN,
    Check,
    Cluster,
    NodeCounters,
    Options,
    Pod,
    Report,
    Streamer,
    Target,
    _bytes,
    _delta_by_pod,
    efa_growth,
    _render_checks,
    backend_findings,
    check_request,
    failed_checks,
    load_run,
    probe_around,
)
from ops.verify_formats import (
    EFA_ERRORS,
    EFA_RX,
    EFA_SINK_RDMA,
    EFA_SOURCE_RDMA,
    EFA_TX,
    TRTLLM_REQUEST_SUCCESS,
    BackendLog,
    RequestTotals,
    parse_metrics,
    parse_trtllm_log,
    short,
    trtllm_totals,
)

ENGINE = "TensorRT-LLM"
NO_NIXL_COUNTERS = (
    "TensorRT-LLM 1.2.1 exports no NIXL transfer counters (tensorrt_llm/metrics/collector.py: per-request metrics "
    "only); disagg-path and efa-rdma stand in"
)


def _server(role: str) -> str:
    return f"{SERVER_ROLE[role]} servers ({role})"


def _scrape(cluster: Cluster, target: Target, pods: list[Pod]) -> tuple[dict[str, RequestTotals], dict[str, str]]:
    out, errors = {}, {}
    for p in pods:
        try:
            out[p.name] = trtllm_totals(parse_metrics(cluster.exec(target.namespace, p.name, target.container, target.metrics_command())))
        except Exception as exc:  # noqa: BLE001 - kubectl, HTTP inside the pod and parse errors all end up in the report
            errors[p.name] = short(str(exc))
    return out, errors


def _grew(deltas: Mapping[str, RequestTotals], pods: list[Pod]) -> dict[str, float]:
    return {p.name: deltas[p.name].success for p in pods if p.name in deltas and deltas[p.name].success > 0}


def check_disagg_path(
    endpoints: Mapping[str, list[Pod]], before: Mapping[str, RequestTotals], after: Mapping[str, RequestTotals], errors: Mapping[str, str]
) -> Check:
    expected = (
        f"{TRTLLM_REQUEST_SUCCESS} to grow on at least one context server and one generation server: the orchestrator "
        "runs each request's context phase on a context server and its generation phase on a generation server"
    )
    unreadable = "kubectl exec into the engine pods (RBAC pods/exec) and the server's /prometheus/metrics"
    absent = sorted(p for p, t in after.items() if not t.present)
    if absent and len(absent) == len(after):
        return Check(
            "disagg-path", FAIL, f"no {TRTLLM_REQUEST_SUCCESS} on any server ({', '.join(absent)})", expected,
            "the servers export it only with `return_perf_metrics: true` in their LLM API options (the role's "
            "ConfigMap, --extra_llm_api_options) and at /prometheus/metrics",
        )
    deltas, restarted = _delta_by_pod(before, {p: t for p, t in after.items() if t.present})
    grew = {r: _grew(deltas, endpoints.get(r, [])) for r in ROLES}
    parts = []
    for r in ROLES:
        if grew[r]:
            parts.append(f"{_server(r)}: " + ", ".join(f"{p} +{n:g}" for p, n in sorted(grew[r].items())))
        else:
            read = sum(1 for p in endpoints.get(r, []) if p.name in deltas)
            parts.append(f"{_server(r)}: +0 on the {read} read twice")
    notes = [f"restarted during the check: {', '.join(sorted(restarted))}"] if restarted else []
    notes += [f"could not read {p}: {e}" for p, e in sorted(errors.items())]
    seen = "; ".join(parts + notes)
    missing = [r for r in ROLES if not grew[r]]
    if not missing:
        return Check("disagg-path", PASS, seen)
    role_pods = {r: {p.name for p in endpoints.get(r, [])} for r in ROLES}
    if any(role_pods[r] & set(errors) for r in missing):  # the server that served it may be one that could not be read
        return Check("disagg-path", UNKNOWN, seen, expected, unreadable)
    if missing == ["prefill"]:
        look = (
            "the generation server answered without a context phase: the orchestrator's log (kubectl logs "
            "deploy/<router>) counts the servers it found in its discovery store (\"Worker CONTEXT-... becomes "
            "active/updated, current context worker: n/m\"); each context server logs \"Worker CONTEXT-<ip>:<port>-... "
            "registration successful\" (tensorrt_llm/serve/disagg_auto_scaling.py); a prompt the orchestrator serves "
            "generation-only (conditional disaggregation) moves no KV"
        )
    elif missing == ["decode"]:
        look = (
            "the context phase ran but no generation server finished the request: the generation servers' logs and "
            "the orchestrator's log (a KV transfer that failed or timed out)"
        )
    else:
        look = "the orchestrator's log (kubectl logs deploy/<router>): it must find both roles in its discovery store (etcd)"
    return Check("disagg-path", FAIL, seen, expected, look)


def check_backend(target: Target, logs: Mapping[str, BackendLog], errors: Mapping[str, str]) -> Check:
    line = f"NixlTransferAgent::NixlTransferAgent using NIXL backend: {target.backend}"
    expected = f"every context and generation server's log names NIXL backend {target.backend} (\"{line}\") and no other"
    f = backend_findings(logs, target.backend)
    problems, named, silent = f.problems, f.named, f.silent
    if f.failed:
        parts = f.failed_parts(target.backend, len(logs), "servers")
        hints = [
            f"TRTLLM_NIXL_KVCACHE_BACKEND in the engine env must be {target.backend} (disagg:serving.kvTransfer.backend: "
            "`auto` picks LIBFABRIC on EFA pools; the name is case-sensitive, anything else falls back to UCX)"
        ]
        if any("Failed to create NIXL backend" in line for lines in problems.values() for line in lines):
            hints.append(
                "the engine image: NIXL's LIBFABRIC plugin (/opt/nvidia/nvda_nixl/lib/*/plugins) needs the EFA libfabric "
                "of images/tensorrt-llm-efa; `fi_info -p efa -c FI_HMEM` inside the pod"
            )
        return Check("nixl-backend", FAIL, "; ".join(parts), expected, "; ".join(hints), required=False)
    notes = [f"could not read {p}: {e}" for p, e in sorted(errors.items())]
    if silent:
        notes.append(
            f"no backend line in {', '.join(silent)} (it is an INFO line: TLLM_LOG_LEVEL above info hides it; the "
            "kubelet keeps only the newest log, so startup lines rotate out after containerLogMaxSize, 10Mi by default)"
        )
    if not named:
        return Check("nixl-backend", UNKNOWN, "; ".join(notes) or "no server logs read", expected,
                     "kubectl logs of a freshly started context or generation pod", required=False)
    agents = sum(logs[p].instantiated.count(target.backend) for p in named)
    seen = f"{target.backend} in {len(named)}/{len(logs)} servers ({agents} NIXL agents)" + "".join(f"; {n}" for n in notes)
    return Check("nixl-backend", PASS, seen, required=False)


def kv_floor(target: Target, prompt_tokens: int | None) -> float | None:
    """The least the probe's KV can weigh on the wire: half of prompt tokens x KV bytes per token at one byte per
    element. None when the prompt's token count (the stream's usage) or the model's shape (the catalog) is unknown."""
    if not prompt_tokens or not target.kv_bytes_per_token_min:
        return None
    return prompt_tokens * target.kv_bytes_per_token_min / 2


def check_efa(target: Target, context: list[NodeCounters], generation: list[NodeCounters], prompt_tokens: int | None) -> Check:
    if not target.efa:
        return Check("efa-rdma", SKIP, f"the stack's context/generation pods get no EFA devices (NIXL backend {target.backend})", required=False)
    floor = kv_floor(target, prompt_tokens)
    into = f"EFA RDMA bytes into the generation servers' nodes ({' + '.join(EFA_SINK_RDMA)})"
    if floor is not None:
        criterion = (
            f"{into} to grow by at least {_bytes(floor)}: half of the probe's KV ({prompt_tokens} prompt tokens x "
            f"{target.kv_bytes_per_token_min:.0f} bytes per token at one byte per element), as TensorRT-LLM 1.2.1 "
            "counts no KV bytes to compare with"
        )
    else:
        criterion = f"{into} to grow (the probe's KV size is unknown: no usage in the stream, or a model the catalog does not know)"
    g = efa_growth(generation, EFA_SINK_RDMA, EFA_RX)
    read, errors, rdma, rx, errs, no_devices = g.read, g.errors, g.rdma, g.plain, g.efa_errors, g.no_devices
    if not read:
        return Check("efa-rdma", UNKNOWN, "; ".join(errors) or "no generation node read", criterion,
                     "kubectl exec into a generation pod and read /sys/class/infiniband/*/ports/1/hw_counters")
    source = efa_growth(context, EFA_SOURCE_RDMA, EFA_TX).rdma
    seen = "; ".join(f"{n.node} +{_bytes(b)} received by RDMA over {len(n.after.devices)} EFA ports" for n, b in g.per_node)  # type: ignore[union-attr]
    seen += f"; context nodes sent {_bytes(source)} by RDMA" if context else ""
    if floor is not None:
        seen += f"; the probe's KV at one byte per element: {_bytes(floor * 2)} (RDMA brought {rdma / (floor * 2):.0%} of it)"
    if errs:
        seen += f"; EFA error counters grew by {errs} ({', '.join(EFA_ERRORS)})"
    seen += "".join(f"; could not read {e}" for e in errors)
    if rdma > 0 and (floor is None or rdma >= floor):
        return Check("efa-rdma", PASS, seen)
    if errors:
        return Check("efa-rdma", UNKNOWN, seen, criterion, "the generation nodes that could not be read may be the ones that served the request")
    if rdma > 0:
        look = (
            "part of the KV went another way (UCX over TCP?): nixl-backend, TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC on "
            "both roles, and the probe's prompt tokens against the model's KV size"
        )
    elif no_devices and len(no_devices) == len(read):
        look = "the pod sees no EFA device: the pool must have EFA (instance type, disagg:gpuPools[].efa) and the EFA device plugin must run on the node"
    elif rx > 0:
        look = f"EFA carried {_bytes(rx)} into the nodes but not as RDMA: an instance type with EFA RDMA, and the NIXL LIBFABRIC backend (nixl-backend)"
    else:
        look = (
            "KV did not cross EFA: the servers' NIXL backend (nixl-backend; TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC in the "
            "engine env), vpc.amazonaws.com/efa in the pod's resources, context and generation servers in one AZ"
        )
    return Check("efa-rdma", FAIL, seen, criterion, look)


def run_trtllm(
    target: Target,
    options: Options,
    cluster: Cluster,
    router: str,
    stream: Streamer,
    checks: list[Check],
    pods: Mapping[str, list[Pod]],
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    nonce: Callable[[], str],
    notes: tuple[str, ...],
    forwarded: bool,
) -> Report:
    """After `pods` passed: the probe through the orchestrator, read around it."""
    endpoints = {r: [p for p in pods[r] if p.matches(target.endpoint_selectors[r]) and p.ready] for r in ROLES}
    serving = [p for r in ROLES for p in endpoints[r]]
    # A server logs a request's metrics once it has returned the response: poll until both roles show the probe.
    a = probe_around(
        target, options, cluster, router, stream, pods, lambda ps: _scrape(cluster, target, ps), serving,
        lambda before, after: all(_grew(_delta_by_pod(before, {p: t for p, t in after.items() if t.present})[0], endpoints[r]) for r in ROLES),
        sleep=sleep, clock=clock, nonce=nonce,
    )
    probe, before, after = a.probe, a.before, a.after
    checks.append(check_request(probe, a.transport_error))

    ok = a.ok
    if ok:
        checks.append(check_disagg_path(endpoints, before, after, a.unread))
    else:
        checks.append(Check("disagg-path", SKIP, "no request reached the servers", required=False))
    checks += [Check("nixl-transfers", SKIP, NO_NIXL_COUNTERS, required=False), Check("nixl-failures", SKIP, NO_NIXL_COUNTERS, required=False)]

    # The servers that run HTTP: a multi-node group's ranks all write through its leader's mpirun, so a worker pod's
    # own log has none of their lines.
    logs, log_errors = {}, {}
    for p in (p for p in serving if p.phase == "Running"):
        try:
            logs[p.name] = parse_trtllm_log(cluster.logs(target.namespace, p.name, target.container))
        except Exception as exc:  # noqa: BLE001
            log_errors[p.name] = short(str(exc))
    checks.append(check_backend(target, logs, log_errors))

    if ok:
        checks.append(check_efa(target, a.counters("prefill"), a.counters("decode"), probe.prompt_tokens if probe else None))
    elif target.efa:
        checks.append(Check("efa-rdma", SKIP, "no request reached the servers", required=False))

    load = load_run(target, options, stream, a.url, clock=clock, nonce=nonce) if ok and options.load_requests > 0 else None
    return Report(target, router, tuple(checks), probe, load, notes, forwarded)


def render_trtllm(report: Report) -> str:
    t = report.target
    out = [
        f"ops verify: stack {t.stack}, engine {ENGINE}, namespace {t.namespace}, model {t.model}, "
        + f"NIXL backend {t.backend}" + (" over EFA" if t.efa else " (no EFA)"),
        f"router: {report.router} (trtllm-serve disaggregated)"
        + (f" (kubectl port-forward service/{t.router_service} {t.router_port})" if report.forwarded else ""),
    ]
    out += _render_checks(report)
    failed = failed_checks(report)
    if report.proven:
        if t.efa:
            out.append(f"KV moved from a context server to a generation server over EFA ({ENGINE}, NIXL LIBFABRIC, RDMA bytes counted on the generation nodes).")
        else:
            out.append(f"KV moved from a context server to a generation server over NIXL {t.backend} ({ENGINE}); this stack has no EFA, so EFA was not checked.")
    elif t.efa and report.status("disagg-path") == PASS and report.status("efa-rdma") == FAIL:
        out.append(f"NOT PROVEN: {ENGINE} ran the request on a context and a generation server, but its KV did not cross EFA. Failed: {', '.join(failed)}. See {RUNBOOK}.")
    else:
        what = "over EFA" if t.efa else f"over NIXL {t.backend}"
        out.append(f"NOT PROVEN: KV did not move from a context to a generation server {what} ({ENGINE}), or it could not be shown. Failed: {', '.join(failed)}. See {RUNBOOK}.")
    return "\n".join(out)
