"""The sizing of a rendered stack: per role, what the planner's models predict for the configured replicas.

Used by the render's summary (tooling/summary.py). The workload comes from the `disagg.io/sized-for` tag that
`python -m tooling.sizing plan` writes (stackfile.SIZED_FOR_TAG); without it the summary shows only what needs no
workload (KV capacity, weights per GPU) and says how to add one. Nothing is predicted for a model outside the
catalog or a GPU without calibrated kernels: the reason is reported instead of a number.
"""

from __future__ import annotations

import math
from typing import Any

from facts.catalog import instance_type
from stacks.config.stack import StackConfig
from stacks.plan import role_plan
from facts.conventions import ROLES
from tooling.sizing import perf, serving
from tooling.sizing.fits import calibration, system_of_gpu
from tooling.sizing.gpus import efa_gbps_per_interface
from facts.models import lookup
from tooling.sizing.stackfile import SIZED_FOR_TAG, parse_sized_for


def _kv_dtype(cfg: StackConfig, role: str) -> str:
    args = [*cfg.serving.engine.extra_args, *cfg.serving.role(role).extra_args]
    for i, a in enumerate(args):
        value = a.split("=", 1)[1] if a.startswith("--kv-cache-dtype=") else (args[i + 1] if a == "--kv-cache-dtype" and i + 1 < len(args) else None)
        if value is not None:
            return "fp8" if value.startswith("fp8") else "bf16"
    return "bf16"


def _weights(cfg: StackConfig, arch, hint: str | None) -> str | None:
    dtype = cfg.serving.model.weight_dtype
    if dtype in ("bf16", "fp16"):
        return "bf16"
    if dtype == "fp8":
        return hint if hint in ("fp8", "fp8_block") else "fp8"
    if dtype == "fp4" and arch.is_moe:
        return "mxfp4"
    return None


def _num(x: float, nd: int = 2) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(x, nd)


