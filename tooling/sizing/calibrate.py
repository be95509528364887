"""Derive `data/calibration.json` from measured per-operation tables (needs numpy and pandas/pyarrow).

    python -m tooling.sizing.calibrate                 # reads ../shared/reference/data, rewrites the committed file
    python -m tooling.sizing.calibrate --check         # exit 1 if a fresh fit differs from the committed file
    python -m tooling.sizing.calibrate --out /tmp/c.json

This is the only place the upstream tables are read; the planner ships the fitted coefficients, never the tables.
`make sizing-calibrate` runs it in its own virtualenv (`.venv-sizing`, requirements-sizing.txt), so the Pulumi
program's dependencies stay what they are.

What is fitted, and on what (calibration data is kept apart from evaluation data):

* GEMM, per GPU and dtype (bf16, per-tensor fp8, block fp8): `log(t / roofline)` as a degree-4 polynomial in
  log m, log n, log k plus tile/wave-quantization terms (`fits.gemm_features`), least squares over AIConfigurator's
  vLLM 0.24.0 GEMM table. The exact (n, k) shapes of Llama-3.1-8B and -70B at TP 1/2/4/8 are held out of the fit;
  `benchmarks/sizing_bench.py` scores the fit on them.
* Attention (prefill and decode kernels, per KV dtype): `log(t / roofline)` as a degree-3 polynomial in log batch,
  log length, log query heads, log GQA ratio and log head size, full-attention rows only.
* Collectives (vLLM custom all-reduce, CUDA-graph and eager; NCCL all-to-all), per GPU count: `log t` as a cubic in
  log message size.
* Engine overheads of vLLM (a fixed cost per forward pass, a cost per running sequence, a cost per request before
  its first token), fitted on Dynamo's H200 pre-deployment profile of Llama-3.1-8B-FP8 (vLLM): the only end-to-end
  vLLM measurement used for calibration. silicon_refs.csv (AIConfigurator's end-to-end anchors) and the Splitwise
  table are never fitted to: the benchmark evaluates on them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "reference" / "data"

# Upstream provenance of ../shared/reference/data (its README).
AIC = ("ai-dynamo/aiconfigurator", "095f58a51c4ca8e61b66ec108d86f223f8d559ce", "Apache-2.0")
DYNAMO = ("ai-dynamo/dynamo", "35055c6f7711ac2eefe62c3a4cfda4eb9149a4dd", "Apache-2.0")

SYSTEMS = {
    # ours -> (gpu key in gpus.GPUS, gemm/attention/allreduce folder version, nccl folder version)
    "h100_sxm": ("H100-SXM", "0.24.0", "2.27.3"),
    "h200_sxm": ("H200-SXM", "0.24.0", "2.29.2"),
}
DTYPE_OF_TABLE = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block"}
KV_OF_TABLE = {"bfloat16": "bf16", "fp8": "fp8"}


def heldout_gemm_shapes() -> set[tuple[int, int]]:
    """(n, k) of every linear layer of Llama-3.1-8B and -70B at TP 1, 2, 4, 8: kept out of the GEMM fit."""
    from facts.models import CATALOG
    from tooling.sizing.perf import linear_shapes

    out = set()
    for key in ("llama-3.1-8b", "llama-3.1-70b"):
        for tp in (1, 2, 4, 8):
            out |= {(n, k) for _, n, k, _ in linear_shapes(CATALOG[key], tp)}
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lstsq(rows, target):
    import numpy as np

    a = np.asarray(rows, dtype=float)
    y = np.asarray(target, dtype=float)
    # Huber-weighted least squares (3 passes): kernel-selection spikes in the tables should not bend the surface.
    w = np.ones(len(y))
    for _ in range(3):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
        r = np.abs(a @ coef - y)
        delta = 0.1
        w = np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-12))
    resid = np.exp(a @ coef - y) - 1.0  # relative error of the fitted time
    return [float(c) for c in coef], resid


def _summary(resid) -> dict:
    import numpy as np

    r = np.abs(resid)
    return {
        "rows": int(len(r)),
        "median_abs_rel_err": round(float(np.median(r)), 4),
        "p90_abs_rel_err": round(float(np.quantile(r, 0.9)), 4),
        "share_within_15pct": round(float(np.mean(r <= 0.15)), 4),
    }


def fit_gemm(data: Path, system: str) -> tuple[dict, list[dict]]:
    import math

    import pandas as pd

    from tooling.sizing import fits
    from tooling.sizing.gpus import GPUS

    gpu_key, ver, _ = SYSTEMS[system]
    gpu = GPUS[gpu_key]
    path = data / "aiconfigurator" / system / "gemm" / "vllm" / ver / "gemm_perf.parquet"
    df = pd.read_parquet(path)
    held = heldout_gemm_shapes()
    out = {}
    for table_dtype, dtype in DTYPE_OF_TABLE.items():
        # One row per shape: the kernel vLLM picked is what ran; repeats (if any) keep the fastest.
        sel = df[df.gemm_dtype == table_dtype].groupby(["m", "n", "k"], as_index=False).latency.min()
        sel = sel[(sel.n >= 128) & (sel.k >= 128)]
        train = sel[[(n, k) not in held for n, k in zip(sel.n, sel.k)]]
        rows, target = [], []
        for m, n, k, t in zip(train.m, train.n, train.k, train.latency):
            rows.append(fits.gemm_features(m, n, k))
            target.append(math.log(t / 1e3 / fits.gemm_roofline_s(gpu, dtype, m, n, k)))
        coef, resid = _lstsq(rows, target)
        out[dtype] = {"coef": coef, "fit": _summary(resid), "heldout_shapes": len(sel) - len(train)}
    return out, [{"file": str(path.relative_to(data)), "sha256": _sha(path)}]


def fit_attention(data: Path, system: str) -> tuple[dict, dict, list[dict]]:
    import math

    import pandas as pd

    from tooling.sizing import fits
    from tooling.sizing.gpus import GPUS

    gpu_key, ver, _ = SYSTEMS[system]
    gpu = GPUS[gpu_key]
    base = data / "aiconfigurator" / system / "attention" / "vllm" / ver
    srcs = []
    ctx_out, gen_out = {}, {}
    for fname, phase in (("context_attention_perf.parquet", "context"), ("generation_attention_perf.parquet", "generation")):
        path = base / fname
        srcs.append({"file": str(path.relative_to(data)), "sha256": _sha(path)})
        df = pd.read_parquet(path)
        df = df[df.window_size == 0]
        keys = ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "step"]
        for table_kv, kv in KV_OF_TABLE.items():
            sel = df[df.kv_cache_dtype == table_kv].groupby(keys, as_index=False).latency.min()
            rows, target = [], []
            for b, isl, nh, nkv, d, step, t in zip(sel.batch_size, sel.isl, sel.num_heads, sel.num_key_value_heads, sel.head_dim, sel.step, sel.latency):
                if phase == "context":
                    if isl < 16:
                        continue
                    roof = fits.context_attention_roofline_s(gpu, kv, b, isl, nh, nkv, d)
                    feats = fits.attention_features(b, isl, nh, nkv, d)
                else:
                    ctx = step + 1  # `step` tokens already cached, plus the new one
                    roof = fits.generation_attention_roofline_s(gpu, kv, b, ctx, nh, nkv, d)
                    feats = fits.attention_features(b, ctx, nh, nkv, d)
                rows.append(feats)
                target.append(math.log(t / 1e3 / roof))
            coef, resid = _lstsq(rows, target)
            (ctx_out if phase == "context" else gen_out)[kv] = {"coef": coef, "fit": _summary(resid)}
    return ctx_out, gen_out, srcs


def fit_collectives(data: Path, system: str) -> tuple[dict, list[dict]]:
    import math

    import pandas as pd

    from tooling.sizing import fits

    _, ver, nccl_ver = SYSTEMS[system]
    ar_path = data / "aiconfigurator" / system / "comm" / "vllm" / ver / "custom_allreduce_perf.parquet"
    nccl_path = data / "aiconfigurator" / system / "comm" / "nccl" / nccl_ver / "nccl_perf.parquet"
    out: dict = {}
    ar = pd.read_parquet(ar_path)
    nccl = pd.read_parquet(nccl_path)
    groups = [
        ("allreduce_graph", ar[ar.backend == "vllm_graph"]),
        ("allreduce_eager", ar[ar.backend == "vllm_eager"]),
        ("nccl_alltoall", nccl[(nccl.op_name == "alltoall") & (nccl.nccl_dtype == "half")]),
    ]
    for op, df in groups:
        out[op] = {}
        for n, g in df.groupby("num_gpus"):
            g = g.groupby("message_size", as_index=False).latency.min()
            lo, hi = float(g.message_size.min()), float(g.message_size.max())
            rows = [fits.collective_features(s, lo, hi) for s in g.message_size]
            coef, resid = _lstsq(rows, [math.log(t) for t in g.latency])
            out[op][str(int(n))] = {"coef": coef, "range": [lo, hi], "fit": _summary(resid)}
    srcs = [{"file": str(p.relative_to(data)), "sha256": _sha(p)} for p in (ar_path, nccl_path)]
    return out, srcs


def fit_engine(data: Path, ops: dict) -> tuple[dict, list[dict]]:
    """vLLM's costs outside the kernels, from Dynamo's H200 profile (Llama-3.1-8B-FP8, TP1 prefill and decode)."""
    import csv

    import numpy as np

    from tooling.sizing import perf
    from tooling.sizing.fits import Calibration
    from facts.models import CATALOG

    provisional = Calibration({**ops, "engines": {"vllm": {"step_ms": 0.0, "per_seq_ms": 0.0}}})
    model = CATALOG["llama-3.1-8b"]
    shape = perf.Shape(model=model, system="h200_sxm", weights="fp8", kv="bf16", tp=1)
    pre_path = data / "dynamo-planner" / "selected_prefill_interpolation" / "raw_data.csv"
    dec_path = data / "dynamo-planner" / "selected_decode_interpolation" / "raw_data.csv"
    with pre_path.open() as f:
        pre = [(int(r["prefill_isl"]), float(r["prefill_ttft_ms"])) for r in csv.DictReader(f)]
    with dec_path.open() as f:
        dec = list(csv.DictReader(f))
    # Decode: ITL = kernels(B, context) + step_ms + per_seq_ms x B, with B = KV usage x KV capacity / context (the
    # profile's own definition of x_kv_usage). step_ms is the median residual of the batch-1 points (pure launch and
    # scheduling cost); per_seq_ms the least-squares slope of the others, within vLLM's 1024-sequence batch limit.
    points = []
    for r in dec:
        ctx = float(r["y_context_length"])
        b = max(1, round(float(r["x_kv_usage"]) * float(r["max_kv_tokens"]) / ctx))
        points.append((b, float(r["z_itl_ms"]) - perf.decode_step_ms(provisional, shape, b, ctx, overheads=False)))
    step_ms = float(np.median([res for b, res in points if b == 1]))
    rest = [(b, res - step_ms) for b, res in points if 1 < b <= perf.MAX_NUM_SEQS]
    per_seq_ms = sum(b * res for b, res in rest) / sum(b * b for b, _ in rest)
    # Prefill: TTFT of one request alone = its forward pass + one step's cost + request_ms, where request_ms =
    # fixed + per prompt token (HTTP, tokenizer, detokenizer, the profiler's router): least squares on 17 points.
    xs = np.asarray([[1.0, float(isl)] for isl, _ in pre])
    ys = np.asarray([t - perf.prefill_ms(provisional, shape, isl, overheads=False) - step_ms for isl, t in pre])
    (req_fixed, req_per_token), *_ = np.linalg.lstsq(xs, ys, rcond=None)
    engine = {
        "step_ms": round(max(step_ms, 0.0), 4),
        "per_seq_ms": round(max(per_seq_ms, 0.0), 5),
        "request_ms": round(max(float(req_fixed), 0.0), 3),
        "request_ms_per_token": round(max(float(req_per_token), 0.0), 6),
        "fitted_on": "dynamo-planner H200_TP1P_TP1D (nvidia/Llama-3.1-8B-Instruct-FP8, vLLM): step_ms from the 6 "
        "batch-1 decode points, per_seq_ms from the other decode points (B <= 1024), request_ms(+per token) from the "
        "17 prefill points",
    }
    srcs = [{"file": str(p.relative_to(data)), "sha256": _sha(p)} for p in (pre_path, dec_path)]
    return engine, srcs


def calibrate(data: Path) -> dict:
    from tooling.sizing.fits import FEATURES_VERSION

    systems, sources = {}, []
    for system, (gpu_key, _, _) in SYSTEMS.items():
        gemm, s1 = fit_gemm(data, system)
        ctx, gen, s2 = fit_attention(data, system)
        coll, s3 = fit_collectives(data, system)
        systems[system] = {"gpu": gpu_key, "gemm": gemm, "context_attention": ctx, "generation_attention": gen, "collectives": coll}
        sources += s1 + s2 + s3
    ops = {"features_version": FEATURES_VERSION, "systems": systems, "provenance": {}}
    engine, s4 = fit_engine(data, ops)
    sources += s4
    return {
        "features_version": FEATURES_VERSION,
        "provenance": {
            "derived_by": "python -m tooling.sizing.calibrate (make sizing-calibrate)",
            "upstream": {
                "aiconfigurator": {"repo": AIC[0], "commit": AIC[1], "license": AIC[2], "tables": "per-op vLLM 0.24.0 / NCCL"},
                "dynamo": {"repo": DYNAMO[0], "commit": DYNAMO[1], "license": DYNAMO[2], "tables": "H200_TP1P_TP1D profile"},
            },
            "tables": sources,
            "method": __doc__.split("What is fitted")[1].strip(),
            "not_fitted_to": ["aiconfigurator/accuracy_tracking/silicon_refs.csv", "splitwise-sim/perf_model.csv"],
        },
        "systems": systems,
        "engines": {"vllm": engine},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tooling.sizing.calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"reference tables (default {DEFAULT_DATA})")
    ap.add_argument("--out", type=Path, help="write here (default: the committed tooling/sizing/data/calibration.json)")
    ap.add_argument("--check", action="store_true", help="fit, compare with the committed file, write nothing")
    args = ap.parse_args(argv)
    from tooling.sizing.fits import CALIBRATION_FILE

    if not (args.data / "aiconfigurator").is_dir():
        print(f"error: no reference tables under {args.data} (expected ../shared/reference/data beside the repo)", file=sys.stderr)
        return 2
    text = json.dumps(calibrate(args.data), indent=1, sort_keys=True) + "\n"
    if args.check:
        same = CALIBRATION_FILE.is_file() and CALIBRATION_FILE.read_text() == text
        print(f"calibration {'matches' if same else 'DIFFERS FROM'} {CALIBRATION_FILE.relative_to(ROOT)}")
        return 0 if same else 1
    out = args.out or CALIBRATION_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
