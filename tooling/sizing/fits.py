"""Calibrated per-operation times: a roofline bound times a fitted correction, read from `data/calibration.json`.

Each op's time is `roofline(shape) * exp(poly(features(shape)))`: the roofline (FLOPs over peak, bytes over HBM
bandwidth, from `gpus`) carries the physics and the extrapolation; the polynomial in log-shape features, fitted by
`tooling.sizing.calibrate` on measured per-op tables, carries what a roofline misses (tile and wave quantization,
launch latency, kernel choice). Shapes outside the measured range are clamped for the correction only, so a
larger GEMM still costs its FLOPs. The feature functions here are the only definition: calibration fits with them
and the planner evaluates with them, so the two cannot drift.

Stdlib only (the planner must run without numpy); evaluation is cached per shape.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from tooling.sizing.gpus import GPUS, GpuSpec

CALIBRATION_FILE = Path(__file__).resolve().parent / "data" / "calibration.json"
FEATURES_VERSION = "v1"

# GEMM dtypes of the tables: `fp8` is per-tensor scaled FP8 (ModelOpt checkpoints such as
# nvidia/Llama-3.3-70B-Instruct-FP8, CUTLASS scaled-mm), `fp8_block` is 128x128 block-scaled FP8 (DeepSeek, Qwen3-FP8,
# Kimi, GLM, MiniMax checkpoints; DeepGEMM/FlashInfer/CUTLASS block kernels).
GEMM_DTYPES = ("bf16", "fp8", "fp8_block")
GEMM_WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0}
KV_BYTES = {"bf16": 2.0, "fp8": 1.0}

# Ranges of the measured tables (the correction is evaluated on shapes clamped into them).
GEMM_RANGE = {"m": (1, 32768), "n": (128, 65536), "k": (128, 65536)}
ATTN_RANGE = {"b": (1, 2048), "len": (1, 131072), "nh": (1, 96), "ratio": (1, 96), "d": (64, 512)}

# H100/H200 have 132 SMs (NVIDIA H100 datasheet, "H100 SXM5 ... 132 SMs"; H200 is the same GH100 die).
_SMS = 132


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def poly_terms(xs: tuple[float, ...], degree: int) -> list[float]:
    """Every monomial of the variables up to `degree`, in a fixed order (constant first)."""
    terms = [1.0]
    frontier = [(1.0, 0)]  # (value, index of the last variable used) -- monomials in non-decreasing variable order
    for _ in range(degree):
        nxt = []
        for value, last in frontier:
            for i in range(last, len(xs)):
                nxt.append((value * xs[i], i))
        terms += [v for v, _ in nxt]
        frontier = nxt
    return terms


# --- GEMM ---------------------------------------------------------------------------------------------------------


def gemm_roofline_s(gpu: GpuSpec, dtype: str, m: float, n: float, k: float) -> float:
    """Seconds at peak: 2mnk FLOPs at the dtype's dense tensor-core rate, or A, B and C once through HBM."""
    wb = GEMM_WEIGHT_BYTES[dtype]
    # FP8 GEMMs read FP8 activations (quantized on the fly) and write BF16 outputs.
    flops = 2.0 * m * n * k
    nbytes = n * k * wb + m * k * wb + m * n * 2.0
    return max(flops / gpu.peak_flops(dtype), nbytes / gpu.hbm_bytes_per_s)


def gemm_features(m: float, n: float, k: float) -> list[float]:
    m, n, k = (_clamp(m, *GEMM_RANGE["m"]), _clamp(n, *GEMM_RANGE["n"]), _clamp(k, *GEMM_RANGE["k"]))
    x, y, z = math.log2(m) / 15.0, math.log2(n) / 16.0, math.log2(k) / 16.0
    extra = []
    for tile in (64.0, 128.0):  # rows padded to the tile height
        extra.append(math.log(math.ceil(m / tile) * tile / m))
    for tm, tn in ((128.0, 128.0), (64.0, 128.0), (128.0, 256.0)):  # last wave of tiles over the SMs
        tiles = math.ceil(m / tm) * math.ceil(n / tn)
        extra.append(math.log(tiles / (math.ceil(tiles / _SMS) * _SMS)))
    extra += [1.0 if int(m) % 16 else 0.0, 1.0 if m > 256 else 0.0, 1.0 if m > 4096 else 0.0]
    # vLLM switches kernels for skinny GEMMs (e.g. FlashInfer below 32 rows, DeepGEMM above, for block FP8): their own
    # scaling in n and k.
    small = 1.0 if m < 32 else 0.0
    extra += [small, small * x, small * y, small * z]
    return poly_terms((x, y, z), 4) + extra