def role_sizing(cfg: StackConfig) -> dict[str, Any]:
    """Predictions per role for the stack as configured (see the module docstring)."""
    out: dict[str, Any] = {"predicted": False, "roles": {}}
    model_id = cfg.serving.model.id
    arch = lookup(model_id)
    if arch is None:
        out["reason"] = f"{model_id} is not in the sizing catalog (python -m tooling.sizing models)"
        return out
    weights = _weights(cfg, arch, arch.default_format(model_id))
    if weights is None:
        out["reason"] = f"weightDtype {cfg.serving.model.weight_dtype} has no kernel model"
        return out
    tag = cfg.tags.get(SIZED_FOR_TAG)
    workload = None
    if tag:
        try:
            workload = parse_sized_for(tag)
        except ValueError as exc:
            out["workload_error"] = f"tag {SIZED_FOR_TAG} = {tag!r}: {exc}"
    cal = calibration()
    shapes, fits, plans = {}, {}, {}
    for role in ROLES:
        rp = role_plan(cfg, role)
        it = instance_type(rp.instance_type)
        system = system_of_gpu(it.gpu_model)
        if system is None:
            out["reason"] = f"{role} runs on {it.gpu_model} ({it.name}), which has no calibrated kernels (H100, H200)"
            return out
        shape = perf.Shape(
            model=arch, system=system, weights=weights, kv=_kv_dtype(cfg, role), tp=rp.tensor_parallel, pp=rp.pipeline_parallel,
            gpus_per_node=it.gpus, engine=cfg.serving.engine.kind,
        )
        try:
            fit = perf.memory_fit(shape, it.gpu_memory_gib, cfg.serving.engine.gpu_memory_utilization)
        except perf.Infeasible as exc:
            out["reason"] = f"{role}: {exc}"
            return out
        shapes[role], fits[role], plans[role] = shape, fit, rp
        out["roles"][role] = {
            "replicas": rp.replicas,
            "weights_gib_per_gpu": round(fit.weights_bytes / perf.GIB, 2),
            "kv_tokens_per_replica": fit.kv_tokens,
            "kv_bytes_per_token_per_gpu": fit.kv_bytes_per_token,
            "kv_dtype": shape.kv,
            "notes": list(fit.notes),
        }
    out["model"] = arch.key
    out["weights"] = weights
    if workload is None:
        out["reason"] = f"no workload: add the tag {SIZED_FOR_TAG} (python -m tooling.sizing plan writes it)"
        return out
    isl, osl, rate = workload["isl"], workload["osl"], workload["rate"]
    pct = workload.get("p", 90.0)
    tail = workload.get("isl-tail")
    sp, sd = shapes["prefill"], shapes["decode"]
    pre = serving.prefill_point(cal, sp, isl, rate, plans["prefill"].replicas, pct, tail)
    dec = serving.decode_point(cal, sd, fits["decode"], isl, osl, rate, plans["decode"].replicas, pct)
    it_p, it_d = instance_type(plans["prefill"].instance_type), instance_type(plans["decode"].instance_type)
    gbps_p = plans["prefill"].efa_per_pod * efa_gbps_per_interface(it_p.name, it_p.efa_interfaces)
    gbps_d = plans["decode"].efa_per_pod * efa_gbps_per_interface(it_d.name, it_d.efa_interfaces)
    xfer = serving.kv_transfer(sp, sd, tail or isl, gbps_p, gbps_d, rate / plans["prefill"].replicas)
    first = perf.decode_step_ms(cal, sd, max(1, math.ceil(dec.batch)) if dec.feasible else 1, isl)
    out_mtok_h = rate * osl * 3600 / 1e6
    # What the role's pools cost (every node provisioned, used or not).
    costs = {r: sum(p.nodes for p in cfg.pools_for(r)) * instance_type(plans[r].instance_type).on_demand_usd_per_hour for r in ROLES}
    pre_kv_need = max(1, sp.max_batched_tokens // max(isl, 1)) * isl
    out["predicted"] = True
    out["workload"] = {"isl": isl, "osl": osl, "rate": rate, "ttft_ms": workload["ttft-ms"], "itl_ms": workload["itl-ms"], "percentile": pct, "isl_tail": tail}
    out["kv_transfer"] = {
        "bytes_per_request": round(xfer.bytes_per_request),
        "ms": _num(xfer.ms, 2),
        "pod_gbps": xfer.pod_gbps,
        "share_of_ttft_slo": _num(xfer.ms / workload["ttft-ms"], 4),
        "load_gbps_per_prefill_pod": _num(xfer.load_gbps, 2),
    }
    out["roles"]["prefill"].update(
        {
            "ttft_p_ms": _num(pre.ttft_p_ms + xfer.ms + first, 1),
            "ttft_mean_ms": _num(pre.ttft_mean_ms + xfer.ms + first, 1),
            "utilisation": _num(pre.rho, 3),
            "kv_headroom": _num(1 - pre_kv_need / fits["prefill"].kv_tokens, 3),
            "usd_per_mtok": _num(costs["prefill"] / out_mtok_h, 3),
        }
    )
    out["roles"]["decode"].update(
        {
            "itl_p_ms": _num(dec.itl_p_ms, 2),
            "itl_mean_ms": _num(dec.itl_mean_ms, 2),
            "sequences_per_replica": _num(dec.batch, 1),
            "kv_headroom": _num(1 - dec.kv_tokens_needed / fits["decode"].kv_tokens, 3),
            "usd_per_mtok": _num(costs["decode"] / out_mtok_h, 3),
        }
    )
    out["usd_per_mtok"] = _num(sum(costs.values()) / out_mtok_h, 3)
    out["meets_slo"] = bool(
        pre.ttft_p_ms + xfer.ms + first <= workload["ttft-ms"] and dec.feasible and dec.itl_p_ms <= workload["itl-ms"]
    )
    return out


def markdown(s: dict[str, Any]) -> list[str]:
    """The summary.md section."""
    lines = ["## Sizing (predicted)", ""]
    roles = s.get("roles") or {}
    if not s.get("predicted"):
        lines.append(f"No latency prediction: {s.get('reason', 'unknown')}.")
        if s.get("workload_error"):
            lines.append(f"The workload tag could not be read: {s['workload_error']}.")
        if roles:
            lines += ["", "| role | weights/GPU | KV cache per replica |", "|---|---|---|"]
            for name, r in roles.items():
                lines.append(f"| {name} | {r['weights_gib_per_gpu']:.1f} GiB | {r['kv_tokens_per_replica']:,} tokens ({r['kv_dtype']}) |")
        return lines + [""]
    w = s["workload"]
    pct = f"p{w['percentile']:g}"
    tail = f" (p{w['percentile']:g} prompt {w['isl_tail']})" if w.get("isl_tail") else ""
    verdict = "meet" if s["meets_slo"] else "**miss**"
    x = s["kv_transfer"]
    lines += [
        f"Sized for ISL/OSL {w['isl']}/{w['osl']}{tail} at {w['rate']:g} req/s, SLO {pct} TTFT <= {w['ttft_ms']:g} ms and "
        f"ITL <= {w['itl_ms']:g} ms: the configured replicas {verdict} them. Predictions of the calibrated model "
        "(docs/sizing.md), not measurements.",
        "",
        f"| role | replicas | TTFT {pct} (mean) | ITL {pct} (mean) | sequences/replica | KV cache/replica | KV headroom | $/Mtok out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    p, d = roles["prefill"], roles["decode"]

    def ms(v):
        return "-" if v is None else f"{v:,.1f} ms"

    def pc(v):
        return "-" if v is None else f"{v * 100:.0f}%"

    lines.append(
        f"| prefill | {p['replicas']} | {ms(p['ttft_p_ms'])} ({ms(p['ttft_mean_ms'])}) | - | - | "
        f"{p['kv_tokens_per_replica']:,} tokens | {pc(p['kv_headroom'])} | {p['usd_per_mtok']:.2f} |"
    )
    lines.append(
        f"| decode | {d['replicas']} | - | {ms(d['itl_p_ms'])} ({ms(d['itl_mean_ms'])}) | "
        f"{d['sequences_per_replica'] if d['sequences_per_replica'] is not None else '-'} | {d['kv_tokens_per_replica']:,} tokens | "
        f"{pc(d['kv_headroom'])} | {d['usd_per_mtok']:.2f} |"
    )
    lines += [
        "",
        f"TTFT includes the KV transfer: {x['bytes_per_request'] / 1e6:,.0f} MB per request in {x['ms']:.1f} ms over the pods' "
        f"{x['pod_gbps']:,.0f} Gbps EFA share ({pc(x['share_of_ttft_slo'])} of the TTFT SLO; budget 5%), "
        f"{x['load_gbps_per_prefill_pod']:.1f} Gbps per prefill pod at this rate. GPU pools: ${s['usd_per_mtok']:.2f} per million output tokens.",
        "",
    ]
    return lines
