"""The model catalog and its formulas, against hand-computed cases."""

from __future__ import annotations

import json

import pytest

from facts import models
from facts.models import CATALOG, from_hf_config, load_config_json, lookup


def test_llama_8b_parameter_count_by_hand():
    m = CATALOG["llama-3.1-8b"]
    embeddings = 128256 * 4096 * 2  # untied embedding and LM head
    per_layer = 4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096
    assert m.total_params == embeddings + 32 * per_layer + 4096 == 8_030_261_248  # HF reports 8,030,261,248


@pytest.mark.parametrize(
    "key,billions",
    [
        ("llama-3.1-70b", 70.55), ("llama-3.1-405b", 405.85), ("qwen3-32b", 32.76), ("qwen3-235b-a22b", 235.09),
        ("deepseek-v3", 671.03), ("glm-5", 743.91), ("gpt-oss-120b", 116.83), ("kimi-k2", 1026.41),
    ],
)
def test_parameter_counts_match_the_published_sizes(key, billions):
    assert CATALOG[key].params_billions == pytest.approx(billions, abs=0.01)


@pytest.mark.parametrize("key,active", [("qwen3-235b-a22b", 22.19), ("deepseek-v3", 37.55), ("gpt-oss-120b", 5.71)])
def test_moe_active_parameters(key, active):
    assert CATALOG[key].active_params / 1e9 == pytest.approx(active, abs=0.01)


def test_kv_bytes_per_token_gqa():
    # 2 (K, V) x layers x KV heads x head dim x bytes (performance.md section 3)
    assert CATALOG["llama-3.1-8b"].kv_bytes_per_token(2.0) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert CATALOG["llama-3.3-70b"].kv_bytes_per_token(2.0) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert CATALOG["qwen3-235b-a22b"].kv_bytes_per_token(2.0) == 2 * 94 * 4 * 128 * 2 == 192_512
    assert CATALOG["llama-3.3-70b"].kv_bytes_per_token(1.0) == 163_840  # FP8 cache halves it


def test_kv_bytes_per_token_mla_is_the_latent_not_the_heads():
    ds = CATALOG["deepseek-v3"]
    assert ds.kv_bytes_per_token(2.0) == 61 * (512 + 64) * 2 == 70_272
    assert ds.kv_bytes_per_token(1.0) == 35_136
    # What GQA arithmetic would give for its 128 heads of 128: 28x more.
    assert 2 * 61 * 128 * 128 * 2 / ds.kv_bytes_per_token(2.0) > 28


def test_kv_bytes_per_token_dsa_adds_the_indexer_keys():
    # GLM-5: 512 + 64 latent in BF16, plus 128 FP8 indexer values and one FP32 scale per token and layer.
    assert CATALOG["glm-5"].kv_bytes_per_token(2.0) == 78 * ((512 + 64) * 2 + 128 + 4) == 100_152


def test_kv_shard_over_tp():
    llama = CATALOG["llama-3.3-70b"]
    assert llama.kv_shard(4) == pytest.approx(1 / 4)
    assert llama.kv_bytes_per_token_per_gpu(4, 1, 2.0) == 327_680 / 4
    qwen = CATALOG["qwen3-235b-a22b"]  # 4 KV heads: at TP8 each rank still holds a whole head
    assert qwen.kv_shard(8) == pytest.approx(1 / 4)
    ds = CATALOG["deepseek-v3"]  # MLA latent is replicated on every rank
    assert ds.kv_bytes_per_token_per_gpu(8, 1, 2.0) == ds.kv_bytes_per_token(2.0)
    assert llama.kv_bytes_per_token_per_gpu(8, 2, 2.0) == 327_680 / 8 / 2  # PP splits the layers


def test_sliding_window_layers_hold_only_their_window():
    oss = CATALOG["gpt-oss-120b"]
    per_layer = 2 * 8 * 64 * 2
    assert oss.kv_bytes_per_sequence(10_000, 2.0) == per_layer * (18 * 10_000 + 18 * 128)
    assert oss.kv_bytes_per_sequence(100, 2.0) == per_layer * 36 * 100