# --- attention ----------------------------------------------------------------------------------------------------


def context_attention_roofline_s(
    gpu: GpuSpec, kv_dtype: str, b: float, isl: float, nh: float, nkv: float, d: float, past: float = 0.0, window: int = 0
) -> float:
    """Prefill attention of `b` requests of `isl` new tokens after `past` cached ones (causal, optional window)."""
    span = past + isl / 2.0  # mean keys a causal query attends to
    if window:
        span = min(span, float(window))
    flops = 4.0 * b * nh * d * isl * span  # QK^T and PV, 2 FLOPs per multiply-add
    keys = past + isl if not window else min(past + isl, window + isl)
    nbytes = b * (2.0 * isl * nh * d * 2.0 + keys * 2.0 * nkv * d * KV_BYTES[kv_dtype])
    return max(flops / gpu.peak_flops("bf16"), nbytes / gpu.hbm_bytes_per_s)


def generation_attention_roofline_s(
    gpu: GpuSpec, kv_dtype: str, b: float, ctx: float, nh: float, nkv: float, d: float, window: int = 0
) -> float:
    """One decode step's attention for `b` requests each holding `ctx` cached tokens: streams their K and V."""
    keys = min(ctx, float(window)) if window else ctx
    flops = 4.0 * b * nh * d * keys
    nbytes = b * (keys * 2.0 * nkv * d * KV_BYTES[kv_dtype] + 2.0 * nh * d * 2.0)
    return max(flops / gpu.peak_flops("bf16"), nbytes / gpu.hbm_bytes_per_s)


def attention_features(b: float, length: float, nh: float, nkv: float, d: float) -> list[float]:
    r = ATTN_RANGE
    b = _clamp(b, *r["b"])
    length = _clamp(length, *r["len"])
    nh = _clamp(nh, *r["nh"])
    ratio = _clamp(nh / max(nkv, 1.0), *r["ratio"])
    d = _clamp(d, *r["d"])
    xs = (math.log2(b) / 11.0, math.log2(length) / 17.0, math.log2(nh) / 7.0, math.log2(ratio) / 7.0, math.log2(d) / 9.0)
    return poly_terms(xs, 4)


# --- collectives --------------------------------------------------------------------------------------------------


def collective_features(elements: float, lo: float, hi: float) -> list[float]:
    return poly_terms((math.log2(_clamp(elements, lo, hi)) / 29.0,), 6)


# --- the calibrated set -------------------------------------------------------------------------------------------


def _dot(coef: list[float], feats: list[float]) -> float:
    return sum(c * f for c, f in zip(coef, feats))


