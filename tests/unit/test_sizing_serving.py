"""Queueing and replay models of serving.py, against their definitions."""

from __future__ import annotations

import math

import pytest

from tooling.sizing import perf, serving
from tooling.sizing.fits import calibration
from facts.models import CATALOG


def _shape(key="llama-3.3-70b", weights="fp8", tp=4, system="h100_sxm"):
    return perf.Shape(model=CATALOG[key], system=system, weights=weights, tp=tp)


def test_wait_quantile_of_the_exponential_tail():
    assert serving.wait_quantile_ms(100.0, 0.05, 90.0) == 0.0  # fewer than 10% of requests wait at all
    # P(W > t) = rho exp(-rho t / W): at rho 0.5, mean 100 ms, the p90 wait is 200 ln 5.
    assert serving.wait_quantile_ms(100.0, 0.5, 90.0) == pytest.approx(200 * math.log(5))
    assert serving.z_of(90.0) == pytest.approx(1.2816, abs=1e-3)
    assert serving.z_of(80.0) == pytest.approx(0.8416, abs=1e-3)


def test_prefill_queue_is_md1():
    cal = calibration()
    shape = _shape()
    p = serving.prefill_point(cal, shape, 4096, rate=6.0, replicas=2, percentile=90.0)
    service = 1e3 / p.capacity_rps
    assert p.rho == pytest.approx(3.0 / p.capacity_rps)
    assert p.mean_wait_ms == pytest.approx(p.rho * service / (2 * (1 - p.rho)))
    assert p.ttft_p_ms > p.ttft_mean_ms > p.service_ms
    saturated = serving.prefill_point(cal, shape, 4096, rate=100.0, replicas=1, percentile=90.0)
    assert saturated.rho > 1 and math.isinf(saturated.ttft_p_ms)


def test_decode_batch_is_littles_law_fixed_point():
    cal = calibration()
    shape = _shape()
    ctx, lam, osl = 4096 + 256, 5.0, 512
    b = serving.decode_batch(cal, shape, ctx, lam, osl, limit=1000)
    assert b == pytest.approx(lam * osl * perf.decode_step_ms(cal, shape, math.ceil(b), ctx) / 1e3, rel=0.01)
    assert serving.decode_batch(cal, shape, ctx, 1000.0, osl, limit=100) is None  # no fixed point below the limit


def test_decode_point_respects_kv_capacity():
    cal = calibration()
    shape = _shape(tp=2)
    fit = perf.memory_fit(shape, 80, 0.9)
    point = serving.decode_point(cal, shape, fit, 4096, 512, rate=2.0, replicas=1, percentile=90.0)
    assert point.max_batch == fit.max_sequences(4608, shape)
    assert point.kv_tokens_needed == pytest.approx(point.batch_p * 4608)
    assert point.feasible == (math.ceil(point.batch_p) <= point.max_batch)


def test_kv_transfer_by_hand():
    shape = _shape()
    # performance.md section 3: 4,096 tokens of Llama-70B are 1.342 GB; one TP4 pod's 16 EFA carry 1,600 Gbps.
    x = serving.kv_transfer(shape, shape, 4096, 1600.0, 1600.0, rate_per_prefill=2.0)
    assert x.bytes_per_request == 4096 * 327_680
    assert x.ms == pytest.approx(4096 * 327_680 * 8 / 1600e9 * 1e3 + serving.KV_TRANSFER_SETUP_MS)
    assert x.load_gbps == pytest.approx(2.0 * 4096 * 327_680 * 8 / 1e9)
    # MLA: every decode rank pulls the whole latent.
    ds = _shape("deepseek-v3", "fp8_block", 8, "h200_sxm")
    y = serving.kv_transfer(ds, ds, 1000, 3200.0, 3200.0, 0.0)
    assert y.bytes_per_request == 8 * 1000 * 70_272


def test_closed_loop_obeys_littles_law():
    cal = calibration()
    shape = _shape("qwen3-32b", "bf16", 2)
    c, isl, osl = 16, 1024, 128
    res = serving.closed_loop_agg(cal, shape, c, isl, osl)
    per_request_s = (res.ttft_ms - serving.request_ms(cal, shape, isl) + (osl - 1) * res.tpot_ms) / 1e3
    assert res.throughput_rps == pytest.approx(c / per_request_s, rel=0.1)
    # SGLang-style scheduling (prompts in their own passes) pauses decode: higher ITL than fused chunks, lower TTFT.
    alt = serving.closed_loop_agg(cal, shape, c, isl, osl, fused=False)
    assert alt.tpot_ms != res.tpot_ms


def test_closed_loop_disagg_separates_the_phases():
    cal = calibration()
    p, d = _shape("qwen3-32b", "bf16", 2), _shape("qwen3-32b", "bf16", 4)
    res = serving.closed_loop_disagg(cal, p, d, 32, 2048, 128, prefill_workers=2, decode_workers=1, transfer_ms=5.0)
    assert res.ttft_ms > perf.prefill_ms(cal, p, 2048) + 5.0
    assert res.tpot_ms >= perf.decode_step_ms(cal, d, 1, 2048)
