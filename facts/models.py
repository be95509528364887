"""Model catalog: the architecture facts a sizing model needs, for the models people serve disaggregated.

Every entry cites the Hugging Face `config.json` it was transcribed from (`config_url`) and where that file was
read (`read_via`: a verbatim copy in a public repository at a commit, since this project reads upstream offline).
`from_hf_config` turns any Hugging Face config.json (a local file via `load_config_json`) into the same record, so a
model that is not in the catalog can still be planned.

Formulas (unit-tested against hand-computed cases in tests/unit/test_sizing_models.py):

* parameters: embeddings (+ an untied LM head), per layer attention (GQA: q, k, v, o; MLA: q_a, q_b, kv_a, kv_b, o,
  plus DSA's indexer), dense SwiGLU MLP (3 x hidden x ffn) or MoE (experts x 3 x hidden x moe_ffn, shared experts,
  router). Norms and biases are counted too; MTP/next-token-prediction layers are not (engines do not load them
  unless speculative decoding is on).
* KV bytes per token (the whole model): GQA 2 (K and V) x layers x kv_heads x head_dim x bytes; MLA layers x
  (kv_lora_rank + qk_rope_head_dim) x bytes, plus DSA's indexer keys. MLA's latent is the same on every TP rank
  (replicated, not sharded), which `kv_bytes_per_token_per_gpu` accounts for; GQA shards KV heads over TP and
  replicates them once TP exceeds the KV-head count.
* FLOPs per token: 2 x the active linear parameters (one multiply-add each) + attention 4 x heads x head_dim x
  attended context per layer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

_AIC = "https://github.com/ai-dynamo/aiconfigurator/blob"
_AIC_CORE = f"{_AIC}/095f58a51c4ca8e61b66ec108d86f223f8d559ce/aic-core/src/aiconfigurator_core/model_configs"
_HF = "https://huggingface.co"

# Checkpoint weight formats: how the weights are stored, which decides bytes per parameter and the GEMM kernel.
# `fp8`: per-tensor/per-channel scaled FP8 (NVIDIA ModelOpt, RedHatAI compressed-tensors); `fp8_block`: 128x128
# block-scaled FP8 (DeepSeek-style checkpoints); `mxfp4`: OCP MX FP4 experts (gpt-oss), 4 bits + one 8-bit scale per
# 32 values = 4.25 bits.
WEIGHT_FORMATS = ("bf16", "fp8", "fp8_block", "mxfp4")
_FORMAT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0 + 4.0 / (128 * 128), "mxfp4": 4.25 / 8}


@dataclass(frozen=True)
class ModelArch:
    key: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int  # dense MLP intermediate size (0 when every layer is MoE)
    vocab: int
    tie_embeddings: bool = False
    attention_bias: bool = False
    # MLA (DeepSeek-style latent attention); kv_lora_rank == 0 means GQA
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DSA (DeepSeek sparse attention) indexer
    index_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0
    # MoE
    experts: int = 0
    experts_per_token: int = 0
    moe_ffn: int = 0
    shared_ffn: int = 0  # total intermediate size of the shared expert(s)
    dense_layers: int = 0  # leading layers with a dense MLP in a MoE model
    expert_bias: bool = False  # gpt-oss experts carry biases
    # sliding-window attention
    sliding_window: int = 0
    sliding_layers: int = 0
    max_position: int = 0
    # provenance
    name: str = ""
    hf_ids: tuple[str, ...] = ()
    config_url: str = ""
    read_via: str = ""
    notes: str = ""
    formats: dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # hf id -> checkpoint format

    # --- shape -----------------------------------------------------------------------------------------------------
    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (heads x per-head query size)."""
        if self.is_mla:
            return self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        return self.heads * self.head_dim

    @property
    def o_in(self) -> int:
        """Input width of the output projection (heads x value size)."""
        return self.heads * (self.v_head_dim if self.is_mla else self.head_dim)

    # --- parameters ------------------------------------------------------------------------------------------------
    def attention_params(self) -> int:
        """One layer's attention weights (and biases, norms of the latent ranks)."""
        h = self.hidden
        if self.is_mla:
            q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.q_dim) if self.q_lora_rank else h * self.q_dim
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.o_in * h
            idx = 0
            if self.index_heads:
                # DSA indexer: query from the q latent, one key head from the hidden state, per-head weights.
                idx = self.q_lora_rank * self.index_heads * self.index_head_dim + h * self.index_head_dim + 2 * self.index_head_dim
                idx += h * self.index_heads
            return q + kv_a + kv_b + o + idx
        qkv = h * (self.heads + 2 * self.kv_heads) * self.head_dim
        o = self.heads * self.head_dim * h
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim + h if self.attention_bias else 0
        sinks = self.heads if self.sliding_window and self.attention_bias else 0  # gpt-oss attention sinks
        return qkv + o + bias + sinks

    def dense_mlp_params(self) -> int:
        return 3 * self.hidden * self.ffn

    def expert_params(self) -> int:
        """One routed expert (gate, up, down), with its biases when the model has them."""
        p = 3 * self.hidden * self.moe_ffn
        if self.expert_bias:
            p += 2 * self.moe_ffn + self.hidden
        return p

    def moe_layer_params(self) -> tuple[int, int]:
        """(routed expert parameters, everything else of the MoE block: shared experts and the router)."""
        routed = self.experts * self.expert_params()
        other = 3 * self.hidden * self.shared_ffn + self.hidden * self.experts + (self.experts if self.expert_bias else 0)
        return routed, other

    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    def param_breakdown(self) -> dict[str, int]:
        routed, moe_other = self.moe_layer_params() if self.is_moe else (0, 0)
        norms = self.layers * 2 * self.hidden + self.hidden
        dense_layers = self.dense_layers if self.is_moe else self.layers
        return {
            "embeddings": self.embedding_params(),
            "attention": self.layers * self.attention_params(),
            "dense_mlp": dense_layers * self.dense_mlp_params(),
            "routed_experts": self.moe_layers * routed,
            "moe_other": self.moe_layers * moe_other,
            "norms": norms,
        }

    @property
    def total_params(self) -> int:
        return sum(self.param_breakdown().values())

    @property
    def active_params(self) -> int:
        """Parameters one token passes through (routed experts: only its top-k)."""
        b = self.param_breakdown()
        if not self.is_moe:
            return sum(b.values())
        active_routed = self.moe_layers * self.experts_per_token * self.expert_params()
        return b["embeddings"] + b["attention"] + b["dense_mlp"] + b["moe_other"] + b["norms"] + active_routed

    @property
    def params_billions(self) -> float:
        return self.total_params / 1e9

    # --- bytes -----------------------------------------------------------------------------------------------------
    def weight_bytes(self, fmt: str) -> float:
        """Bytes of the weights as loaded. Quantized checkpoints keep embeddings, LM head, norms and the MoE router in
        BF16; `mxfp4` quantizes only the routed experts (gpt-oss keeps attention in BF16)."""
        if fmt not in _FORMAT_BYTES:
            raise ValueError(f"unknown weight format {fmt!r}; known: {', '.join(WEIGHT_FORMATS)}")
        b = self.param_breakdown()
        bf16 = b["embeddings"] + b["norms"] + (self.moe_layers * self.hidden * self.experts if self.is_moe else 0)
        rest = self.total_params - bf16
        if fmt == "mxfp4":
            routed = b["routed_experts"]
            return (bf16 + rest - routed) * 2.0 + routed * _FORMAT_BYTES["mxfp4"]
        return bf16 * 2.0 + rest * _FORMAT_BYTES[fmt]

    def kv_bytes_per_token_per_layer(self, kv_bytes: float) -> float:
        """Cache bytes one token adds to one full-attention layer (the whole layer, before any TP split)."""
        if self.is_mla:
            per = (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes
            if self.index_heads:
                # DSA also caches one indexer key per token: FP8 values plus one FP32 scale per 128 (vLLM stores it so).
                per += self.index_head_dim + 4 * math.ceil(self.index_head_dim / 128)
            return per
        return 2.0 * self.kv_heads * self.head_dim * kv_bytes

    def kv_bytes_per_token(self, kv_bytes: float = 2.0) -> float:
        """Whole-model KV bytes per token of context (sliding layers counted as full; see kv_bytes_per_sequence)."""
        return self.layers * self.kv_bytes_per_token_per_layer(kv_bytes)

    def kv_bytes_per_sequence(self, ctx: int, kv_bytes: float = 2.0) -> float:
        """KV bytes one sequence of `ctx` tokens holds: sliding-window layers keep only their window."""
        full = self.layers - self.sliding_layers
        windowed = min(ctx, self.sliding_window) if self.sliding_layers else 0
        return self.kv_bytes_per_token_per_layer(kv_bytes) * (full * ctx + self.sliding_layers * windowed)

    def kv_shard(self, tp: int) -> float:
        """Fraction of a layer's KV one TP rank holds: 1/TP of the KV heads, at least one head (replicated once TP
        exceeds the KV heads); MLA's latent is held whole by every rank."""
        if self.is_mla:
            return 1.0
        return max(1, math.ceil(self.kv_heads / tp)) / self.kv_heads

    def kv_bytes_per_token_per_gpu(self, tp: int, pp: int = 1, kv_bytes: float = 2.0) -> float:
        return self.kv_bytes_per_token(kv_bytes) * self.kv_shard(tp) / pp

    # --- FLOPs -----------------------------------------------------------------------------------------------------
    def linear_params_per_token(self) -> int:
        """Parameters of every matrix a token multiplies (active experts only; no embedding lookup, with the LM head)."""
        b = self.param_breakdown()
        lm_head = self.vocab * self.hidden
        return self.active_params - b["embeddings"] - b["norms"] + lm_head

    def flops_per_token(self, context: float) -> float:
        """Forward FLOPs of one token attending to `context` tokens (linear layers + attention scores and values)."""
        if self.is_mla:
            attn = 2.0 * self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim) * context
        else:
            attn = 4.0 * self.heads * self.head_dim * context
        full = self.layers - self.sliding_layers
        windowed = min(context, self.sliding_window) if self.sliding_layers else 0
        per_layer_ctx = (full * attn + self.sliding_layers * attn * (windowed / context if context else 0)) if context else 0.0
        return 2.0 * self.linear_params_per_token() + per_layer_ctx

    def default_format(self, model_id: str | None = None) -> str:
        return self.formats.get(model_id or "", "bf16")


