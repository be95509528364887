"""Sizing model benchmark: prints how close the calibrated model comes to measured tables (no assertions).

    make bench-sizing          # builds .venv-sizing (numpy, pandas, pyarrow) and runs this
    python benchmarks/sizing_bench.py [--data ../shared/reference/data] [--rows-only]

Targets (issue 13): GEMM and all-reduce within +-15% of the per-op tables for the Llama-3.1-8B/70B shapes; median
absolute error <= 20% (TTFT) and <= 15% (TPOT) on the dense H100/H200 rows of silicon_refs.csv; infeasible shapes
refused with a reason; KV capacity within +-10% of the formula; P:D ratio direction as in performance.md section 4;
a search over all layouts of one scenario in < 5 s. Which data is fitted and which is only evaluated is printed
with each figure: the Llama GEMM shapes are held out of the GEMM fit, all-reduce is scored leave-one-out,
silicon_refs.csv and the Splitwise table are never fitted to.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tooling.sizing import calibrate, fits, perf, planner  # noqa: E402
from tooling.sizing.fits import calibration  # noqa: E402
from facts.models import CATALOG, from_hf_config, lookup  # noqa: E402
from tooling.sizing.predict import predict_file  # noqa: E402

TABLE_DTYPE = {"bf16": "bfloat16", "fp8": "fp8", "fp8_block": "fp8_block"}


def stats(errs: list[float]) -> str:
    if not errs:
        return "n=0"
    a = sorted(abs(e) for e in errs)
    p90 = a[min(len(a) - 1, int(0.9 * len(a)))]
    within = sum(1 for e in a if e <= 0.15) / len(a)
    return f"n={len(a):5d}  median |err| {statistics.median(a) * 100:5.1f}%  p90 {p90 * 100:5.1f}%  within +-15%: {within * 100:5.1f}%"


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)))


# --- 1. calibration is reproducible --------------------------------------------------------------------------------


def check_calibration(data: Path) -> None:
    section("calibration: re-derived from the tables")
    t0 = time.perf_counter()
    fresh = calibrate.calibrate(data)
    secs = time.perf_counter() - t0
    committed = json.loads(fits.CALIBRATION_FILE.read_text())
    same = json.dumps(fresh, sort_keys=True) == json.dumps(committed, sort_keys=True)
    print(f"fit in {secs:.1f} s; the committed tooling/sizing/data/calibration.json {'MATCHES' if same else 'DIFFERS FROM'} a fresh fit")
    for system, s in committed["systems"].items():
        for dtype, f in s["gemm"].items():
            print(f"  {system} GEMM {dtype:9} in-sample {stats_line(f['fit'])} (held out: {f['heldout_shapes']} rows of the Llama shapes)")
    eng = committed["engines"]["vllm"]
    print(f"  vLLM overheads: {eng['step_ms']} ms/pass + {eng['per_seq_ms'] * 1000:.1f} us/sequence, request {eng['request_ms']} ms + "
          f"{eng['request_ms_per_token'] * 1000:.2f} us/prompt token ({eng['fitted_on']})")


def stats_line(f: dict) -> str:
    return f"median {f['median_abs_rel_err'] * 100:.1f}%, within 15%: {f['share_within_15pct'] * 100:.0f}% of {f['rows']}"


# --- 2. op level: GEMM -----------------------------------------------------------------------------------------------


def _interp(table: dict, grid_n: list[int], grid_k: list[int], m: int, n: int, k: int) -> float | None:
    """Bilinear interpolation of log latency in (log n, log k) between the bracketing measured shapes."""
    def bracket(grid, x):
        lo = max((g for g in grid if g <= x), default=None)
        hi = min((g for g in grid if g >= x), default=None)
        return lo, hi

    n0, n1 = bracket(grid_n, n)
    k0, k1 = bracket(grid_k, k)
    if None in (n0, n1, k0, k1):
        return None
    vals = {}
    for nn in {n0, n1}:
        for kk in {k0, k1}:
            v = table.get((m, nn, kk))
            if v is None:
                return None
            vals[(nn, kk)] = math.log(v)

    def w(x, a, b):
        return 0.0 if a == b else (math.log(x) - math.log(a)) / (math.log(b) - math.log(a))

    wn, wk = w(n, n0, n1), w(k, k0, k1)
    v00, v01, v10, v11 = vals[(n0, k0)], vals[(n0, k1)], vals[(n1, k0)], vals[(n1, k1)]
    return math.exp((1 - wn) * ((1 - wk) * v00 + wk * v01) + wn * ((1 - wk) * v10 + wk * v11))


def check_gemm(data: Path) -> None:
    import pandas as pd

    section("op level: GEMM vs AIConfigurator vLLM 0.24.0 tables, Llama-3.1-8B and -70B linear layers at TP 1/2/4/8")
    print("The exact shapes below are held out of the GEMM fit; off-grid shapes are compared with the table interpolated")
    print("in log(n), log(k) between its bracketing measured shapes (how AIConfigurator reads it).")
    cal = calibration()
    shapes = sorted({(key, tp, name, n, k) for key in ("llama-3.1-8b", "llama-3.1-70b") for tp in (1, 2, 4, 8)
                     for name, n, k, _ in perf.linear_shapes(CATALOG[key], tp) if name in ("qkv", "o", "gate_up", "down")})
    shapes += [(key, tp, "lm_head", 128256 // tp, CATALOG[key].hidden) for key in ("llama-3.1-8b", "llama-3.1-70b") for tp in (1, 2, 4, 8)]
    for system in ("h100_sxm", "h200_sxm"):
        df = pd.read_parquet(data / "aiconfigurator" / system / "gemm" / "vllm" / "0.24.0" / "gemm_perf.parquet")
        for dtype in ("bf16", "fp8", "fp8_block"):
            sel = df[df.gemm_dtype == TABLE_DTYPE[dtype]].groupby(["m", "n", "k"]).latency.min()
            table = {key: v for key, v in sel.items()}
            grid_n, grid_k = sorted(set(sel.index.get_level_values(1))), sorted(set(sel.index.get_level_values(2)))
            ms = sorted(set(sel.index.get_level_values(0)))
            exact, interp, decode_rows, prefill_rows = [], [], [], []
            for _, _, _, n, k in shapes:
                on_grid = n in grid_n and k in grid_k
                for m in ms:
                    meas = table.get((m, n, k)) if on_grid else _interp(table, grid_n, grid_k, m, n, k)
                    if meas is None:
                        continue
                    e = cal.gemm_ms(system, dtype, m, n, k) / meas - 1
                    (exact if on_grid else interp).append(e)
                    (decode_rows if m <= 512 else prefill_rows).append(e)
            tag = " (Llama FP8 checkpoints are per-tensor: `fp8`)" if dtype == "fp8" else ""
            print(f"  {system} {dtype:9} held-out exact shapes: {stats(exact)}{tag}")
            print(f"  {system} {dtype:9} off-grid (interpolated):  {stats(interp)}")
            print(f"  {system} {dtype:9} by phase: decode m<=512 {stats(decode_rows)} | prefill m>512 {stats(prefill_rows)}")


# --- 3. op level: all-reduce ---------------------------------------------------------------------------------------


def check_allreduce(data: Path) -> None:
    import numpy as np
    import pandas as pd

    section("op level: vLLM custom all-reduce vs the tables, messages of Llama-8B/70B passes (tokens x hidden)")
    print("Scored leave-one-out: each point is predicted by a fit made without it (the fit has 7 terms for ~23 points).")
    for system, (_, ver, _) in calibrate.SYSTEMS.items():
        ar = pd.read_parquet(data / "aiconfigurator" / system / "comm" / "vllm" / ver / "custom_allreduce_perf.parquet")
        for backend, op in (("vllm_graph", "decode (CUDA graph)"), ("vllm_eager", "prefill (eager)")):
            errs_in, errs_loo = [], []
            cal = calibration()
            for n, g in ar[ar.backend == backend].groupby("num_gpus"):
                g = g.groupby("message_size", as_index=False).latency.min()
                sizes, lat = list(g.message_size.astype(float)), list(g.latency)
                lo, hi = min(sizes), max(sizes)
                rows = [fits.collective_features(s, lo, hi) for s in sizes]
                llama = {h * t for h in (4096, 8192) for t in (2**i for i in range(15))}
                for i, (s, t) in enumerate(zip(sizes, lat)):
                    if s not in llama:
                        continue
                    keep = [j for j in range(len(sizes)) if j != i]
                    coef, _ = calibrate._lstsq([rows[j] for j in keep], [math.log(lat[j]) for j in keep])
                    pred = math.exp(float(np.dot(coef, rows[i])))
                    errs_loo.append(pred / t - 1)
                    key = "allreduce_graph" if backend == "vllm_graph" else "allreduce_eager"
                    errs_in.append(cal.collective_ms(system, key, int(n), s) / t - 1)
            print(f"  {system} {op:20} committed fit {stats(errs_in)}")
            print(f"  {system} {op:20} leave-one-out  {stats(errs_loo)}")


# --- 4. end to end: silicon_refs -----------------------------------------------------------------------------------


def check_silicon(data: Path) -> None:
    section("end to end: AIConfigurator silicon_refs.csv (never fitted to)")
    src = data / "aiconfigurator" / "accuracy_tracking" / "silicon_refs.csv"
    rows = {r["id"]: r for r in csv.DictReader(src.open())}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        preds = predict_file(src, Path(tmp) / "pred.csv")
        secs = time.perf_counter() - t0
    print(f"predict: {len(preds)} rows in {secs:.1f} s, {sum(p.ttft_ms is not None for p in preds)} predicted, the rest blank:")
    reasons: dict[str, int] = {}
    for p in preds:
        if p.ttft_ms is None:
            reasons[p.reason.split(" (")[0]] = reasons.get(p.reason.split(" (")[0], 0) + 1
    for r, n in sorted(reasons.items(), key=lambda x: -x[1]):
        print(f"  blank x{n}: {r}")
    dense_sys = ("h100_sxm", "h200_sxm")
    groups: dict[str, list[tuple[float, float]]] = {"dense": [], "moe": []}
    print(f"\n  {'id':58} {'backend':7} {'mode':6} {'TTFT meas':>9} {'pred':>8} {'err':>6}   {'TPOT meas':>9} {'pred':>7} {'err':>6}")
    for p in preds:
        if p.ttft_ms is None:
            continue
        r = rows[p.id]
        mt, mp = float(r["silicon_ttft_ms"]), float(r["silicon_tpot_ms"])
        et, ep = p.ttft_ms / mt - 1, p.tpot_ms / mp - 1
        arch = lookup(r["model_path"])
        kind = "moe" if arch.is_moe else "dense"
        if r["system"] in dense_sys:
            groups[kind].append((et, ep))
        print(f"  {p.id[:58]:58} {r['backend']:7} {r['mode']:6} {mt:9.1f} {p.ttft_ms:8.1f} {et * 100:5.0f}%   {mp:9.2f} {p.tpot_ms:7.2f} {ep * 100:5.0f}%  {kind}")
    n_dense = sum(1 for r in rows.values() if r["system"] in dense_sys and lookup(r["model_path"]) and not lookup(r["model_path"]).is_moe)
    print(f"\n  The file has {len(rows)} rows in all; {n_dense} of them are dense models on H100/H200 (the issue's target set).")
    for kind, label in (("dense", "dense H100/H200 rows (target: TTFT <= 20%, TPOT <= 15%)"), ("moe", "MoE H100/H200 rows (MoE kernels have no tables)")):
        g = groups[kind]
        if g:
            mt = statistics.median(abs(e) for e, _ in g) * 100
            mp = statistics.median(abs(e) for _, e in g) * 100
            print(f"  {label}: n={len(g)}  median |err| TTFT {mt:.1f}%  TPOT {mp:.1f}%")
    agg = [x for x in groups["dense"] + groups["moe"]]
    print(f"  all predicted rows: n={len(agg)}  median |err| TTFT {statistics.median(abs(e) for e, _ in agg) * 100:.1f}%  "
          f"TPOT {statistics.median(abs(e) for _, e in agg) * 100:.1f}%")


# --- 5. end to end: Splitwise and Dynamo ---------------------------------------------------------------------------

# Llama-2-70B (the Splitwise table's model): its Hugging Face config.json (meta-llama/Llama-2-70b-hf).
LLAMA2_70B = {"num_hidden_layers": 80, "hidden_size": 8192, "num_attention_heads": 64, "num_key_value_heads": 8,
              "intermediate_size": 28672, "vocab_size": 32000, "max_position_embeddings": 4096}


def check_splitwise(data: Path) -> None:
    section("end to end: Splitwise perf_model.csv, Llama-2-70B FP16 on H100 (never fitted to; engine and version unstated)")
    cal = calibration()
    model = from_hf_config(LLAMA2_70B, "llama-2-70b")
    rows = [r for r in csv.DictReader((data / "splitwise-sim" / "perf_model.csv").open())
            if r["hardware"] == "h100-80gb" and r["model"] == "llama2-70b" and r["batch_size"] != "64"]
    for tp in (2, 4, 8):
        shape = perf.Shape(model=model, system="h100_sxm", weights="bf16", tp=tp)
        pre, dec = [], []
        for key in sorted({(int(r["prompt_size"]), int(r["batch_size"])) for r in rows if int(r["tensor_parallel"]) == tp}):
            sel = [r for r in rows if int(r["tensor_parallel"]) == tp and (int(r["prompt_size"]), int(r["batch_size"])) == key]
            isl, b = key
            meas_p = statistics.median(float(r["prompt_time"]) for r in sel)
            meas_d = statistics.median(float(r["token_time"]) for r in sel)
            pre.append(perf.prefill_ms(cal, shape, isl, b) / meas_p - 1)
            dec.append(perf.decode_step_ms(cal, shape, b, isl + 64) / meas_d - 1)
        print(f"  TP{tp}: prefill {stats(pre)}   (mean signed {statistics.mean(pre) * 100:+.0f}%)")
        print(f"  TP{tp}: decode  {stats(dec)}   (mean signed {statistics.mean(dec) * 100:+.0f}%)")


def check_dynamo(data: Path) -> None:
    section("end to end: Dynamo H200 profile, Llama-3.1-8B-FP8 TP1 (IN-SAMPLE: the vLLM overheads are fitted on it)")
    cal = calibration()
    shape = perf.Shape(model=CATALOG["llama-3.1-8b"], system="h200_sxm", weights="fp8", tp=1)
    from tooling.sizing import serving

    pre = [serving.request_ms(cal, shape, int(r["prefill_isl"])) + perf.prefill_ms(cal, shape, int(r["prefill_isl"])) - float(r["prefill_ttft_ms"])
           for r in csv.DictReader((data / "dynamo-planner" / "selected_prefill_interpolation" / "raw_data.csv").open())]
    ttft_rows = list(csv.DictReader((data / "dynamo-planner" / "selected_prefill_interpolation" / "raw_data.csv").open()))
    errs = [(serving.request_ms(cal, shape, int(r["prefill_isl"])) + perf.prefill_ms(cal, shape, int(r["prefill_isl"]))) / float(r["prefill_ttft_ms"]) - 1 for r in ttft_rows]
    print(f"  prefill TTFT: {stats(errs)}")
    dec = []
    max_kv = None
    for r in csv.DictReader((data / "dynamo-planner" / "selected_decode_interpolation" / "raw_data.csv").open()):
        ctx = float(r["y_context_length"])
        b = max(1, round(float(r["x_kv_usage"]) * float(r["max_kv_tokens"]) / ctx))
        max_kv = int(r["max_kv_tokens"])
        if b <= perf.MAX_NUM_SEQS:
            dec.append(perf.decode_step_ms(cal, shape, b, ctx) / float(r["z_itl_ms"]) - 1)
    print(f"  decode ITL:   {stats(dec)}")
    del pre
    fit = perf.memory_fit(shape, 141, 0.9)
    print(f"  KV capacity (NOT fitted): model {fit.kv_tokens:,} tokens vs the engine's own max_kv_tokens {max_kv:,} "
          f"({(fit.kv_tokens / max_kv - 1) * 100:+.1f}%)")


# --- 6. feasibility, KV capacity, P:D, search time -----------------------------------------------------------------


def check_feasibility() -> None:
    section("infeasible shapes are refused with the reason")
    for key, weights, tp, system, gib in (("llama-3.3-70b", "bf16", 2, "h100_sxm", 80), ("deepseek-v3", "fp8_block", 8, "h100_sxm", 80)):
        try:
            perf.memory_fit(perf.Shape(model=CATALOG[key], system=system, weights=weights, tp=tp), gib, 0.9)
            print(f"  {key} {weights} TP{tp} on {system}: NOT refused")
        except perf.Infeasible as exc:
            print(f"  refused: {exc}")


def check_kv_capacity() -> None:
    section("KV capacity vs the formula (90% of HBM - weights/TP - 3 GB) x TP / KV bytes per token per GPU (target +-10%)")
    cases = [("llama-3.3-70b", "fp8", 2, "h100_sxm", 80), ("llama-3.3-70b", "fp8", 4, "h100_sxm", 80), ("llama-3.3-70b", "bf16", 4, "h100_sxm", 80),
             ("llama-3.3-70b", "bf16", 8, "h100_sxm", 80), ("llama-3.1-8b", "bf16", 1, "h100_sxm", 80), ("qwen3-32b", "bf16", 2, "h100_sxm", 80),
             ("qwen3-235b-a22b", "fp8_block", 8, "h100_sxm", 80), ("deepseek-v3", "fp8_block", 8, "h200_sxm", 141),
             ("gpt-oss-120b", "mxfp4", 1, "h100_sxm", 80), ("llama-3.1-405b", "fp8", 8, "h200_sxm", 141)]
    for key, weights, tp, system, gib in cases:
        m = CATALOG[key]
        shape = perf.Shape(model=m, system=system, weights=weights, tp=tp)
        fit = perf.memory_fit(shape, gib, 0.9)
        formula = (0.9 * gib * 2**30 - m.weight_bytes(weights) / tp - 3e9) / m.kv_bytes_per_token_per_gpu(tp, 1, 2.0)
        if m.is_mla:
            formula = (0.9 * gib * 2**30 - m.weight_bytes(weights) / tp - 3e9) / m.kv_bytes_per_token(2.0)
        print(f"  {key:16} {weights:9} TP{tp} {system}: {fit.kv_tokens:>10,} tokens vs formula {formula:>12,.0f} ({(fit.kv_tokens / formula - 1) * 100:+5.1f}%)"
              + (f"  [{'; '.join(fit.notes)}]" if fit.notes else ""))


def _scenario(**kw) -> planner.Scenario:
    args = dict(model=CATALOG["llama-3.3-70b"], model_id="nvidia/Llama-3.3-70B-Instruct-FP8", weights="fp8", kv="bf16",
                isl=4096, osl=512, ttft_ms=1000, itl_ms=40, rate=10.0, instances=("p5.48xlarge",))
    args.update(kw)
    return planner.Scenario(**args)


def check_pd_ratio() -> None:
    section("P:D GPU ratio of the best layout (GPUs the rate needs, before filling nodes) vs performance.md section 4")
    for isl, osl, rate, expect in ((3000, 150, 40, ">= 2:1 (prefill-heavy)"), (8192, 1024, 4, "~1:1 (0.5-2)"), (1000, 4000, 4, "< 1 (decode-heavy)")):
        best = planner.plan(_scenario(isl=isl, osl=osl, rate=rate, ttft_ms=2000, itl_ms=50)).best
        p, d = best.role("prefill"), best.role("decode")
        ratio = (p.replicas * p.gpus_per_replica) / (d.replicas * d.gpus_per_replica)
        print(f"  Llama-3.3-70B FP8 {isl}/{osl} at {rate} req/s, TTFT 2 s, ITL 50 ms: {p.label()} : {d.label()} -> "
              f"{ratio:.2f}:1 (published: {expect})")


def check_search_time() -> None:
    section("search time (one scenario, every layout; target < 5 s on the 2-core CI box)")
    for label, sc in (
        ("Llama-3.3-70B FP8 4096/512 10 req/s on p5", _scenario()),
        ("the same over p5, p5e, p5en", _scenario(instances=())),
        ("DeepSeek-V3 FP8 2048/512 2 req/s over p5, p5e, p5en", _scenario(model=CATALOG["deepseek-v3"], model_id="deepseek-ai/DeepSeek-V3",
                                                                     weights="fp8_block", isl=2048, osl=512, rate=2.0, ttft_ms=3000, itl_ms=60, instances=())),
    ):
        fits._gemm_ms.cache_clear()
        perf._decode_ms.cache_clear()
        perf._prefill_ms.cache_clear()
        t0 = time.perf_counter()
        res = planner.plan(sc)
        secs = time.perf_counter() - t0
        best = res.best
        print(f"  {label}: {secs:.2f} s (cold caches), {len(res.layouts)} feasible layouts, {len(res.refused)} refusals; best "
              f"{best.role('prefill').label()} + {best.role('decode').label()} ${best.usd_per_hour:,.0f}/h" if best else f"  {label}: {secs:.2f} s, none")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=calibrate.DEFAULT_DATA)
    ap.add_argument("--rows-only", action="store_true", help="only the silicon_refs rows")
    args = ap.parse_args(argv)
    if not (args.data / "aiconfigurator").is_dir():
        print(f"no reference tables under {args.data}", file=sys.stderr)
        return 2
    if args.rows_only:
        check_silicon(args.data)
        return 0
    check_calibration(args.data)
    check_gemm(args.data)
    check_allreduce(args.data)
    check_silicon(args.data)
    check_splitwise(args.data)
    check_dynamo(args.data)
    check_feasibility()
    check_kv_capacity()
    check_pd_ratio()
    check_search_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
