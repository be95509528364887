"""`python -m tooling.sizing`: plan a layout for a workload, or predict latencies for measured rows.

    python -m tooling.sizing plan --model nvidia/Llama-3.3-70B-Instruct-FP8 --instance p5.48xlarge \\
        --isl 4096 --osl 512 --rate 10 --ttft-ms 1000 --itl-ms 40 --out Pulumi.sized.yaml
    python -m tooling.sizing plan --config-json ./config.json --weights bf16 ...   # a model not in the catalog
    python -m tooling.sizing predict --in ROWS.csv --out PRED.csv
    python -m tooling.sizing models                                               # the catalog and its sources

Exit codes: 0 done, 1 no layout meets the SLOs, 2 bad input (the problem on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from facts import models


class UsageError(Exception):
    pass


def _model(args) -> tuple[models.ModelArch, str, str]:
    if args.config_json:
        arch, fmt = models.load_config_json(args.config_json)
        model_id = args.model or arch.key
    else:
        if not args.model:
            raise UsageError("give --model (a catalog model or Hugging Face id) or --config-json PATH")
        arch = models.lookup(args.model)
        if arch is None:
            raise UsageError(
                f"--model {args.model!r} is not in the sizing catalog; use --config-json with its Hugging Face config.json, "
                f"or one of: {', '.join(models.known_models())}"
            )
        model_id, fmt = args.model, arch.default_format(args.model)
    weights = args.weights or fmt
    if weights not in models.WEIGHT_FORMATS:
        raise UsageError(f"--weights {weights!r}: use one of {', '.join(models.WEIGHT_FORMATS)}")
    if weights == "mxfp4" and not arch.is_moe:
        raise UsageError("--weights mxfp4 quantizes routed experts only; this model has none")
    return arch, model_id, weights


def _fmt_ms(x: float) -> str:
    return "-" if x is None or math.isnan(x) or math.isinf(x) else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


def _table(result, layouts, top: int) -> list[str]:
    sc = result.scenario
    p = f"p{sc.percentile:g}"
    head = f"{'#':>2}  {'kind':6}  {'prefill':34}  {'decode':30}  {'GPUs':>4}  {'TTFT ' + p:>9}  {'ITL ' + p:>8}  {'tok/s/GPU':>9}  {'$/h':>8}  {'$/Mtok':>7}  {'KV xfer':>7}"
    out = [head, "-" * len(head)]
    for i, lay in enumerate(layouts[:top], 1):
        if lay.kind == "disagg":
            pre, dec = lay.role("prefill").label(), lay.role("decode").label()
            xfer = f"{lay.kv_transfer_ms:.1f}ms"
        else:
            pre, dec = f"{lay.roles[0].label()} (budget {lay.budget})", "(same replicas)"
            xfer = "-"
        out.append(
            f"{i:>2}  {lay.kind:6}  {pre:34}  {dec:30}  {lay.gpus_provisioned:>4}  {_fmt_ms(lay.ttft_p_ms):>9}  "
            f"{_fmt_ms(lay.itl_p_ms):>8}  {lay.tok_s_per_gpu:>9.0f}  {lay.usd_per_hour:>8,.2f}  {lay.usd_per_mtok:>7.2f}  {xfer:>7}"
        )
    return out


def cmd_plan(args) -> int:
    from stacks.config import ConfigError
    from tooling.sizing import planner, stackfile

    arch, model_id, weights = _model(args)
    if (args.rate is None) == (args.concurrency is None):
        raise UsageError("give exactly one of --rate (requests/s) or --concurrency (requests in flight)")
    for name in ("isl", "osl", "ttft_ms", "itl_ms"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    instances = tuple(x for part in (args.instance or []) for x in part.split(",") if x)
    sc = planner.Scenario(
        model=arch, model_id=model_id, weights=weights, kv=args.kv_dtype, isl=args.isl, osl=args.osl,
        ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, percentile=args.percentile, rate=args.rate,
        concurrency=args.concurrency, isl_tail=args.isl_tail, instances=instances,
        gpu_memory_utilization=args.gpu_memory_utilization, max_gpus=args.max_gpus,
    )
    result = planner.plan(sc)
    if args.json:
        print(json.dumps(_result_json(result, args.top), indent=2, sort_keys=True))
    else:
        print(f"Scenario: {sc.describe()}")
        if sc.concurrency is not None:
            print(f"  concurrency {sc.concurrency} -> {result.rate:.2f} req/s at the predicted latencies (Little's law)")
        print(f"Searched in {result.seconds:.2f} s: {len(result.layouts)} disaggregated layouts meet the SLOs.\n")
        if result.layouts:
            print("\n".join(_table(result, result.layouts, args.top)))
        if result.baseline:
            print("\nAggregated baseline (chunked prefill, same instances):")
            print("\n".join(_table(result, result.baseline, min(args.top, 3))))
        if result.refused and args.verbose:
            print("\nRefused:")
            print("\n".join(f"  - {r}" for r in result.refused))
        elif result.refused:
            print(f"\n{len(result.refused)} shapes refused (--verbose lists why), e.g.:")
            for r in result.refused[:3]:
                print(f"  - {r}")
    best = result.best
    if best is None:
        print("\nno disaggregated layout meets the SLOs; relax them, allow more instance types or GPUs (--max-gpus)", file=sys.stderr)
        return 1
    if args.out:
        base_values, base_doc = (stackfile.load_base(args.base) if args.base else (None, None))
        values = stackfile.stack_values(result, best, base_values, efa_image=args.efa_image, region=args.region)
        if args.zones:
            values["availabilityZones"] = [z for z in args.zones.split(",") if z]
            for pool in values["gpuPools"]:
                if "availabilityZones" in pool:
                    pool["availabilityZones"] = [values["availabilityZones"][0]]
        stack = stackfile.stack_name(args.out)
        try:
            stackfile.validate(values, stack)
        except ConfigError as err:
            print(f"the planned layout does not pass the stack's rules (a planner bug, please report):\n{err}", file=sys.stderr)
            return 2
        args.out.write_text(stackfile.render_file(values, base_doc, stackfile.header(result, best)))
        print(f"\nwrote layout #1 to {args.out}: python -m tooling.render --config {args.out} --out build/{stack}")
    return 0


def _role_json(r) -> dict:
    def num(x):
        return None if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else round(x, 3)

    return {
        "role": r.role, "instance_type": r.instance, "tensor_parallel": r.tp, "pipeline_parallel": r.pp,
        "replicas_needed": r.replicas, "replicas": r.filled, "gpus_per_replica": r.gpus_per_replica, "nodes": r.nodes,
        "efa_per_pod": r.efa_per_pod, "kv_tokens_per_replica": r.kv_tokens, "usd_per_hour": round(r.usd_per_hour, 2),
        "ttft_p_ms": num(r.ttft_p_ms), "itl_p_ms": num(r.itl_p_ms), "batch_per_replica": num(r.batch),
        "utilisation": num(r.rho), "keda_target": num(r.keda_target), "notes": list(r.notes),
    }


def _layout_json(lay) -> dict:
    return {
        "kind": lay.kind, "roles": [_role_json(r) for r in lay.roles], "gpus": lay.gpus_provisioned, "nodes": lay.nodes,
        "gpu_packing": round(lay.gpus / lay.gpus_provisioned, 4) if lay.gpus_provisioned else 0.0,
        "ttft_p_ms": round(lay.ttft_p_ms, 2), "itl_p_ms": round(lay.itl_p_ms, 3),
        "output_tok_s": round(lay.output_tok_s, 1), "output_tok_s_per_gpu": round(lay.tok_s_per_gpu, 1),
        "usd_per_hour": round(lay.usd_per_hour, 2), "usd_per_mtok": round(lay.usd_per_mtok, 3),
        "kv_transfer_ms": round(lay.kv_transfer_ms, 3), "kv_bytes_per_request": round(lay.kv_bytes_per_request),
        "kv_pod_gbps": lay.kv_pod_gbps, "kv_load_gbps_per_prefill_pod": round(lay.kv_load_gbps, 2),
        "token_budget": lay.budget,
    }


def _result_json(result, top: int) -> dict:
    sc = result.scenario
    return {
        "scenario": {
            "model": sc.model_id, "weights": sc.weights, "kv": sc.kv, "isl": sc.isl, "osl": sc.osl, "isl_tail": sc.isl_tail,
            "rate": sc.rate, "concurrency": sc.concurrency, "ttft_ms": sc.ttft_ms, "itl_ms": sc.itl_ms, "percentile": sc.percentile,
        },
        "rate": result.rate,
        "search_seconds": round(result.seconds, 3),
        "layouts": [_layout_json(lay) for lay in result.layouts[:top]],
        "baseline": [_layout_json(lay) for lay in result.baseline[:top]],
        "refused": result.refused,
    }


def cmd_predict(args) -> int:
    from tooling.sizing.predict import predict_file

    if not args.inp.is_file():
        raise UsageError(f"--in {args.inp}: no such file")
    preds = predict_file(args.inp, args.out)
    blank = [p for p in preds if p.ttft_ms is None]
    for p in blank:
        print(f"{p.id}: blank: {p.reason}", file=sys.stderr)
    print(f"predicted {len(preds) - len(blank)} of {len(preds)} rows -> {args.out}")
    return 0


def cmd_models(args) -> int:
    for key, m in sorted(models.CATALOG.items()):
        kind = ("MLA" if m.is_mla else "GQA") + (f" MoE {m.experts}x{m.experts_per_token}" if m.is_moe else "")
        print(f"{key:16} {m.params_billions:8.1f}B  active {m.active_params / 1e9:6.1f}B  {kind:16} KV {m.kv_bytes_per_token(2.0) / 1024:6.1f} KiB/token (BF16)")
        print(f"{'':16} config: {m.config_url}")
        print(f"{'':16} read via: {m.read_via}")
        print(f"{'':16} ids: {', '.join(m.hf_ids)}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tooling.sizing", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="rank layouts for a workload and SLOs; write the best as a stack file")
    p.add_argument("--model", help="catalog key or Hugging Face id (see `models`)")
    p.add_argument("--config-json", type=Path, help="a local Hugging Face config.json instead of a catalog model")
    p.add_argument("--weights", help="checkpoint weight format: bf16, fp8 (per-tensor), fp8_block, mxfp4. Default: the checkpoint's")
    p.add_argument("--kv-dtype", choices=("bf16", "fp8"), default="bf16", help="KV cache dtype (default bf16, vLLM's `auto`)")
    p.add_argument("--instance", action="append", help="instance type(s) to consider, repeatable or comma-separated. Default: every calibrated GPU type")
    p.add_argument("--isl", type=int, required=True, help="mean prompt tokens")
    p.add_argument("--osl", type=int, required=True, help="mean output tokens")
    p.add_argument("--isl-tail", type=int, help="prompt tokens at the SLO percentile (long prompts set the tail TTFT). Default: --isl")
    p.add_argument("--rate", type=float, help="requests per second (open loop)")
    p.add_argument("--concurrency", type=int, help="requests in flight (closed loop)")
    p.add_argument("--ttft-ms", type=float, required=True, help="time-to-first-token SLO at --percentile")
    p.add_argument("--itl-ms", type=float, required=True, help="inter-token latency SLO at --percentile")
    p.add_argument("--percentile", type=float, default=90.0, help="SLO percentile (default 90)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM --gpu-memory-utilization (default 0.9)")
    p.add_argument("--max-gpus", type=int, default=1024, help="ignore layouts with more GPUs than this")
    p.add_argument("--top", type=int, default=5, help="layouts to list (default 5)")
    p.add_argument("--out", type=Path, help="write layout #1 as a stack file (Pulumi.<stack>.yaml format)")
    p.add_argument("--base", type=Path, help="take every key the planner does not own from this stack file")
    p.add_argument("--region", help="region of the written stack (default: the base's, else us-east-1)")
    p.add_argument("--efa-image", help="EFA engine image of the written stack (images/vllm-efa, by digest). Default: the base's, else a placeholder `pulumi preview` refuses")
    p.add_argument("--zones", help="comma-separated zones of the written stack (first one holds the EFA pools)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="list every refused shape with its reason")
    p.set_defaults(func=cmd_plan)
    q = sub.add_parser("predict", help="TTFT/TPOT for rows with the columns of silicon_refs.csv")
    q.add_argument("--in", dest="inp", type=Path, required=True, help="input CSV")
    q.add_argument("--out", type=Path, required=True, help="output CSV: id,ttft_ms,tpot_ms (blank where unknown)")
    q.set_defaults(func=cmd_predict)
    m = sub.add_parser("models", help="list the model catalog with its sources")
    m.set_defaults(func=cmd_models)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, models.ModelConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