# --- Hugging Face config.json --------------------------------------------------------------------------------------


class ModelConfigError(ValueError):
    pass


def _get(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def _format_of(cfg: dict[str, Any]) -> str:
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4":
        return "mxfp4"
    if method == "fp8":
        return "fp8_block" if q.get("weight_block_size") else "fp8"
    if method in ("modelopt", "compressed-tensors", "fbgemm_fp8"):
        return "fp8"
    return "bf16"


def from_hf_config(cfg: dict[str, Any], key: str = "custom") -> ModelArch:
    """A `ModelArch` from a Hugging Face config.json (dense GQA, Qwen3-MoE, DeepSeek/Kimi MLA-MoE, GLM-5 DSA,
    gpt-oss, MiniMax-M2). Multimodal configs are read from their `text_config`."""
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "quantization_config": cfg.get("quantization_config")}
    missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size") if cfg.get(k) is None]
    if missing:
        raise ModelConfigError(f"config.json lacks {', '.join(missing)}: not a decoder-only transformer config this planner reads")
    layers = int(cfg["num_hidden_layers"])
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(_get(cfg, "num_key_value_heads", default=heads))
    kv_lora = int(_get(cfg, "kv_lora_rank", default=0) or 0)
    # MLA configs carry no head_dim (DeepSeek) or only the RoPE part (GLM-5); it is informational for them.
    head_dim = int(_get(cfg, "head_dim", default=0) or 0) or (int(cfg.get("qk_nope_head_dim") or 0) if kv_lora else hidden // heads)
    experts = int(_get(cfg, "n_routed_experts", "num_experts", "num_local_experts", default=0) or 0)
    moe = experts > 0
    moe_ffn = int(_get(cfg, "moe_intermediate_size", default=0) or 0)
    ffn = int(_get(cfg, "intermediate_size", default=0) or 0)
    if moe and not moe_ffn:  # gpt-oss, MiniMax-M2: intermediate_size is the expert's width, no dense MLP
        moe_ffn, ffn = ffn, 0
    shared = int(_get(cfg, "n_shared_experts", default=0) or 0) * moe_ffn
    shared = shared or int(_get(cfg, "shared_intermediate_size", "shared_expert_intermediate_size", default=0) or 0)
    dense_layers = int(_get(cfg, "first_k_dense_replace", default=0) or 0) if moe else 0
    layer_types = cfg.get("layer_types") or []
    sliding_layers = sum(1 for t in layer_types if t == "sliding_attention")
    arch = ModelArch(
        key=key,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads if not kv_lora else heads,
        head_dim=head_dim,
        ffn=ffn if (not moe or dense_layers) else 0,
        vocab=int(cfg["vocab_size"]),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention_bias=bool(cfg.get("attention_bias", False)),
        q_lora_rank=int(_get(cfg, "q_lora_rank", default=0) or 0) if kv_lora else 0,
        kv_lora_rank=kv_lora,
        qk_nope_head_dim=int(_get(cfg, "qk_nope_head_dim", default=0) or 0) if kv_lora else 0,
        qk_rope_head_dim=int(_get(cfg, "qk_rope_head_dim", default=0) or 0) if kv_lora else 0,
        v_head_dim=int(_get(cfg, "v_head_dim", default=0) or 0) if kv_lora else 0,
        index_heads=int(_get(cfg, "index_n_heads", default=0) or 0) if kv_lora else 0,
        index_head_dim=int(_get(cfg, "index_head_dim", default=0) or 0) if kv_lora else 0,
        index_topk=int(_get(cfg, "index_topk", default=0) or 0) if kv_lora else 0,
        experts=experts,
        experts_per_token=int(_get(cfg, "num_experts_per_tok", "experts_per_token", default=0) or 0) if moe else 0,
        moe_ffn=moe_ffn if moe else 0,
        shared_ffn=shared if moe else 0,
        dense_layers=dense_layers,
        expert_bias=moe and cfg.get("model_type") == "gpt_oss",
        sliding_window=int(cfg.get("sliding_window") or 0) if sliding_layers else 0,
        sliding_layers=sliding_layers,
        max_position=int(cfg.get("max_position_embeddings") or 0),
        name=key,
    )
    fmt = _format_of(cfg)
    return replace(arch, formats={key: fmt})


def load_config_json(path: str | Path) -> tuple[ModelArch, str]:
    """A local config.json -> (architecture, checkpoint weight format its quantization_config declares)."""
    p = Path(path)
    try:
        cfg = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ModelConfigError(f"cannot read {p}: {exc}") from None
    arch = from_hf_config(cfg, key=p.parent.name or p.stem)
    arch = replace(arch, config_url=str(p), read_via=f"local file {p}")
    return arch, arch.default_format(arch.key)


# --- the catalog ---------------------------------------------------------------------------------------------------


def _entry(key: str, name: str, config_url: str, read_via: str, formats: dict[str, str], notes: str = "", **shape: Any) -> ModelArch:
    return ModelArch(key=key, name=name, hf_ids=tuple(formats), config_url=config_url, read_via=read_via, notes=notes, formats=formats, **shape)


def _aic(file: str) -> str:
    return f"verbatim copy at {_AIC_CORE}/{file}"


_LLAMA_8B = dict(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, ffn=14336, vocab=128256, max_position=131072)
_LLAMA_70B = dict(layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128, ffn=28672, vocab=128256, max_position=131072)
_DEEPSEEK = dict(
    layers=61, hidden=7168, heads=128, kv_heads=128, head_dim=128, ffn=18432, vocab=129280,
    q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
    experts=256, experts_per_token=8, moe_ffn=2048, shared_ffn=2048, dense_layers=3, max_position=163840,
)

CATALOG: dict[str, ModelArch] = {
    m.key: m
    for m in (
        _entry(
            "llama-3.1-8b", "Llama-3.1-8B",
            f"{_HF}/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json",
            _aic("meta-llama--Meta-Llama-3.1-8B_config.json"),
            {"meta-llama/Llama-3.1-8B-Instruct": "bf16", "meta-llama/Llama-3.1-8B": "bf16",
             "meta-llama/Meta-Llama-3.1-8B-Instruct": "bf16", "nvidia/Llama-3.1-8B-Instruct-FP8": "fp8",
             "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8": "fp8"},
            **_LLAMA_8B,
        ),
        _entry(
            "llama-3.1-70b", "Llama-3.1-70B",
            f"{_HF}/meta-llama/Llama-3.1-70B-Instruct/blob/main/config.json",
            _aic("meta-llama--Meta-Llama-3.1-70B_config.json"),
            {"meta-llama/Llama-3.1-70B-Instruct": "bf16", "meta-llama/Llama-3.1-70B": "bf16",
             "meta-llama/Meta-Llama-3.1-70B-Instruct": "bf16", "nvidia/Llama-3.1-70B-Instruct-FP8": "fp8",
             "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8": "fp8"},
            **_LLAMA_70B,
        ),
        _entry(
            "llama-3.3-70b", "Llama-3.3-70B",
            f"{_HF}/meta-llama/Llama-3.3-70B-Instruct/blob/main/config.json",
            f"verbatim copy at {_AIC}/f577ab8432dfc9970fea27853a24861a6d3076cf/src/aiconfigurator/model_configs/"
            "meta-llama--Llama-3.3-70B-Instruct_config.json",
            {"meta-llama/Llama-3.3-70B-Instruct": "bf16", "nvidia/Llama-3.3-70B-Instruct-FP8": "fp8",
             "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic": "fp8"},
            notes="Same architecture as Llama-3.1-70B.",
            **_LLAMA_70B,
        ),
        _entry(
            "llama-3.1-405b", "Llama-3.1-405B",
            f"{_HF}/meta-llama/Llama-3.1-405B-Instruct/blob/main/config.json",
            _aic("meta-llama--Meta-Llama-3.1-405B_config.json"),
            {"meta-llama/Llama-3.1-405B-Instruct": "bf16", "meta-llama/Llama-3.1-405B": "bf16",
             "meta-llama/Llama-3.1-405B-Instruct-FP8": "fp8", "nvidia/Llama-3.1-405B-Instruct-FP8": "fp8"},
            layers=126, hidden=16384, heads=128, kv_heads=8, head_dim=128, ffn=53248, vocab=128256, max_position=131072,
        ),
        _entry(
            "qwen3-8b", "Qwen3-8B",
            f"{_HF}/Qwen/Qwen3-8B/blob/main/config.json",
            _aic("Qwen--Qwen3-8B_config.json"),
            {"Qwen/Qwen3-8B": "bf16", "Qwen/Qwen3-8B-FP8": "fp8_block"},
            layers=36, hidden=4096, heads=32, kv_heads=8, head_dim=128, ffn=12288, vocab=151936, max_position=40960,
        ),
        _entry(
            "qwen3-32b", "Qwen3-32B",
            f"{_HF}/Qwen/Qwen3-32B/blob/main/config.json",
            _aic("Qwen--Qwen3-32B_config.json"),
            {"Qwen/Qwen3-32B": "bf16", "Qwen/Qwen3-32B-FP8": "fp8_block"},
            layers=64, hidden=5120, heads=64, kv_heads=8, head_dim=128, ffn=25600, vocab=151936, max_position=40960,
        ),
        _entry(
            "qwen3-235b-a22b", "Qwen3-235B-A22B",
            f"{_HF}/Qwen/Qwen3-235B-A22B/blob/main/config.json",
            _aic("Qwen--Qwen3-235B-A22B_config.json"),
            {"Qwen/Qwen3-235B-A22B": "bf16", "Qwen/Qwen3-235B-A22B-FP8": "fp8_block",
             "Qwen/Qwen3-235B-A22B-Instruct-2507": "bf16", "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": "fp8_block"},
            layers=94, hidden=4096, heads=64, kv_heads=4, head_dim=128, ffn=0, vocab=151936,
            experts=128, experts_per_token=8, moe_ffn=1536, max_position=40960,
        ),
        _entry(
            "deepseek-v3", "DeepSeek-V3",
            f"{_HF}/deepseek-ai/DeepSeek-V3/blob/main/config.json",
            _aic("deepseek-ai--DeepSeek-V3_config.json") + "; cross-checked with https://github.com/deepseek-ai/"
            "DeepSeek-V3/blob/9b4e978/inference/configs/config_671B.json",
            {"deepseek-ai/DeepSeek-V3": "fp8_block", "deepseek-ai/DeepSeek-V3-0324": "fp8_block"},
            notes="MLA: 576 cached values per token per layer (512 latent + 64 RoPE key), the same on every TP rank. "
            "The one MTP layer (num_nextn_predict_layers) is not counted.",
            **_DEEPSEEK,
        ),
        _entry(
            "deepseek-r1", "DeepSeek-R1",
            f"{_HF}/deepseek-ai/DeepSeek-R1/blob/main/config.json",
            _aic("deepseek-ai--DeepSeek-R1_config.json"),
            {"deepseek-ai/DeepSeek-R1": "fp8_block", "deepseek-ai/DeepSeek-R1-0528": "fp8_block"},
            notes="Same architecture as DeepSeek-V3.",
            **_DEEPSEEK,
        ),
        _entry(
            "glm-5", "GLM-5",
            f"{_HF}/zai-org/GLM-5/blob/main/config.json",
            _aic("zai-org--GLM-5_config.json") + " (and zai-org--GLM-5-FP8_config.json)",
            {"zai-org/GLM-5": "bf16", "zai-org/GLM-5-FP8": "fp8_block"},
            notes="MLA + DSA: each query attends to the index_topk tokens its indexer picks; the indexer keys are cached "
            "too (128 FP8 values + a scale per token per layer).",
            layers=78, hidden=6144, heads=64, kv_heads=64, head_dim=64, ffn=12288, vocab=154880,
            q_lora_rank=2048, kv_lora_rank=512, qk_nope_head_dim=192, qk_rope_head_dim=64, v_head_dim=256,
            index_heads=32, index_head_dim=128, index_topk=2048,
            experts=256, experts_per_token=8, moe_ffn=2048, shared_ffn=2048, dense_layers=3, max_position=202752,
        ),
        _entry(
            "gpt-oss-120b", "gpt-oss-120b",
            f"{_HF}/openai/gpt-oss-120b/blob/main/config.json",
            _aic("openai--gpt-oss-120b_config.json") + "; cross-checked with https://github.com/openai/gpt-oss/blob/"
            "0568dfc/gpt_oss/torch/model.py (ModelConfig)",
            {"openai/gpt-oss-120b": "mxfp4"},
            notes="Routed experts in MXFP4, attention in BF16; every other layer attends to a 128-token sliding window.",
            layers=36, hidden=2880, heads=64, kv_heads=8, head_dim=64, ffn=0, vocab=201088, attention_bias=True,
            experts=128, experts_per_token=4, moe_ffn=2880, expert_bias=True, sliding_window=128, sliding_layers=18,
            max_position=131072,
        ),
        _entry(
            "kimi-k2", "Kimi-K2",
            f"{_HF}/moonshotai/Kimi-K2-Instruct/blob/main/config.json",
            _aic("moonshotai--Kimi-K2-Instruct_config.json"),
            {"moonshotai/Kimi-K2-Instruct": "fp8_block", "moonshotai/Kimi-K2-Base": "fp8_block",
             "moonshotai/Kimi-K2-Instruct-0905": "fp8_block"},
            notes="DeepSeek-V3 architecture with 64 heads, 384 experts and one dense layer.",
            layers=61, hidden=7168, heads=64, kv_heads=64, head_dim=128, ffn=18432, vocab=163840,
            q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
            experts=384, experts_per_token=8, moe_ffn=2048, shared_ffn=2048, dense_layers=1, max_position=131072,
        ),
        _entry(
            "minimax-m2.5", "MiniMax-M2.5",
            f"{_HF}/MiniMaxAI/MiniMax-M2.5/blob/main/config.json",
            _aic("MiniMaxAI--MiniMax-M2.5_config.json"),
            {"MiniMaxAI/MiniMax-M2.5": "fp8_block"},
            notes="Full-attention GQA MoE; its MTP modules are not counted.",
            layers=62, hidden=3072, heads=48, kv_heads=8, head_dim=128, ffn=0, vocab=200064,
            experts=256, experts_per_token=8, moe_ffn=1536, max_position=196608,
        ),
    )
}

_BY_ID: dict[str, ModelArch] = {hf.lower(): m for m in CATALOG.values() for hf in m.hf_ids}


def lookup(model: str) -> ModelArch | None:
    """A catalog entry by catalog key (`llama-3.3-70b`) or Hugging Face id (any listed variant, case-insensitive)."""
    return CATALOG.get(model.lower()) or _BY_ID.get(model.lower())


def known_models() -> list[str]:
    return sorted(hf for m in CATALOG.values() for hf in m.hf_ids)