def test_weight_bytes_keep_embeddings_in_bf16():
    m = CATALOG["llama-3.3-70b"]
    emb = 2 * 128256 * 8192
    norms = 80 * 2 * 8192 + 8192
    assert m.weight_bytes("bf16") == m.total_params * 2
    assert m.weight_bytes("fp8") == pytest.approx((emb + norms) * 2 + (m.total_params - emb - norms) * 1)
    oss = CATALOG["gpt-oss-120b"]
    routed = oss.param_breakdown()["routed_experts"]
    assert oss.weight_bytes("mxfp4") == pytest.approx((oss.total_params - routed) * 2 + routed * 4.25 / 8)


def test_flops_per_token():
    m = CATALOG["llama-3.1-8b"]
    linear = m.total_params - 128256 * 4096 - (32 * 2 * 4096 + 4096)  # LM head counted once, lookups and norms not
    assert m.flops_per_token(0) == 2 * linear
    assert m.flops_per_token(1000) - m.flops_per_token(0) == 32 * 4 * 32 * 128 * 1000


def test_from_hf_config_reads_dense_moe_mla_and_gpt_oss_layouts():
    llama = from_hf_config(
        {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
         "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}
    )
    assert llama.total_params == CATALOG["llama-3.1-8b"].total_params and not llama.is_moe
    ds = from_hf_config(
        {"num_hidden_layers": 61, "hidden_size": 7168, "num_attention_heads": 128, "num_key_value_heads": 128,
         "intermediate_size": 18432, "vocab_size": 129280, "q_lora_rank": 1536, "kv_lora_rank": 512,
         "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256,
         "num_experts_per_tok": 8, "moe_intermediate_size": 2048, "n_shared_experts": 1, "first_k_dense_replace": 3,
         "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    )
    assert ds.total_params == CATALOG["deepseek-v3"].total_params
    assert ds.is_mla and ds.default_format("custom") == "fp8_block"
    oss = from_hf_config(
        {"num_hidden_layers": 36, "hidden_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
         "intermediate_size": 2880, "vocab_size": 201088, "num_local_experts": 128, "experts_per_token": 4, "model_type": "gpt_oss",
         "attention_bias": True, "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"] * 18,
         "quantization_config": {"quant_method": "mxfp4"}}
    )
    assert oss.total_params == CATALOG["gpt-oss-120b"].total_params
    assert (oss.ffn, oss.moe_ffn, oss.sliding_layers) == (0, 2880, 18)


def test_from_hf_config_reads_a_multimodal_text_config(tmp_path):
    cfg = {"text_config": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100, "intermediate_size": 128}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    arch, fmt = load_config_json(tmp_path / "config.json")
    assert (arch.layers, arch.kv_heads, arch.head_dim, fmt) == (2, 4, 16, "bf16")


def test_from_hf_config_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(models.ModelConfigError, match="num_hidden_layers"):
        from_hf_config({"hidden_size": 10})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(models.ModelConfigError, match="cannot read"):
        load_config_json(tmp_path / "bad.json")


def test_lookup_by_key_or_any_listed_hugging_face_id():
    assert lookup("nvidia/Llama-3.3-70B-Instruct-FP8") is CATALOG["llama-3.3-70b"]
    assert lookup("NVIDIA/llama-3.3-70b-instruct-fp8") is CATALOG["llama-3.3-70b"]
    assert lookup("deepseek-r1").name == "DeepSeek-R1"
    assert lookup("someone/unknown-model") is None
    assert CATALOG["llama-3.3-70b"].default_format("nvidia/Llama-3.3-70B-Instruct-FP8") == "fp8"
    assert CATALOG["qwen3-32b"].default_format("Qwen/Qwen3-32B-FP8") == "fp8_block"


REQUIRED = ["llama-3.1-8b", "llama-3.3-70b", "llama-3.1-70b", "llama-3.1-405b", "qwen3-32b", "qwen3-235b-a22b",
            "deepseek-v3", "deepseek-r1", "glm-5", "gpt-oss-120b", "kimi-k2"]


@pytest.mark.parametrize("key", REQUIRED)
def test_every_issue_model_is_catalogued_with_its_config_source(key):
    m = CATALOG[key]
    assert m.config_url.startswith("https://huggingface.co/") and m.config_url.endswith("/config.json")
    assert "github.com" in m.read_via and ("/blob/" in m.read_via)
    assert m.hf_ids and all(lookup(i) is m for i in m.hf_ids)
