"""The engine-step model: rooflines by hand, memory fit and its refusals, the calibration file it reads."""

from __future__ import annotations

import math

import pytest

from tooling.sizing import fits, perf
from tooling.sizing.fits import calibration
from tooling.sizing.gpus import GPUS
from facts.models import CATALOG

H100 = GPUS["H100-SXM"]
GIB = 2**30


def test_gemm_roofline_by_hand():
    # m = 1: streaming the 8192 x 8192 BF16 weight dominates: 134,250,496 bytes at 3.35 TB/s.
    assert fits.gemm_roofline_s(H100, "bf16", 1, 8192, 8192) == pytest.approx((8192 * 8192 * 2 + 8192 * 2 + 8192 * 2) / 3.35e12)
    # m = 8192: 2mnk FLOPs at 989.4 TFLOP/s dense.
    assert fits.gemm_roofline_s(H100, "bf16", 8192, 8192, 8192) == pytest.approx(2 * 8192**3 / 989.4e12)
    # FP8 runs at twice the rate and reads half the weight bytes.
    assert fits.gemm_roofline_s(H100, "fp8", 8192, 8192, 8192) == pytest.approx(2 * 8192**3 / 1978.9e12)


def test_attention_rooflines_by_hand():
    # Decode: 64 sequences x 4096 cached tokens x (K and V) x 2 KV heads x 128 x 2 bytes, plus q and o.
    b, ctx, nh, nkv, d = 64, 4096, 16, 2, 128
    nbytes = b * (ctx * 2 * nkv * d * 2 + 2 * nh * d * 2)
    assert fits.generation_attention_roofline_s(H100, "bf16", b, ctx, nh, nkv, d) == pytest.approx(nbytes / 3.35e12)
    # Prefill of 8192 tokens: causal, so each query sees isl/2 keys on average: 4 * nh * d * isl * isl/2 FLOPs.
    isl = 8192
    assert fits.context_attention_roofline_s(H100, "bf16", 1, isl, nh, nkv, d) == pytest.approx(4 * nh * d * isl * isl / 2 / 989.4e12)


def test_poly_terms_counts_every_monomial():
    assert len(fits.poly_terms((0.1, 0.2, 0.3), 4)) == math.comb(3 + 4, 4)
    assert len(fits.poly_terms((0.1,) * 5, 4)) == math.comb(5 + 4, 4)
    assert fits.poly_terms((2.0, 3.0), 2) == [1.0, 2.0, 3.0, 4.0, 6.0, 9.0]


def test_calibration_file_matches_the_feature_functions_and_names_its_sources():
    cal = calibration()
    assert cal.data["features_version"] == fits.FEATURES_VERSION
    for system, s in cal.systems.items():
        assert set(s["gemm"]) == set(fits.GEMM_DTYPES)
        for fit in s["gemm"].values():
            assert len(fit["coef"]) == len(fits.gemm_features(64, 4096, 4096))
        for phase in ("context_attention", "generation_attention"):
            for fit in s[phase].values():
                assert len(fit["coef"]) == len(fits.attention_features(8, 1024, 8, 1, 128))
        for op in s["collectives"].values():
            for fit in op.values():
                assert len(fit["coef"]) == len(fits.collective_features(1e6, *fit["range"]))
    prov = cal.provenance
    assert prov["upstream"]["aiconfigurator"]["commit"] == "095f58a51c4ca8e61b66ec108d86f223f8d559ce"
    assert all(len(t["sha256"]) == 64 for t in prov["tables"])
    assert "silicon_refs.csv" in " ".join(prov["not_fitted_to"])
    eng = cal.engine("vllm")
    assert eng["step_ms"] >= 0 and eng["per_seq_ms"] >= 0 and "dynamo-planner" in eng["fitted_on"]


def test_calibrated_times_respect_the_roofline():
    cal = calibration()
    for dtype in fits.GEMM_DTYPES:
        for m in (1, 64, 4096):
            t = cal.gemm_ms("h100_sxm", dtype, m, 8192, 8192)
            assert t >= 0.8 * fits.gemm_roofline_s(H100, dtype, m, 8192, 8192) * 1e3  # the tables never beat the datasheet by much
    # Beyond the tables, cost grows with the work (the correction is clamped, the roofline is not).
    assert cal.gemm_ms("h100_sxm", "bf16", 65536, 8192, 8192) == pytest.approx(2 * cal.gemm_ms("h100_sxm", "bf16", 32768, 8192, 8192), rel=0.05)
    assert cal.collective_ms("h100_sxm", "allreduce_graph", 1, 1e6) == 0.0
    assert cal.collective_ms("h100_sxm", "allreduce_graph", 8, 2e9) > 1.9 * cal.collective_ms("h100_sxm", "allreduce_graph", 8, 1e9)


def _shape(key, weights, tp, pp=1, system="h100_sxm"):
    return perf.Shape(model=CATALOG[key], system=system, weights=weights, tp=tp, pp=pp)


