"""One engine replica: forward-pass time, memory fit and KV capacity for a model on a GPU at a parallel layout.

A forward pass is priced op by op, per GPU, from the calibrated fits (`fits`): every linear layer as a GEMM of the
pass's tokens against its TP shard, attention per phase (prefill: the chunk against its context; decode: one token
against its context), two all-reduces per layer under TP, memory-bound elementwise work, the LM head; then the
engine's own overheads (`engines.vllm` of the calibration: a cost per pass, per running sequence, per request).

Parallelism (per replica): `tp` splits every layer over GPUs (attention heads, MLP columns, experts' width); `ep`
splits the routed experts instead (each GPU holds E/ep whole experts); `attn_dp` replicates attention and splits
the batch (SGLang/TRT-LLM "attention DP", MoE over all GPUs); `pp` splits the layers into stages.

Approximations the tables cannot calibrate are named where they are made: grouped MoE GEMMs are priced as one
dense GEMM with the same rows per expert and the same weight bytes; MLA decode is priced as MQA over the 576-wide
latent; FP4 weights on Hopper run at BF16 tensor-core rate; elementwise kernels use AIConfigurator's empirical 0.8 x
HBM bandwidth and 3 us per kernel (aic-core/.../systems/h100_sxm.yaml `mem_bw_empirical_scaling_factor`,
`mem_empirical_constant_latency`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from tooling.sizing.fits import Calibration
from tooling.sizing.gpus import GpuSpec
from facts.models import ModelArch

GIB = 2**30
# vLLM's defaults on a GPU with >= 70 GiB that is not an A100 (H100, H200), OpenAI server: 8192 batched tokens per
# pass, 1024 running sequences (vllm-project/vllm : vllm/engine/arg_utils.py, EngineArgs.get_batch_defaults).
MAX_BATCHED_TOKENS = 8192
MAX_NUM_SEQS = 1024
# vLLM captures CUDA graphs for passes up to this many tokens (decode); larger passes run the eager all-reduce.
CUDA_GRAPH_MAX_TOKENS = 512
# Memory outside weights and KV that the engine keeps per GPU: NCCL buffers (AIConfigurator systems yaml
# `nccl_mem`: 342 MiB at TP2, 392 MiB at TP4/8) and CUDA graphs, allocator slack and the CUDA context.
NCCL_BYTES = {1: 0, 2: 358612992, 4: 411041792, 8: 411041792}
RUNTIME_RESERVE_BYTES = 1.5 * GIB
ELEMENTWISE_BW_FACTOR = 0.8
KERNEL_LATENCY_S = 3e-6
ELEMENTWISE_KERNELS_PER_LAYER = 5  # two fused norm+residual, RoPE+cache write, activation, (MoE) routing
# Each GPU of a p5 has 4 x 100 Gbps EFA (facts.catalog efa_per_gpu); TP or PP across nodes moves over that share.
INTER_NODE_BYTES_PER_S_PER_GPU = 50e9
INTER_NODE_LATENCY_S = 20e-6


class Infeasible(ValueError):
    """A layout that cannot run, with the reason."""


@dataclass(frozen=True)
class Shape:
    """What one replica runs: the model, its weights and KV format, the GPU system and the parallel layout."""

    model: ModelArch
    system: str  # calibrated system: h100_sxm, h200_sxm
    weights: str  # checkpoint format: bf16, fp8, fp8_block, mxfp4
    kv: str = "bf16"
    tp: int = 1
    pp: int = 1
    ep: int = 1
    attn_dp: int = 1
    gpus_per_node: int = 8
    engine: str = "vllm"
    max_batched_tokens: int = MAX_BATCHED_TOKENS

    @property
    def gpus(self) -> int:
        return self.tp * self.attn_dp * self.pp

    @property
    def moe_tp(self) -> int:
        """Width split of each routed expert: the MoE group (tp x attn_dp GPUs) over ep."""
        return max(1, self.tp * self.attn_dp // self.ep)

    @property
    def gpu(self) -> GpuSpec:
        from tooling.sizing.gpus import gpu_for_system

        g = gpu_for_system(self.system)
        if g is None:
            raise KeyError(self.system)
        return g

    @property
    def gemm_dtype(self) -> str:
        # FP4 weights on Hopper are dequantized in the kernel: BF16 math on 4-bit bytes (priced as BF16 GEMMs
        # with the weight bytes scaled).
        return {"mxfp4": "bf16"}.get(self.weights, self.weights)

    @property
    def kv_bytes(self) -> float:
        return {"bf16": 2.0, "fp8": 1.0}[self.kv]


def linear_shapes(m: ModelArch, tp: int) -> list[tuple[str, int, int, int]]:
    """The dense (non-expert) GEMMs of one replica's GPU: (name, n, k, layers that have it)."""
    d = m.head_dim
    out: list[tuple[str, int, int, int]] = []
    if m.is_mla:
        a_width = (m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim) if m.q_lora_rank else (m.kv_lora_rank + m.qk_rope_head_dim)
        out.append(("qkv_a", a_width, m.hidden, m.layers))  # replicated on every rank
        if m.q_lora_rank:
            out.append(("q_b", m.q_dim // tp, m.q_lora_rank, m.layers))
        else:
            out.append(("q", m.q_dim // tp, m.hidden, m.layers))
        out.append(("o", m.hidden, m.o_in // tp, m.layers))
        if m.index_heads:
            out.append(("indexer", m.index_heads * m.index_head_dim + m.index_head_dim + m.index_heads, m.q_lora_rank, m.layers))
    else:
        kv_local = max(1, math.ceil(m.kv_heads / tp))
        out.append(("qkv", (m.heads // tp + 2 * kv_local) * d, m.hidden, m.layers))
        out.append(("o", m.hidden, m.heads * d // tp, m.layers))
    dense = m.dense_layers if m.is_moe else m.layers
    if dense and m.ffn:
        out.append(("gate_up", 2 * m.ffn // tp, m.hidden, dense))
        out.append(("down", m.hidden, m.ffn // tp, dense))
    if m.is_moe and m.shared_ffn:
        out.append(("shared_gate_up", 2 * m.shared_ffn // tp, m.hidden, m.moe_layers))
        out.append(("shared_down", m.hidden, m.shared_ffn // tp, m.moe_layers))
    if m.is_moe:
        out.append(("router", m.experts, m.hidden, m.moe_layers))
    return out


def check_layout(shape: Shape) -> None:
    """Refuse layouts the engine cannot shard (the reason names the dimension)."""
    m = shape.model
    tp = shape.tp
    if m.heads % tp:
        raise Infeasible(f"TP {tp} does not divide the {m.heads} attention heads of {m.name}")
    if not m.is_mla and m.kv_heads % tp and tp % m.kv_heads:
        raise Infeasible(f"TP {tp} and the {m.kv_heads} KV heads of {m.name} do not divide each other")
    if m.ffn and (m.ffn // tp) * tp != m.ffn:
        raise Infeasible(f"TP {tp} does not divide the MLP width {m.ffn} of {m.name}")
    if m.is_moe:
        if m.experts % shape.ep:
            raise Infeasible(f"EP {shape.ep} does not divide the {m.experts} experts of {m.name}")
        if m.moe_ffn % shape.moe_tp:
            raise Infeasible(f"the expert width {m.moe_ffn} of {m.name} does not split over {shape.moe_tp} GPUs")
    if m.layers < shape.pp:
        raise Infeasible(f"PP {shape.pp} exceeds the {m.layers} layers of {m.name}")


# --- memory --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryFit:
    gpu_bytes: float  # per GPU
    usable_bytes: float  # x gpu_memory_utilization
    weights_bytes: float  # per GPU
    reserve_bytes: float  # activations, NCCL, CUDA graphs, allocator
    kv_bytes: float  # per GPU, for the KV cache
    kv_bytes_per_token: float  # per GPU
    kv_tokens: int  # per replica
    notes: tuple[str, ...] = field(default=())

    def max_sequences(self, ctx: int, shape: Shape) -> int:
        """Sequences of `ctx` tokens that fit the replica's cache at once (sliding-window layers keep their window)."""
        per_seq = shape.model.kv_bytes_per_sequence(ctx, shape.kv_bytes) * shape.model.kv_shard(shape.tp) / shape.pp
        return int(self.kv_bytes // per_seq) * shape.attn_dp if per_seq > 0 else 0


def weights_per_gpu(shape: Shape) -> float:
    """Weight bytes on the busiest GPU: sharded parts over their split, replicated parts whole, layers over PP."""
    m = shape.model
    fmt = shape.weights
    total = m.weight_bytes(fmt)
    b = m.param_breakdown()
    wb = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "mxfp4": 2.0}[fmt]
    expert_b = {"mxfp4": 4.25 / 8}.get(fmt, wb)
    routed = b["routed_experts"] * expert_b
    moe_group = shape.tp * shape.attn_dp
    replicated = 0.0
    if m.is_mla:
        a_width = (m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim) if m.q_lora_rank else (m.kv_lora_rank + m.qk_rope_head_dim)
        replicated += m.layers * m.hidden * a_width * wb
    if m.is_moe:
        replicated += m.moe_layers * m.hidden * m.experts * 2.0  # router, BF16
    replicated += b["norms"] * 2.0
    attention_side = total - routed - replicated
    per_gpu = routed / moe_group + attention_side / shape.tp + replicated
    return per_gpu / shape.pp


def activation_bytes(shape: Shape) -> float:
    """Peak activations of the largest pass (vLLM profiles one of max_batched_tokens before sizing the cache), plus
    the sampler's logits for a full batch of sequences in FP32."""
    m = shape.model
    t = shape.max_batched_tokens
    ffn_local = max(m.ffn, m.moe_ffn * (m.experts_per_token or 1), m.shared_ffn) / shape.tp
    width = 4 * m.hidden + 3 * ffn_local + (m.q_dim + 2 * m.kv_heads * m.head_dim) / shape.tp
    return t * width * 2.0 + min(MAX_NUM_SEQS, t) * m.vocab * 4.0


def memory_fit(shape: Shape, gpu_memory_gib: float, utilization: float = 0.9) -> MemoryFit:
    """Per-GPU memory plan; raises Infeasible when the weights leave no room for a KV cache."""
    check_layout(shape)
    gpu_bytes = gpu_memory_gib * GIB
    usable = gpu_bytes * utilization
    w = weights_per_gpu(shape)
    nccl = NCCL_BYTES.get(min(shape.tp, 8), NCCL_BYTES[8]) if shape.tp * shape.attn_dp > 1 else 0
    reserve = activation_bytes(shape) + nccl + RUNTIME_RESERVE_BYTES
    kv = usable - w - reserve
    m = shape.model
    per_tok = m.kv_bytes_per_token_per_gpu(shape.tp, shape.pp, shape.kv_bytes)
    if w > usable:
        raise Infeasible(
            f"{m.name} {shape.weights} weights take {w / GIB:.1f} GiB per GPU at TP {shape.tp} x PP {shape.pp}"
            f"{f' x DP {shape.attn_dp}' if shape.attn_dp > 1 else ''} ({m.weight_bytes(shape.weights) / 1e9:.0f} GB in "
            f"all) but a {shape.gpu.catalog_model} gives the engine {usable / GIB:.1f} GiB ({utilization:.0%} of "
            f"{gpu_memory_gib:.0f} GiB)"
        )
    if kv <= 0.05 * usable:
        raise Infeasible(
            f"{m.name} {shape.weights} weights take {w / GIB:.1f} GiB per GPU at TP {shape.tp} x PP {shape.pp}, leaving "
            f"{max(kv, 0) / GIB:.1f} GiB of {usable / GIB:.1f} GiB for the KV cache after {reserve / GIB:.1f} GiB of "
            "activations and runtime: no room to serve"
        )
    # A replica's tokens: each attention-DP rank caches its own sequences.
    tokens = int(kv // per_tok) * shape.attn_dp
    notes = ()
    if m.is_mla and shape.tp > 1:
        notes = (f"MLA latent KV is replicated on all {shape.tp} TP ranks (not sharded)",)
    elif not m.is_mla and shape.tp > m.kv_heads:
        notes = (f"TP {shape.tp} > {m.kv_heads} KV heads: each KV head is replicated {shape.tp // m.kv_heads}x",)
    return MemoryFit(gpu_bytes, usable, w, reserve, kv, per_tok, tokens, notes)


# --- time ----------------------------------------------------------------------------------------------------------


def _elementwise_ms(shape: Shape, tokens: float, layers: int) -> float:
    m = shape.model
    ffn_local = max(m.ffn, m.moe_ffn * m.experts_per_token if m.is_moe else 0) / shape.tp
    per_token = 2.0 * (8 * m.hidden + 3 * ffn_local + (m.q_dim + 2 * m.kv_heads * m.head_dim) / shape.tp)
    bw = shape.gpu.hbm_bytes_per_s * ELEMENTWISE_BW_FACTOR
    return layers * (tokens * per_token / bw + ELEMENTWISE_KERNELS_PER_LAYER * KERNEL_LATENCY_S) * 1e3


def _allreduce_ms(cal: Calibration, shape: Shape, tokens: float) -> float:
    n = shape.tp
    if n <= 1:
        return 0.0
    elements = tokens * shape.model.hidden
    if n > shape.gpus_per_node:
        # TP across nodes: a ring all-reduce over each GPU's EFA share (uncalibrated: no inter-node tables).
        nbytes = 2.0 * (n - 1) / n * elements * 2.0
        return (nbytes / INTER_NODE_BYTES_PER_S_PER_GPU + 2 * (n - 1) * INTER_NODE_LATENCY_S) * 1e3
    op = "allreduce_graph" if tokens <= CUDA_GRAPH_MAX_TOKENS else "allreduce_eager"
    return cal.collective_ms(shape.system, op, n, elements)


def _moe_ms(cal: Calibration, shape: Shape, tokens: float) -> float:
    """Routed experts of one MoE layer on one GPU. No grouped-GEMM tables exist to calibrate on, so each projection
    is priced as the dense GEMM with the same rows per expert and the same touched weights: gate/up as the touched
    experts side by side (n = experts x 2 x width), down as them stacked along k (k = experts x width). Block-FP8
    experts use the per-tensor FP8 fit: fused MoE kernels stream expert weights like it does, unlike vLLM's skinny
    dense block-FP8 GEMMs."""
    m = shape.model
    local = m.experts // shape.ep
    width = m.moe_ffn // shape.moe_tp
    routed = tokens * m.experts_per_token
    touched = local * (1.0 - (1.0 - m.experts_per_token / m.experts) ** tokens) if tokens else 0.0
    if touched < 1e-9:
        return 0.0
    rows = max(1.0, routed * (local / m.experts) / touched)  # tokens per touched local expert
    dt = {"fp8_block": "fp8"}.get(shape.gemm_dtype, shape.gemm_dtype)
    span = max(1, int(round(touched)))
    up = cal.gemm_ms(shape.system, dt, rows, span * 2 * width, m.hidden)
    down = cal.gemm_ms(shape.system, dt, rows, m.hidden, span * width)
    t = up + down
    if shape.weights == "mxfp4":
        t *= _fp4_discount(shape, rows, span * 3 * width, m.hidden)
    if shape.attn_dp > 1:
        # Dispatch and combine: each rank's tokens go to the experts' ranks and back (NCCL all-to-all).
        per_rank = tokens / shape.attn_dp * m.experts_per_token * m.hidden
        t += 2.0 * cal.collective_ms(shape.system, "nccl_alltoall", min(shape.tp * shape.attn_dp, 8), per_rank)
    return t


def _fp4_discount(shape: Shape, m_rows: float, n: int, k: int) -> float:
    """FP4 weights stream at a quarter of BF16's bytes; a memory-bound GEMM shrinks by up to that much."""
    from tooling.sizing.fits import gemm_roofline_s

    gpu = shape.gpu
    flops_s = 2.0 * m_rows * n * k / gpu.bf16_flops
    bytes_bf16 = n * k * 2.0 / gpu.hbm_bytes_per_s
    bytes_fp4 = n * k * 4.25 / 8 / gpu.hbm_bytes_per_s
    return max(flops_s, bytes_fp4) / max(gemm_roofline_s(gpu, "bf16", m_rows, n, k), bytes_bf16, 1e-12)


@dataclass(frozen=True)
class PassCost:
    """Milliseconds of one forward pass by part (per pipeline stage when pp > 1, then summed)."""

    gemm: float
    attention: float
    moe: float
    allreduce: float
    elementwise: float
    lm_head: float
    pipeline: float
    overhead: float

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.moe + self.allreduce + self.elementwise + self.lm_head + self.pipeline + self.overhead


def forward_cost(
    cal: Calibration,
    shape: Shape,
    *,
    decode_seqs: int = 0,
    decode_ctx: float = 0.0,
    prefill: tuple[tuple[int, int, int], ...] = (),
    overheads: bool = True,
) -> PassCost:
    """One pass over `decode_seqs` decoding sequences (mean context `decode_ctx`) and prefill chunks `prefill`
    ((requests, new tokens each, tokens already cached each), ...), all tokens batched in the same GEMMs."""
    m = shape.model
    tp = shape.tp
    sysname = shape.system
    dp = shape.attn_dp
    prefill_tokens = sum(n * new for n, new, _ in prefill)
    tokens = decode_seqs + prefill_tokens
    if tokens <= 0:
        return PassCost(0, 0, 0, 0, 0, 0, 0, 0)
    local_tokens = tokens / dp  # attention-DP ranks each run their own share of the batch
    dt = shape.gemm_dtype
    gemm = 0.0
    for name, n, k, layers in linear_shapes(m, tp):
        # The router stays BF16 in quantized checkpoints, and so does everything but the experts under MXFP4.
        gemm += cal.gemm_ms(sysname, "bf16" if name == "router" else dt, local_tokens, n, k) * layers
    # MLA: decode absorbs the latent up-projection into the query and output (two BF16 batched GEMMs per layer);
    # prefill up-projects the latent of every attended token to full K and V (the kv_b GEMM).
    attention = 0.0
    full = m.layers - m.sliding_layers
    kvb = shape.kv
    if m.is_mla:
        heads = m.heads // tp
        lat = m.kv_lora_rank + m.qk_rope_head_dim
        if decode_seqs:
            dec_local = decode_seqs / dp
            gemm += m.layers * (
                cal.gemm_ms(sysname, "bf16", dec_local, heads * m.kv_lora_rank, m.qk_nope_head_dim)
                + cal.gemm_ms(sysname, "bf16", dec_local, heads * m.v_head_dim, m.kv_lora_rank)
            )
            ctx = min(decode_ctx, m.index_topk) if m.index_topk else decode_ctx
            attention += m.layers * cal.generation_attention_ms(sysname, kvb, dec_local, ctx, heads, 1, lat)
            if m.index_heads:  # DSA indexer scans every cached token's indexer key
                per = dec_local * decode_ctx * (m.index_head_dim + 4) / (shape.gpu.hbm_bytes_per_s * ELEMENTWISE_BW_FACTOR)
                attention += m.layers * (per + KERNEL_LATENCY_S) * 1e3
        for n, new, past in prefill:
            n_local = max(1.0, n / dp)
            kv_rows = n_local * (new + past)
            gemm += m.layers * cal.gemm_ms(sysname, dt, kv_rows, heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank)
            span_past = min(past, m.index_topk) if m.index_topk else past
            attention += m.layers * cal.context_attention_ms(
                sysname, "bf16", n_local, new, heads, heads, m.qk_nope_head_dim + m.qk_rope_head_dim, span_past
            )
    else:
        heads = m.heads // tp
        kv_local = max(1, math.ceil(m.kv_heads / tp))
        if decode_seqs:
            dec_local = decode_seqs / dp
            attention += full * cal.generation_attention_ms(sysname, kvb, dec_local, decode_ctx, heads, kv_local, m.head_dim)
            if m.sliding_layers:
                attention += m.sliding_layers * cal.generation_attention_ms(
                    sysname, kvb, dec_local, decode_ctx, heads, kv_local, m.head_dim, window=m.sliding_window
                )
        for n, new, past in prefill:
            n_local = max(1.0, n / dp)
            attention += full * cal.context_attention_ms(sysname, kvb, n_local, new, heads, kv_local, m.head_dim, past)
            if m.sliding_layers:
                attention += m.sliding_layers * cal.context_attention_ms(
                    sysname, kvb, n_local, new, heads, kv_local, m.head_dim, past, window=m.sliding_window
                )
    moe = m.moe_layers * _moe_ms(cal, shape, tokens) if m.is_moe else 0.0
    ar = 2 * m.layers * _allreduce_ms(cal, shape, local_tokens)
    elementwise = _elementwise_ms(shape, local_tokens, m.layers)
    # Logits: one row per sequence that samples this pass (decodes, and prompts whose last chunk this is).
    logit_rows = (decode_seqs + sum(n for n, _, _ in prefill)) / dp
    lm_head = cal.gemm_ms(sysname, "bf16", logit_rows, m.vocab // tp, m.hidden)
    pp = shape.pp
    pipeline = 0.0
    if pp > 1:
        # A pass crosses all stages in turn (each runs 1/pp of the layers, so the compute above is the sum), plus
        # pp - 1 hops of the hidden state; the replica keeps pp passes in flight, which serving.py counts as capacity.
        hop_bytes = local_tokens * m.hidden * 2.0
        cross_node = shape.tp * shape.attn_dp >= shape.gpus_per_node
        bw = INTER_NODE_BYTES_PER_S_PER_GPU if cross_node else shape.gpu.nvlink_bytes_per_s
        pipeline = (pp - 1) * (hop_bytes / bw + (INTER_NODE_LATENCY_S if cross_node else 10e-6)) * 1e3
    overhead = 0.0
    if overheads:
        eng = cal.engine(shape.engine)
        overhead = eng["step_ms"] + eng["per_seq_ms"] * (decode_seqs + sum(n for n, _, _ in prefill))
    return PassCost(gemm, attention, moe, ar, elementwise, lm_head, pipeline, overhead)


@lru_cache(maxsize=100_000)
def _decode_ms(cal: Calibration, shape: Shape, batch: int, ctx: int, overheads: bool) -> float:
    return forward_cost(cal, shape, decode_seqs=batch, decode_ctx=float(ctx), overheads=overheads).total


def decode_step_ms(cal: Calibration, shape: Shape, batch: int, ctx: float, overheads: bool = True) -> float:
    """Time between two tokens of a decode replica running `batch` sequences of mean context `ctx`."""
    if batch <= 0:
        return 0.0
    if shape.pp > 1:
        # vLLM keeps pp micro-batches in flight: each sequence waits for its micro-batch to pass every stage.
        micro = max(1, math.ceil(batch / shape.pp))
        return _decode_ms(cal, shape, micro, _bucket(ctx), overheads)
    return _decode_ms(cal, shape, int(batch), _bucket(ctx), overheads)


def _bucket(ctx: float) -> int:
    """Round a context length to ~1% so similar passes share a cache entry."""
    c = max(1, int(ctx))
    step = max(1, 2 ** max(0, c.bit_length() - 7))
    return (c // step) * step


def chunks(isl: int, budget: int) -> list[tuple[int, int]]:
    """(new tokens, tokens already cached) of each chunk of a prompt under a per-pass token budget."""
    out, done = [], 0
    while done < isl:
        new = min(budget, isl - done)
        out.append((new, done))
        done += new
    return out


@lru_cache(maxsize=100_000)
def _prefill_ms(cal: Calibration, shape: Shape, isl: int, batch: int, overheads: bool) -> float:
    total = 0.0
    per_pass = max(1, shape.max_batched_tokens // max(batch, 1))
    for new, past in chunks(isl, per_pass):
        total += forward_cost(cal, shape, prefill=((batch, new, past),), overheads=overheads).total
    return total


def prefill_ms(cal: Calibration, shape: Shape, isl: int, batch: int = 1, overheads: bool = True) -> float:
    """Forward time to prefill `batch` prompts of `isl` tokens together (chunked under the pass budget), no queueing
    and no request overhead (serving.py adds those)."""
    return _prefill_ms(cal, shape, int(isl), int(batch), overheads)
