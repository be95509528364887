"""A workload on replicas: latency and throughput of prefill, decode and aggregated pools.

Two regimes:

* open loop (a request rate, what the planner sizes for): each pool is a queue. Prefill replicas batch waiting
  prompts up to the engine's token budget and queue as M/D/1 (mean wait rho*S / (2(1 - rho)), DistServe's prefill
  model, arXiv 2401.09670 section 4); the wait at a percentile uses the exponential tail of that mean
  (P(W > t) = rho * exp(-rho * t / W)), an approximation. A decode replica holds B sequences by Little's law,
  B = rate x OSL x ITL(B), solved as a fixed point; its ITL percentile is read at B + z_p * sqrt(B) sequences
  (Poisson spread of the batch). Aggregated replicas solve the same fixed point with each pass also carrying the
  prompts' chunks (vLLM's chunked prefill), so prefill work inflates every token's latency.
* closed loop (a concurrency, what silicon_refs.csv measured): a pass-by-pass replay of the scheduler for a fixed
  number of in-flight requests, each replaced the moment it finishes, until the latencies are steady. vLLM and
  TensorRT-LLM fuse decodes and prompt chunks in one pass under the token budget; SGLang runs waiting prompts as
  their own passes before resuming decode; disaggregated rows replay prefill workers feeding decode workers.

Every time here comes from `perf` (calibrated kernels plus the engine's fitted overheads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tooling.sizing import perf
from tooling.sizing.fits import Calibration
from tooling.sizing.perf import Shape

# One-sided normal quantiles for the batch spread at an SLO percentile.
_Z = {50.0: 0.0, 75.0: 0.674, 90.0: 1.2816, 95.0: 1.6449, 99.0: 2.3263}
# NIXL's per-request cost beyond the bytes (notification and descriptor exchange): an assumption, not measured here.
KV_TRANSFER_SETUP_MS = 0.5


def z_of(percentile: float) -> float:
    if percentile in _Z:
        return _Z[percentile]
    # Acklam-free fallback: bisection on the normal CDF.
    lo, hi = -5.0, 5.0
    target = percentile / 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def request_ms(cal: Calibration, shape: Shape, isl: int) -> float:
    """What a request costs outside the GPU before its first token (HTTP, tokenizer, scheduling, detokenizer)."""
    eng = cal.engine(shape.engine)
    return eng.get("request_ms", 0.0) + eng.get("request_ms_per_token", 0.0) * isl


def wait_quantile_ms(mean_wait_ms: float, rho: float, percentile: float) -> float:
    """Waiting time at a percentile from its mean, with the exponential tail P(W > t) = rho * exp(-rho t / W)."""
    if rho <= 0 or mean_wait_ms <= 0:
        return 0.0
    tail = 1.0 - percentile / 100.0
    if rho <= tail:
        return 0.0
    return mean_wait_ms / rho * math.log(rho / tail)


# --- open loop: prefill ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefillPoint:
    replicas: int
    rho: float  # utilisation of each replica
    service_ms: float  # prefill of one prompt alone
    capacity_rps: float  # requests per second one replica sustains
    mean_wait_ms: float
    ttft_mean_ms: float  # without KV transfer and decode's first step (the caller adds those)
    ttft_p_ms: float
    tokens_per_s_per_gpu: float


def prefill_point(cal: Calibration, shape: Shape, isl: int, rate: float, replicas: int, percentile: float, isl_tail: int | None = None) -> PrefillPoint:
    """A prefill pool of `replicas` under `rate` requests/s of `isl`-token prompts."""
    k = max(1, shape.max_batched_tokens // max(isl, 1))  # prompts one pass takes when they queue up
    s1 = perf.prefill_ms(cal, shape, isl, 1)
    sk = perf.prefill_ms(cal, shape, isl, k)
    capacity = shape.pp * k / (sk / 1e3)  # pp passes in flight on a pipelined replica
    lam = rate / replicas
    rho = lam / capacity
    if rho >= 1:
        return PrefillPoint(replicas, rho, s1, capacity, math.inf, math.inf, math.inf, 0.0)
    service = 1.0 / capacity * 1e3
    wait = rho * service / (2.0 * (1.0 - rho))
    own = s1 + (sk - s1) * rho  # under load a prompt shares its pass with others
    tail_isl = isl_tail or isl
    own_tail = perf.prefill_ms(cal, shape, tail_isl, 1) + (sk - s1) * rho
    req = request_ms(cal, shape, isl)
    return PrefillPoint(
        replicas,
        rho,
        s1,
        capacity,
        wait,
        req + wait + own,
        request_ms(cal, shape, tail_isl) + wait_quantile_ms(wait, rho, percentile) + own_tail,
        lam * isl / shape.gpus,
    )


# --- open loop: decode -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodePoint:
    replicas: int
    batch: float  # mean running sequences per replica
    batch_p: float  # at the SLO percentile
    itl_mean_ms: float
    itl_p_ms: float
    kv_tokens_needed: float  # per replica at batch_p, every sequence at its full length
    max_batch: int  # what the KV cache and max_num_seqs allow
    feasible: bool
    tokens_per_s_per_gpu: float


def decode_batch(cal: Calibration, shape: Shape, ctx: float, lam: float, osl: int, limit: int) -> float | None:
    """Running sequences B with B = lam * OSL * ITL(B): the smallest fixed point, None if none below `limit`."""
    b = max(lam * osl * perf.decode_step_ms(cal, shape, 1, ctx) / 1e3, 1e-9)
    for _ in range(200):
        nb = lam * osl * perf.decode_step_ms(cal, shape, max(1, math.ceil(b)), ctx) / 1e3
        if nb > limit:
            return None
        if abs(nb - b) < 1e-3 * max(b, 1.0):
            return nb
        b = nb
    return b


def decode_point(
    cal: Calibration, shape: Shape, fit: perf.MemoryFit, isl: int, osl: int, rate: float, replicas: int, percentile: float
) -> DecodePoint:
    ctx = isl + osl / 2.0
    max_batch = min(perf.MAX_NUM_SEQS * shape.attn_dp, fit.max_sequences(isl + osl, shape))
    lam = rate / replicas
    b = decode_batch(cal, shape, ctx, lam, osl, max_batch)
    if b is None:
        return DecodePoint(replicas, math.inf, math.inf, math.inf, math.inf, math.inf, max_batch, False, 0.0)
    bp = b + z_of(percentile) * math.sqrt(max(b, 0.0))
    itl = perf.decode_step_ms(cal, shape, max(1, math.ceil(b)), ctx)
    itl_p = perf.decode_step_ms(cal, shape, max(1, math.ceil(bp)), ctx)
    need = bp * (isl + osl)
    feasible = math.ceil(bp) <= max_batch
    return DecodePoint(replicas, b, bp, itl, itl_p, need, max_batch, feasible, lam * osl / shape.gpus)


# --- open loop: aggregated ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AggPoint:
    replicas: int
    batch: float
    itl_mean_ms: float
    itl_p_ms: float
    ttft_mean_ms: float
    ttft_p_ms: float
    rho: float
    feasible: bool
    tokens_per_s_per_gpu: float


def agg_point(
    cal: Calibration, shape: Shape, fit: perf.MemoryFit, isl: int, osl: int, rate: float, replicas: int, percentile: float
) -> AggPoint:
    """Aggregated replicas with chunked prefill: every pass carries the running decodes and a share of the prompts."""
    lam = rate / replicas
    ctx = isl + osl / 2.0
    budget = shape.max_batched_tokens
    max_batch = min(perf.MAX_NUM_SEQS, fit.max_sequences(isl + osl, shape))
    bad = AggPoint(replicas, math.inf, math.inf, math.inf, math.inf, math.inf, math.inf, False, 0.0)
    t = perf.decode_step_ms(cal, shape, 1, ctx)
    for _ in range(200):
        b = lam * osl * t / 1e3
        c = lam * isl * t / 1e3  # prompt tokens arriving per pass
        if b > max_batch or b + c > budget:
            return bad
        nt = perf.forward_cost(
            cal, shape, decode_seqs=max(1, math.ceil(b)), decode_ctx=ctx, prefill=((1, max(1, math.ceil(c)), isl // 2),)
        ).total
        if abs(nt - t) < 1e-3 * t:
            t = nt
            break
        t = nt
    b = lam * osl * t / 1e3
    chunk = max(1, min(isl, budget - math.ceil(b)))
    n_chunks = math.ceil(isl / chunk)
    t_chunk = perf.forward_cost(cal, shape, decode_seqs=max(1, math.ceil(b)), decode_ctx=ctx, prefill=((1, chunk, 0),)).total
    t_dec = perf.decode_step_ms(cal, shape, max(1, math.ceil(b)), ctx)
    # Share of passes that carry a prompt chunk: above 1 - p of them, the percentile ITL is a chunked pass.
    frac = min(1.0, lam * n_chunks * t_chunk / 1e3)
    itl_p = t_chunk if frac > 1 - percentile / 100.0 else t_dec
    rho = lam * isl / ((budget - b) / (t_chunk / 1e3))
    if rho >= 1:
        return bad
    service = isl / ((budget - b) / (t_chunk / 1e3)) * 1e3
    wait = rho * service / (2 * (1 - rho))
    ttft = request_ms(cal, shape, isl) + wait + n_chunks * t_chunk
    ttft_p = request_ms(cal, shape, isl) + wait_quantile_ms(wait, rho, percentile) + n_chunks * t_chunk
    return AggPoint(replicas, b, t, itl_p, ttft, ttft_p, rho, math.ceil(b) <= max_batch, lam * osl / shape.gpus)


# --- KV transfer -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KvTransfer:
    bytes_per_request: float  # all decode ranks together
    ms: float
    pod_gbps: float  # the slower side's EFA share
    load_gbps: float  # mean traffic out of one prefill pod at the planned rate


def kv_transfer(shape_p: Shape, shape_d: Shape, isl: int, prefill_pod_gbps: float, decode_pod_gbps: float, rate_per_prefill: float) -> KvTransfer:
    """KV of one prompt from a prefill replica to a decode replica. Each decode rank pulls its shard; MLA's latent
    (and GQA heads replicated beyond the KV-head count) are pulled once per decode rank."""
    m = shape_p.model
    per_rank = m.kv_bytes_per_sequence(isl, shape_d.kv_bytes) * m.kv_shard(shape_d.tp) / shape_d.pp
    total = per_rank * shape_d.tp * shape_d.pp
    gbps = min(prefill_pod_gbps, decode_pod_gbps)
    if gbps <= 0:
        return KvTransfer(total, math.inf, 0.0, math.inf)
    ms = total * 8 / (gbps * 1e9) * 1e3 + KV_TRANSFER_SETUP_MS
    return KvTransfer(total, ms, gbps, rate_per_prefill * total * 8 / 1e9)


# --- closed loop -------------------------------------------------------------------------------------------------


@dataclass
class _Req:
    arrival: float
    left: int  # prompt tokens still to prefill
    done: int = 0  # prompt tokens prefilled
    generated: int = 0
    first: float = -1.0


@dataclass(frozen=True)
class ClosedLoop:
    ttft_ms: float
    tpot_ms: float
    throughput_rps: float


def closed_loop_agg(
    cal: Calibration, shape: Shape, concurrency: int, isl: int, osl: int, *, fused: bool = True, generations: int = 3
) -> ClosedLoop:
    """`concurrency` requests in flight on one aggregated replica, each replaced when it finishes (benchmark clients
    with a concurrency limit). `fused`: decodes and prompt chunks share a pass (vLLM, TRT-LLM); otherwise waiting
    prompts run as their own passes first (SGLang)."""
    try:
        fit = perf.memory_fit(shape, _gpu_gib(shape))
        seq_cap = max(1, fit.max_sequences(isl + osl, shape))
    except perf.Infeasible:
        seq_cap = perf.MAX_NUM_SEQS
    slots = min(concurrency, perf.MAX_NUM_SEQS * shape.attn_dp, seq_cap)
    budget = shape.max_batched_tokens
    req_ms = request_ms(cal, shape, isl)
    now = 0.0
    waiting: list[_Req] = [_Req(0.0, isl) for _ in range(concurrency)]
    running: list[_Req] = []
    ttfts: list[float] = []
    tpots: list[float] = []
    finished = 0
    warm = concurrency * 1
    target = concurrency * (1 + generations)
    t_start = None
    passes = 0
    while finished < target and passes < 400_000:
        passes += 1
        while waiting and len(running) < slots:
            running.append(waiting.pop(0))
        decoders = [r for r in running if r.left == 0]
        prefilling = [r for r in running if r.left > 0]
        chunks: list[tuple[int, int, int]] = []
        emit: list[_Req] = []
        if fused:
            room, step_decoders = budget - len(decoders), decoders
        elif prefilling:
            room, step_decoders = budget, []  # prompts first, decode waits for the next pass
        else:
            room, step_decoders = 0, decoders
        for r in prefilling:
            if room <= 0:
                break
            take = min(r.left, room)
            chunks.append((1, take, r.done))
            r.left -= take
            r.done += take
            room -= take
            if r.left == 0:
                emit.append(r)
        ctx = sum(isl + r.generated for r in step_decoders) / len(step_decoders) if step_decoders else 0.0
        dt = _pass_ms(cal, shape, len(step_decoders), ctx, tuple(chunks))
        now += dt
        for r in emit:
            r.generated = 1
            r.first = now
            if finished >= warm:
                ttfts.append(now - r.arrival + req_ms)
        for r in step_decoders:
            r.generated += 1
        done = [r for r in running if r.left == 0 and r.generated >= osl]
        for r in done:
            running.remove(r)
            finished += 1
            if finished == warm:
                t_start = now
            if finished > warm and osl > 1:
                tpots.append((now - r.first) / (osl - 1))
            waiting.append(_Req(now, isl))
    span = now - (t_start or 0.0)
    return ClosedLoop(_mean(ttfts), _mean(tpots), (finished - warm) / (span / 1e3) if span > 0 else 0.0)


def closed_loop_disagg(
    cal: Calibration,
    shape_p: Shape,
    shape_d: Shape,
    concurrency: int,
    isl: int,
    osl: int,
    *,
    prefill_workers: int,
    decode_workers: int,
    prefill_batch: int = 1,
    transfer_ms: float = 0.0,
    generations: int = 3,
) -> ClosedLoop:
    """Prefill workers (whole prompts, up to `prefill_batch` per pass) feeding decode workers; `concurrency` requests
    in flight, each replaced when it finishes. Events are processed in time order per worker."""
    import heapq

    req_ms = request_ms(cal, shape_p, isl)
    p_batch_ms = {b: perf.prefill_ms(cal, shape_p, isl, b) for b in range(1, prefill_batch + 1)}
    try:
        fit = perf.memory_fit(shape_d, _gpu_gib(shape_d))
        d_cap = max(1, min(perf.MAX_NUM_SEQS * shape_d.attn_dp, fit.max_sequences(isl + osl, shape_d)))
    except perf.Infeasible:
        d_cap = perf.MAX_NUM_SEQS
    p_queue: list[tuple[float, int]] = [(0.0, i) for i in range(concurrency)]  # (arrival, id)
    p_free = [0.0] * prefill_workers
    d_running: list[list[list[float]]] = [[] for _ in range(decode_workers)]  # [arrival, first, generated, ready]
    d_waiting: list[list[list[float]]] = [[] for _ in range(decode_workers)]
    d_free = [0.0] * decode_workers
    ttfts: list[float] = []
    tpots: list[float] = []
    finished = 0
    warm = concurrency
    target = concurrency * (1 + generations)
    t_start = None
    rr = 0
    now = 0.0
    events = 0
    while finished < target and events < 2_000_000:
        events += 1
        # Next prefill pass start, next decode pass start.
        tp = min(((max(p_free[i], p_queue[0][0]), i) for i in range(prefill_workers)), default=(math.inf, -1)) if p_queue else (math.inf, -1)
        td = min(
            ((max(d_free[i], min(r[3] for r in d_running[i] + d_waiting[i])), i) for i in range(decode_workers) if d_running[i] or d_waiting[i]),
            default=(math.inf, -1),
        )
        if tp[0] <= td[0]:
            now, i = tp
            batch = []
            while p_queue and p_queue[0][0] <= now and len(batch) < prefill_batch:
                batch.append(heapq.heappop(p_queue))
            end = now + p_batch_ms[len(batch)]
            p_free[i] = end
            for arrival, _ in batch:
                ready = end + transfer_ms
                d_waiting[rr % decode_workers].append([arrival, -1.0, 0.0, ready])
                rr += 1
            continue
        now, i = td
        # Sequences whose KV has landed join the running batch (up to the engine's limits).
        landed = [r for r in d_waiting[i] if r[3] <= now]
        for r in landed:
            if len(d_running[i]) >= d_cap:
                break
            d_waiting[i].remove(r)
            d_running[i].append(r)
        run = d_running[i]
        if not run:
            d_free[i] = min(r[3] for r in d_waiting[i])
            continue
        ctx = sum(isl + r[2] for r in run) / len(run)
        end = now + perf.decode_step_ms(cal, shape_d, len(run), ctx)
        d_free[i] = end
        for r in list(run):
            r[2] += 1
            if r[1] < 0:
                r[1] = end
                if finished >= warm:
                    ttfts.append(end - r[0] + req_ms)
            if r[2] >= osl:
                run.remove(r)
                finished += 1
                if finished == warm:
                    t_start = end
                if finished > warm and osl > 1:
                    tpots.append((end - r[1]) / (osl - 1))
                heapq.heappush(p_queue, (end, finished))
    span = now - (t_start or 0.0)
    return ClosedLoop(_mean(ttfts), _mean(tpots), (finished - warm) / (span / 1e3) if span > 0 else 0.0)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


_PASS_CACHE: dict = {}


def _pass_ms(cal: Calibration, shape: Shape, decoders: int, ctx: float, chunks: tuple[tuple[int, int, int], ...]) -> float:
    # Bucket the prompt chunks' cached prefix so that replays share entries.
    key = (id(cal), shape, decoders, perf._bucket(ctx) if decoders else 0, tuple((n, new, perf._bucket(past) if past else 0) for n, new, past in chunks))
    t = _PASS_CACHE.get(key)
    if t is None:
        t = perf.forward_cost(cal, shape, decode_seqs=decoders, decode_ctx=float(key[3]), prefill=key[4]).total
        if len(_PASS_CACHE) < 500_000:
            _PASS_CACHE[key] = t
    return t


def _gpu_gib(shape: Shape) -> float:
    """Memory per GPU of the shape's system, from the instance catalog (the one place for capacity facts)."""
    from facts.catalog import CATALOG

    model = shape.gpu.catalog_model
    return next(it.gpu_memory_gib for it in CATALOG.values() if it.gpu_model == model)