class Calibration:
    """The fitted coefficients of one `calibration.json`, with their provenance."""

    def __init__(self, data: dict[str, Any]):
        if data.get("features_version") != FEATURES_VERSION:
            raise ValueError(
                f"calibration file has features_version {data.get('features_version')!r}, this code evaluates "
                f"{FEATURES_VERSION!r}: re-run `make sizing-calibrate`"
            )
        self.data = data
        self.systems: dict[str, Any] = data["systems"]
        self.engines: dict[str, Any] = data["engines"]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.data["provenance"]

    def has(self, system: str) -> bool:
        return system in self.systems

    def _sys(self, system: str) -> dict[str, Any]:
        try:
            return self.systems[system]
        except KeyError:
            raise KeyError(f"no calibration for system {system!r}; calibrated: {', '.join(sorted(self.systems))}") from None

    # Each op returns milliseconds, the unit of the tables.
    def gemm_ms(self, system: str, dtype: str, m: float, n: float, k: float) -> float:
        return _gemm_ms(self, system, dtype, int(round(m)), int(n), int(k))

    def context_attention_ms(
        self, system: str, kv_dtype: str, b: float, isl: float, nh: float, nkv: float, d: float, past: float = 0.0, window: int = 0
    ) -> float:
        if b <= 0 or isl <= 0:
            return 0.0
        fit = self._sys(system)["context_attention"][kv_dtype]
        gpu = GPUS[self._sys(system)["gpu"]]
        roof = context_attention_roofline_s(gpu, kv_dtype, b, isl, nh, nkv, d, past, window)
        # The tables hold fresh prompts (no cached prefix); a chunk after `past` tokens is priced at its key span.
        eff = isl + past if not window else min(isl + past, window + isl)
        return roof * 1e3 * math.exp(_dot(fit["coef"], attention_features(b, eff, nh, nkv, d)))

    def generation_attention_ms(
        self, system: str, kv_dtype: str, b: float, ctx: float, nh: float, nkv: float, d: float, window: int = 0
    ) -> float:
        if b <= 0:
            return 0.0
        fit = self._sys(system)["generation_attention"][kv_dtype]
        gpu = GPUS[self._sys(system)["gpu"]]
        roof = generation_attention_roofline_s(gpu, kv_dtype, b, ctx, nh, nkv, d, window)
        keys = min(ctx, window) if window else ctx
        return roof * 1e3 * math.exp(_dot(fit["coef"], attention_features(b, max(keys, 1.0), nh, nkv, d)))

    def collective_ms(self, system: str, op: str, n_gpus: int, elements: float) -> float:
        """`op`: `allreduce_graph` (vLLM custom all-reduce in a CUDA graph, decode), `allreduce_eager` (prefill),
        `nccl_alltoall`. Elements are 16-bit values."""
        if n_gpus <= 1 or elements <= 0:
            return 0.0
        table = self._sys(system)["collectives"][op]
        key = str(n_gpus)
        if key not in table:
            # More GPUs than the tables measured (multi-node TP): the 8-GPU curve, scaled by the ring factor.
            big = max(table, key=int)
            scale = (2.0 * (n_gpus - 1) / n_gpus) / (2.0 * (int(big) - 1) / int(big))
            return self.collective_ms(system, op, int(big), elements) * scale
        fit = table[key]
        lo, hi = fit["range"]
        t = math.exp(_dot(fit["coef"], collective_features(elements, lo, hi)))
        if elements > hi:  # bandwidth-bound beyond the table: linear in size
            t *= elements / hi
        return t

    def engine(self, name: str) -> dict[str, Any]:
        return self.engines[name]


@lru_cache(maxsize=200_000)
def _gemm_ms(cal: Calibration, system: str, dtype: str, m: int, n: int, k: int) -> float:
    if m <= 0 or n <= 0 or k <= 0:
        return 0.0
    sysfit = cal._sys(system)
    fit = sysfit["gemm"][dtype]
    gpu = GPUS[sysfit["gpu"]]
    return gemm_roofline_s(gpu, dtype, m, n, k) * 1e3 * math.exp(_dot(fit["coef"], gemm_features(m, n, k)))


@lru_cache(maxsize=4)
def _load(path: str) -> Calibration:
    return Calibration(json.loads(Path(path).read_text()))


def calibration(path: Path | None = None) -> Calibration:
    """The committed calibration (or another file, e.g. a fresh one from `make sizing-calibrate`)."""
    return _load(str(path or CALIBRATION_FILE))


def system_of_gpu(gpu_model: str) -> str | None:
    """AIConfigurator's system name for a catalog GPU model (`H100` -> `h100_sxm`); None if none is calibrated."""
    for name, spec in GPUS.items():
        if spec.catalog_model == gpu_model and spec.system is not None:
            return spec.system
    return None
