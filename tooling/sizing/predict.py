"""Predict end-to-end TTFT and TPOT for measured benchmark rows (the columns of AIConfigurator's silicon_refs.csv).

Each row is a closed-loop benchmark: `batch_size` (agg) or `decode_batch_size x decode_num_workers` (disagg)
requests in flight, fixed ISL/OSL, one engine (`backend`), a GPU `system` and a parallel layout. A row gets a
prediction only when its model is in the catalog, its system has calibrated kernels and its quantization runs on
that GPU; otherwise its cells stay blank and the reason goes to stderr. Kernels are calibrated on vLLM's tables;
SGLang and TensorRT-LLM rows use the same kernels with their own scheduling (SGLang runs prompts in their own
passes), which is part of the error the benchmark reports.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tooling.sizing import perf, serving
from tooling.sizing.fits import Calibration, calibration
from tooling.sizing.gpus import gpu_for_system
from facts.models import lookup

OUT_FIELDS = ("id", "ttft_ms", "tpot_ms")
_QUANT = {"": "bf16", "bf16": "bf16", "bfloat16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "mxfp4": "mxfp4"}
# Inter-node bandwidth per GPU of the DGX-class systems the rows ran on (AIConfigurator systems yaml
# `inter_node_bw: 50000000000`, one 400 Gb/s NIC per GPU): prices the disaggregated KV hand-off.
_KV_BYTES_PER_S_PER_GPU = 50e9


@dataclass(frozen=True)
class Prediction:
    id: str
    ttft_ms: float | None
    tpot_ms: float | None
    reason: str = ""


def _int(row: dict, key: str, default: int = 1) -> int:
    v = (row.get(key) or "").strip()
    return int(float(v)) if v else default


def _shape(row: dict, prefix: str, model, system: str, weights: str, engine: str) -> perf.Shape:
    tp = _int(row, f"{prefix}tp_size")
    dp = _int(row, f"{prefix}attention_dp_size")
    ep = _int(row, f"{prefix}moe_ep_size")
    return perf.Shape(
        model=model, system=system, weights=weights, kv="bf16", tp=tp, pp=_int(row, f"{prefix}pp_size"), ep=max(1, ep),
        attn_dp=max(1, dp), engine=engine,
    )


def predict_row(row: dict, cal: Calibration) -> Prediction:
    rid = row.get("id", "")
    model = lookup((row.get("model_path") or "").strip())
    if model is None:
        return Prediction(rid, None, None, f"model {row.get('model_path')!r} is not in the sizing catalog")
    system = (row.get("system") or "").strip()
    if gpu_for_system(system) is None or not cal.has(system):
        return Prediction(rid, None, None, f"system {system!r} has no calibrated kernels (calibrated: {', '.join(sorted(cal.systems))})")
    quant = (row.get("gemm_quant_mode") or row.get("precision") or "").strip().lower()
    if quant not in _QUANT:
        return Prediction(rid, None, None, f"quantization {quant!r} has no kernel model on {system}")
    weights = _QUANT[quant]
    backend = (row.get("backend") or "").strip().lower()
    if backend not in ("vllm", "sglang", "trtllm"):
        return Prediction(rid, None, None, f"backend {backend!r} is not modelled")
    # Engine overheads are fitted on vLLM only; the other engines reuse them (stated in the benchmark).
    engine = "vllm"
    isl, osl = _int(row, "isl", 0), _int(row, "osl", 0)
    if isl <= 0 or osl <= 0:
        return Prediction(rid, None, None, "isl/osl missing")
    fused = backend != "sglang"
    try:
        if (row.get("mode") or "").strip() == "disagg":
            sp = _shape(row, "prefill_", model, system, weights, engine)
            sd = _shape(row, "decode_", model, system, weights, engine)
            pw, dw = _int(row, "prefill_num_workers"), _int(row, "decode_num_workers")
            # Batch sizes are per attention-DP rank: 16 per rank x 8 ranks x 9 workers is the row's concurrency 1152.
            conc = _int(row, "decode_batch_size") * sd.attn_dp * dw
            xfer = serving.kv_transfer(sp, sd, isl, sp.gpus * _KV_BYTES_PER_S_PER_GPU * 8 / 1e9, sd.gpus * _KV_BYTES_PER_S_PER_GPU * 8 / 1e9, 0.0)
            res = serving.closed_loop_disagg(
                cal, sp, sd, conc, isl, osl, prefill_workers=pw, decode_workers=dw,
                prefill_batch=max(1, _int(row, "prefill_batch_size")) * sp.attn_dp, transfer_ms=xfer.ms,
            )
        else:
            shape = _shape(row, "", model, system, weights, engine)
            res = serving.closed_loop_agg(cal, shape, _int(row, "batch_size"), isl, osl, fused=fused)
    except (perf.Infeasible, KeyError, ZeroDivisionError) as exc:
        return Prediction(rid, None, None, f"cannot price this layout: {exc}")
    if not (res.ttft_ms == res.ttft_ms and res.tpot_ms == res.tpot_ms):  # NaN: the replay produced no steady sample
        return Prediction(rid, None, None, "the closed-loop replay reached no steady state")
    return Prediction(rid, res.ttft_ms, res.tpot_ms)


def predict_file(src: Path, dst: Path, cal: Calibration | None = None) -> list[Prediction]:
    cal = cal or calibration()
    with src.open(newline="") as f:
        rows = list(csv.DictReader(f))
    preds = [predict_row(r, cal) for r in rows]
    with dst.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(OUT_FIELDS)
        for p in preds:
            w.writerow([p.id, "" if p.ttft_ms is None else f"{p.ttft_ms:.3f}", "" if p.tpot_ms is None else f"{p.tpot_ms:.3f}"])
    return preds