def test_weights_per_gpu_by_hand():
    m = CATALOG["llama-3.3-70b"]
    shape = _shape("llama-3.3-70b", "fp8", 2)
    norms = 80 * 2 * 8192 + 8192
    # Everything but the norms is split over TP; the norms are replicated on every rank.
    assert perf.weights_per_gpu(shape) == pytest.approx((m.weight_bytes("fp8") - norms * 2) / 2 + norms * 2)


def test_kv_capacity_is_what_memory_leaves_over_the_formula():
    shape = _shape("llama-3.3-70b", "fp8", 2)
    fit = perf.memory_fit(shape, 80, 0.9)
    assert fit.kv_bytes == pytest.approx(80 * GIB * 0.9 - fit.weights_bytes - fit.reserve_bytes)
    assert fit.kv_tokens == int(fit.kv_bytes // (327_680 / 2))
    # performance.md section 3/4 formula: (90% of HBM - weights/TP - 3 GB) x TP / KV bytes per token, within 10%.
    formula = (0.9 * 80 * GIB - CATALOG["llama-3.3-70b"].weight_bytes("fp8") / 2 - 3e9) * 2 / 327_680
    assert fit.kv_tokens == pytest.approx(formula, rel=0.10)
    assert fit.max_sequences(4096 + 512, shape) == int(fit.kv_bytes // (4608 * 327_680 / 2))


def test_mla_kv_capacity_is_not_multiplied_by_tp():
    fit = perf.memory_fit(_shape("deepseek-v3", "fp8_block", 8, system="h200_sxm"), 141, 0.9)
    assert fit.kv_bytes_per_token == CATALOG["deepseek-v3"].kv_bytes_per_token(2.0)
    assert fit.kv_tokens == int(fit.kv_bytes // fit.kv_bytes_per_token)
    assert any("replicated" in n for n in fit.notes)


def test_infeasible_shapes_are_refused_with_the_reason():
    with pytest.raises(perf.Infeasible, match=r"leaving .* for the KV cache"):
        perf.memory_fit(_shape("llama-3.3-70b", "bf16", 2), 80, 0.9)  # 70B BF16 at TP2 on H100
    with pytest.raises(perf.Infeasible, match=r"673 GB in all\) but a H100 gives the engine 72.0 GiB"):
        perf.memory_fit(_shape("deepseek-v3", "fp8_block", 8), 80, 0.9)  # 671B FP8 on one p5
    with pytest.raises(perf.Infeasible, match="does not divide the 64 attention heads"):
        perf.check_layout(_shape("llama-3.3-70b", "fp8", 3))
    perf.memory_fit(_shape("llama-3.3-70b", "bf16", 4), 80, 0.9)  # fits


def test_decode_step_is_bounded_below_by_streaming_the_weights():
    cal = calibration()
    shape = _shape("llama-3.3-70b", "fp8", 4)
    t = perf.decode_step_ms(cal, shape, 1, 1024, overheads=False)
    floor = perf.weights_per_gpu(shape) / H100.hbm_bytes_per_s * 1e3
    assert floor < t < 3 * floor
    # More sequences and longer contexts cost more.
    assert perf.decode_step_ms(cal, shape, 64, 1024) > perf.decode_step_ms(cal, shape, 1, 1024)
    assert perf.decode_step_ms(cal, shape, 64, 8192) > perf.decode_step_ms(cal, shape, 64, 1024)


def test_prefill_is_bounded_below_by_its_flops_and_chunks_long_prompts():
    cal = calibration()
    shape = _shape("llama-3.3-70b", "fp8", 4)
    m = CATALOG["llama-3.3-70b"]
    t = perf.prefill_ms(cal, shape, 4096, overheads=False)
    assert t > m.flops_per_token(2048) * 4096 / 4 / H100.fp8_flops * 1e3
    assert perf.chunks(20000, 8192) == [(8192, 0), (8192, 8192), (3616, 16384)]
    assert perf.prefill_ms(cal, shape, 16384) > 2 * perf.prefill_ms(cal, shape, 8192) * 0.9
    cost = perf.forward_cost(cal, shape, prefill=((1, 4096, 0),))
    assert cost.total == pytest.approx(sum((cost.gemm, cost.attention, cost.moe, cost.allreduce, cost.elementwise, cost.lm_head, cost.pipeline, cost.overhead)))
    assert cost.allreduce > 0 and cost.moe == 0


def test_moe_touches_only_routed_experts_in_decode():
    cal = calibration()
    shape = _shape("qwen3-235b-a22b", "fp8_block", 8, system="h200_sxm")
    one = perf.forward_cost(cal, shape, decode_seqs=1, decode_ctx=1024).moe
    many = perf.forward_cost(cal, shape, decode_seqs=256, decode_ctx=1024).moe
    assert 0 < one < many < 256 * one
