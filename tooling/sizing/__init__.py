"""Sizing planner: from a model, a workload and latency targets to pools, roles, capacity and cost.

    python -m tooling.sizing plan --model nvidia/Llama-3.3-70B-Instruct-FP8 --instance p5.48xlarge \\
        --isl 4096 --osl 512 --rate 10 --ttft-ms 1000 --itl-ms 40 --out Pulumi.sized.yaml
    python -m tooling.sizing predict --in ROWS.csv --out PRED.csv

Layers, each a pure function of the one below (docs/sizing.md walks through them):

* `models`   -- model catalog: architecture facts of the models served disaggregated, each with its config.json
                source; weights, KV bytes per token, FLOPs per token. A local Hugging Face config.json works too.
* `gpus`     -- GPU limits (peak FLOP/s, HBM bandwidth and size, NVLink) with their datasheet sources.
* `fits`     -- the calibrated per-operation fits (GEMM, attention, all-reduce), evaluated from
                `data/calibration.json`, which `calibrate` derives from measured per-op tables (never shipped here).
* `perf`     -- an engine step: prefill and decode times for a model on a GPU at a TP/PP/EP, memory fit, KV capacity.
* `serving`  -- a workload on replicas: open-loop (a request rate) and closed-loop (a concurrency) latencies.
* `planner`  -- every layout for one scenario, checked against the SLOs, ranked by cost per token; `stackfile`
                writes the chosen one as `disagg:gpuPools` and `disagg:serving`.

Nothing here imports Pulumi or the components, and the runtime path needs only the standard library: the Pulumi
program never imports this package (the config resolves `parametersBillions` through `models` alone).
"""
