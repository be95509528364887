"""Every layout for one scenario, checked against its SLOs and ranked by cost.

A scenario is a model (and its weight and KV formats), the GPU instance types allowed, a workload (ISL/OSL, a
request rate or a concurrency) and SLOs (TTFT and ITL at a percentile). For each instance type with calibrated
kernels, each prefill layout (TP, and PP across nodes when the weights need it) and each decode layout (TP; no PP:
NixlConnector cannot transfer KV into a pipelined decode), the planner finds the fewest replicas that meet the SLOs
at the rate (serving.py's queues), packs them onto whole nodes, fills the nodes it pays for with extra replicas,
checks the KV transfer (at most 5% of the TTFT SLO over the pod's EFA share, and at most half of that share in
aggregate), and prices the pools from the instance catalog. The aggregated layouts on the same instances are
priced as the baseline. Infeasible layouts are kept with their reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache

from facts.catalog import InstanceType, instance_type, known_instance_types
from tooling.sizing import perf, serving
from tooling.sizing.fits import Calibration, calibration, system_of_gpu
from tooling.sizing.gpus import efa_gbps_per_interface
from facts.models import ModelArch

KV_TRANSFER_SHARE_OF_TTFT = 0.05  # performance.md section 6, goal 4
KV_LINK_SHARE = 0.5  # aggregate KV traffic at most half of the pod's EFA line rate (same goal)
MAX_REPLICAS = 512
# Decode scales on vLLM's KV-cache usage; above ~0.9 the scheduler starts preempting sequences (recomputing them),
# which is a latency cliff, so the target stays below it even when the ITL SLO would allow a fuller cache.
KV_USAGE_TARGET_MAX = 0.85


@dataclass(frozen=True)
class Scenario:
    model: ModelArch
    model_id: str
    weights: str
    kv: str
    isl: int
    osl: int
    ttft_ms: float
    itl_ms: float
    percentile: float = 90.0
    rate: float | None = None
    concurrency: int | None = None
    isl_tail: int | None = None
    instances: tuple[str, ...] = ()
    engine: str = "vllm"
    gpu_memory_utilization: float = 0.9
    max_gpus: int = 1024

    def describe(self) -> str:
        load = f"{self.rate:g} req/s" if self.rate is not None else f"concurrency {self.concurrency}"
        tail = f" (p{self.percentile:g} prompt {self.isl_tail})" if self.isl_tail else ""
        return (
            f"{self.model.name} ({self.model_id}, {self.weights} weights, {self.kv} KV); ISL/OSL {self.isl}/{self.osl}{tail}; "
            f"{load}; SLO p{self.percentile:g} TTFT <= {self.ttft_ms:g} ms, ITL <= {self.itl_ms:g} ms"
        )


@dataclass(frozen=True)
class RoleLayout:
    role: str  # prefill | decode | aggregated
    instance: str
    tp: int
    pp: int
    replicas: int  # what the rate needs
    filled: int  # what the paid-for nodes hold
    gpus_per_replica: int
    nodes: int
    efa_per_pod: int
    kv_tokens: int  # per replica
    usd_per_hour: float
    # predictions at `filled` replicas
    ttft_p_ms: float = math.nan
    ttft_mean_ms: float = math.nan
    itl_p_ms: float = math.nan
    itl_mean_ms: float = math.nan
    batch: float = math.nan  # decode/aggregated: running sequences per replica
    rho: float = math.nan  # prefill/aggregated: utilisation
    keda_target: float = math.nan
    notes: tuple[str, ...] = ()

    @property
    def gpus(self) -> int:
        return self.filled * self.gpus_per_replica

    def label(self) -> str:
        par = f"TP{self.tp}" + (f"xPP{self.pp}" if self.pp > 1 else "")
        extra = f" (+{self.filled - self.replicas})" if self.filled > self.replicas else ""
        return f"{self.replicas}{extra} x {par} on {self.nodes} x {self.instance.split('.')[0]}"


@dataclass(frozen=True)
class Layout:
    kind: str  # disagg | agg
    roles: tuple[RoleLayout, ...]
    rate: float
    ttft_p_ms: float
    itl_p_ms: float
    kv_transfer_ms: float = 0.0
    kv_bytes_per_request: float = 0.0
    kv_load_gbps: float = 0.0
    kv_pod_gbps: float = 0.0
    feasible: bool = True
    reasons: tuple[str, ...] = ()
    output_tok_s: float = 0.0  # at the scenario's rate
    budget: int = perf.MAX_BATCHED_TOKENS  # aggregated: the per-pass token budget it was sized with

    @property
    def gpus(self) -> int:
        return sum(r.gpus for r in self.roles)

    @property
    def nodes(self) -> int:
        return sum(r.nodes for r in self.roles)

    @property
    def gpus_provisioned(self) -> int:
        return sum(r.nodes * instance_type(r.instance).gpus for r in self.roles)

    @property
    def usd_per_hour(self) -> float:
        return sum(r.usd_per_hour for r in self.roles)

    @property
    def tok_s_per_gpu(self) -> float:
        """Output tokens per second per provisioned GPU."""
        return self.output_tok_s / self.gpus_provisioned if self.gpus_provisioned else 0.0

    @property
    def usd_per_mtok(self) -> float:
        """GPU-pool dollars per million output tokens at the scenario's rate."""
        return self.usd_per_hour / (self.output_tok_s * 3600 / 1e6) if self.output_tok_s else math.inf

    def role(self, name: str) -> RoleLayout:
        return next(r for r in self.roles if r.role == name)


@dataclass
class PlanResult:
    scenario: Scenario
    rate: float
    layouts: list[Layout]  # feasible, best first
    baseline: list[Layout]  # aggregated, best first
    refused: list[str] = field(default_factory=list)  # reasons shapes were refused
    seconds: float = 0.0

    @property
    def best(self) -> Layout | None:
        return self.layouts[0] if self.layouts else None


# --- candidates ----------------------------------------------------------------------------------------------------


def planable_instances(names: tuple[str, ...] = ()) -> tuple[list[InstanceType], list[str]]:
    """The instance types to search (default: every catalog GPU type with calibrated kernels) and refusals."""
    out, refused = [], []
    for name in names or tuple(known_instance_types(gpu=True)):
        try:
            it = instance_type(name)
        except KeyError:
            refused.append(f"{name}: not in the instance catalog (facts/catalog.py)")
            continue
        if not it.is_gpu:
            refused.append(f"{name}: has no GPU")
        elif system_of_gpu(it.gpu_model) is None:
            if names:
                refused.append(f"{name}: no measured kernel tables for {it.gpu_model} (calibrated: H100, H200)")
        else:
            out.append(it)
    return out, refused


def _shape(sc: Scenario, it: InstanceType, tp: int, pp: int = 1, budget: int = perf.MAX_BATCHED_TOKENS) -> perf.Shape:
    return perf.Shape(
        model=sc.model, system=system_of_gpu(it.gpu_model) or "", weights=sc.weights, kv=sc.kv, tp=tp, pp=pp,
        gpus_per_node=it.gpus, engine=sc.engine, max_batched_tokens=budget,
    )


def _layouts(sc: Scenario, it: InstanceType, role: str) -> list[tuple[int, int]]:
    """(TP, PP) candidates: every TP that divides a node; whole nodes beyond one only when no single-node layout
    holds the weights (a multi-node replica is a Ray group over EFA: more to fail, slower collectives). Across nodes
    prefill and aggregated replicas split layers by PP, decode splits by TP (NixlConnector cannot transfer KV into a
    pipelined decode)."""
    g = it.gpus
    single = [(t, 1) for t in (1, 2, 4, 8) if t <= g and g % t == 0]
    if any(_fits(sc, it, t, 1) for t, _ in single):
        return single
    # Still listed so the refusals say why one node is not enough.
    return single + [((g * n, 1) if role == "decode" else (g, n)) for n in (2, 3, 4)]


def _fits(sc: Scenario, it: InstanceType, tp: int, pp: int) -> bool:
    try:
        perf.memory_fit(_shape(sc, it, tp, pp), it.gpu_memory_gib, sc.gpu_memory_utilization)
        return True
    except perf.Infeasible:
        return False


@lru_cache(maxsize=256)
def _efa_per_pod(instance: str, gpus_per_replica: int) -> int:
    """EFA devices per pod, by the plan's own rule (stacks.plan.role_plan) on a minimal stack with this pod shape."""
    from stacks.config.stack import StackConfig
    from stacks.plan import role_plan

    pool = {"name": "p", "role": "prefill", "instanceType": instance, "nodes": 1, "availabilityZones": ["us-east-1a"]}
    cfg = StackConfig.model_validate(
        {
            "name": "sizing",
            "region": "us-east-1",
            "availabilityZones": ["us-east-1a", "us-east-1b"],
            "gpuPools": [pool, {**pool, "name": "d", "role": "decode"}],
            "serving": {
                "model": {"id": "sizing-probe", "parametersBillions": 1.0, "weightDtype": "bf16"},
                "prefill": {"tensorParallel": gpus_per_replica},
            },
        }
    )
    return role_plan(cfg, "prefill").efa_per_pod


def _pods(it: InstanceType, gpus_per_replica: int) -> tuple[int, int]:
    """(pods per node, nodes per replica), as stacks.plan packs them."""
    if gpus_per_replica <= it.gpus:
        return it.gpus // gpus_per_replica, 1
    return 1, math.ceil(gpus_per_replica / it.gpus)


def _nodes_for(it: InstanceType, gpus_per_replica: int, replicas: int) -> tuple[int, int]:
    """(nodes, replicas those nodes hold)."""
    per_node, nodes_per_replica = _pods(it, gpus_per_replica)
    if nodes_per_replica > 1:
        return replicas * nodes_per_replica, replicas
    nodes = math.ceil(replicas / per_node)
    return nodes, nodes * per_node


# --- sizing one role ---------------------------------------------------------------------------------------------


def _fewest(start: int, meets) -> int | None:
    """Smallest replica count >= `start` for which `meets(n)` holds (more replicas never hurt): step up ~12% at a
    time, then bisect back to the smallest; None beyond MAX_REPLICAS."""
    lo, n = max(1, start) - 1, max(1, start)
    while not meets(n):
        lo, n = n, n + max(1, n // 8)
        if n > MAX_REPLICAS:
            return None
    while n - lo > 1:
        mid = (lo + n) // 2
        if meets(mid):
            n = mid
        else:
            lo = mid
    return n


def _size_decode(cal: Calibration, sc: Scenario, it: InstanceType, tp: int, rate: float, refused: list[str]) -> RoleLayout | None:
    shape = _shape(sc, it, tp)
    try:
        fit = perf.memory_fit(shape, it.gpu_memory_gib, sc.gpu_memory_utilization)
    except perf.Infeasible as exc:
        refused.append(f"decode TP{tp} on {it.name}: {exc}")
        return None
    if fit.max_sequences(sc.isl + sc.osl, shape) < 1:
        refused.append(f"decode TP{tp} on {it.name}: KV cache holds no {sc.isl + sc.osl}-token sequence")
        return None
    single = perf.decode_step_ms(cal, shape, 1, sc.isl + sc.osl / 2)
    if single > sc.itl_ms:
        refused.append(f"decode TP{tp} on {it.name}: even one sequence decodes at {single:.1f} ms/token > ITL SLO {sc.itl_ms:g} ms")
        return None
    # Fewest replicas: from the throughput bound up, until ITL at the percentile meets the SLO.
    start = 1
    best_b = _max_batch_at_itl(cal, shape, fit, sc)
    if best_b:
        start = math.ceil(rate * sc.osl * perf.decode_step_ms(cal, shape, best_b, sc.isl + sc.osl / 2) / 1e3 / best_b)

    def meets(n: int) -> bool:
        point = serving.decode_point(cal, shape, fit, sc.isl, sc.osl, rate, n, sc.percentile)
        return point.feasible and point.itl_p_ms <= sc.itl_ms

    n = _fewest(start, meets)
    if n is None:
        refused.append(f"decode TP{tp} on {it.name}: no replica count up to {MAX_REPLICAS} meets ITL {sc.itl_ms:g} ms")
        return None
    nodes, filled = _nodes_for(it, shape.gpus, n)
    final = serving.decode_point(cal, shape, fit, sc.isl, sc.osl, rate, filled, sc.percentile)
    target = (best_b or 1) * (sc.isl + sc.osl / 2) / fit.kv_tokens if fit.kv_tokens else 0.8
    return RoleLayout(
        "decode", it.name, tp, 1, n, filled, shape.gpus, nodes, _efa_per_pod(it.name, shape.gpus), fit.kv_tokens,
        nodes * it.on_demand_usd_per_hour, itl_p_ms=final.itl_p_ms, itl_mean_ms=final.itl_mean_ms, batch=final.batch,
        keda_target=round(min(KV_USAGE_TARGET_MAX, max(0.05, target)), 2), notes=fit.notes,
    )


def _max_batch_at_itl(cal: Calibration, shape: perf.Shape, fit: perf.MemoryFit, sc: Scenario) -> int:
    """Largest batch whose decode step meets the ITL SLO and fits the KV cache (binary search)."""
    ctx = sc.isl + sc.osl / 2
    hi = min(perf.MAX_NUM_SEQS, fit.max_sequences(sc.isl + sc.osl, shape))
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if perf.decode_step_ms(cal, shape, mid, ctx) <= sc.itl_ms:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _size_prefill(
    cal: Calibration, sc: Scenario, it: InstanceType, tp: int, pp: int, rate: float, budget_ms: float, refused: list[str]
) -> RoleLayout | None:
    shape = _shape(sc, it, tp, pp)
    try:
        fit = perf.memory_fit(shape, it.gpu_memory_gib, sc.gpu_memory_utilization)
    except perf.Infeasible as exc:
        refused.append(f"prefill TP{tp}xPP{pp} on {it.name}: {exc}")
        return None
    alone = serving.prefill_point(cal, shape, sc.isl, 0.0, 1, sc.percentile, sc.isl_tail)
    if alone.ttft_p_ms > budget_ms:
        refused.append(
            f"prefill TP{tp}xPP{pp} on {it.name}: one prompt alone takes {alone.ttft_p_ms:.0f} ms > the {budget_ms:.0f} ms "
            "TTFT budget left after KV transfer and the first decode step"
        )
        return None
    n = _fewest(
        math.ceil(rate / alone.capacity_rps),
        lambda n: serving.prefill_point(cal, shape, sc.isl, rate, n, sc.percentile, sc.isl_tail).ttft_p_ms <= budget_ms,
    )
    if n is None:
        refused.append(f"prefill TP{tp}xPP{pp} on {it.name}: no replica count up to {MAX_REPLICAS} meets TTFT")
        return None
    nodes, filled = _nodes_for(it, shape.gpus, n)
    final = serving.prefill_point(cal, shape, sc.isl, rate, filled, sc.percentile, sc.isl_tail)
    # KEDA: waiting prompts per replica that still leave the TTFT budget (each waits one service time per prompt
    # ahead of it); at least one.
    service_ms = 1e3 / alone.capacity_rps
    slack = budget_ms - alone.ttft_p_ms
    target = max(1.0, math.floor(slack / service_ms)) if service_ms > 0 else 1.0
    return RoleLayout(
        "prefill", it.name, tp, pp, n, filled, shape.gpus, nodes, _efa_per_pod(it.name, min(shape.gpus, it.gpus)),
        fit.kv_tokens, nodes * it.on_demand_usd_per_hour, ttft_p_ms=final.ttft_p_ms, ttft_mean_ms=final.ttft_mean_ms,
        rho=final.rho, keda_target=target, notes=fit.notes,
    )


# Aggregated replicas are also tried with smaller per-pass token budgets (vLLM --max-num-batched-tokens): a smaller
# budget cuts prompts into more chunks, which lowers the ITL of the passes that carry them.
AGG_BUDGETS = (8192, 2048, 512)


def _size_agg(cal: Calibration, sc: Scenario, it: InstanceType, tp: int, pp: int, rate: float, refused: list[str]) -> Layout | None:
    found = [x for x in (_size_agg_at(cal, sc, it, tp, pp, rate, b, refused) for b in AGG_BUDGETS) if x is not None]
    return min(found, key=lambda lay: (lay.usd_per_hour, lay.ttft_p_ms)) if found else None


def _size_agg_at(
    cal: Calibration, sc: Scenario, it: InstanceType, tp: int, pp: int, rate: float, budget: int, refused: list[str]
) -> Layout | None:
    shape = _shape(sc, it, tp, pp, budget)
    try:
        fit = perf.memory_fit(shape, it.gpu_memory_gib, sc.gpu_memory_utilization)
    except perf.Infeasible as exc:
        refused.append(f"aggregated TP{tp}xPP{pp} on {it.name}: {exc}")
        return None
    def meets(n: int) -> bool:
        point = serving.agg_point(cal, shape, fit, sc.isl, sc.osl, rate, n, sc.percentile)
        return point.feasible and point.ttft_p_ms <= sc.ttft_ms and point.itl_p_ms <= sc.itl_ms

    n = _fewest(1, meets)
    if n is None:
        refused.append(f"aggregated TP{tp}xPP{pp} (budget {budget}) on {it.name}: no replica count up to {MAX_REPLICAS} meets both SLOs")
        return None
    nodes, filled = _nodes_for(it, shape.gpus, n)
    final = serving.agg_point(cal, shape, fit, sc.isl, sc.osl, rate, filled, sc.percentile)
    role = RoleLayout(
        "aggregated", it.name, tp, pp, n, filled, shape.gpus, nodes, _efa_per_pod(it.name, min(shape.gpus, it.gpus)),
        fit.kv_tokens, nodes * it.on_demand_usd_per_hour, ttft_p_ms=final.ttft_p_ms, ttft_mean_ms=final.ttft_mean_ms,
        itl_p_ms=final.itl_p_ms, itl_mean_ms=final.itl_mean_ms, batch=final.batch, rho=final.rho,
    )
    lay = Layout("agg", (role,), rate, final.ttft_p_ms, final.itl_p_ms, budget=budget)
    return replace(lay, output_tok_s=rate * sc.osl)


def _pair(cal: Calibration, sc: Scenario, rate: float, p_it: InstanceType, p_tp: int, p_pp: int, dec: RoleLayout, refused: list[str]) -> Layout | None:
    d_it = instance_type(dec.instance)
    shape_p = _shape(sc, p_it, p_tp, p_pp)
    shape_d = _shape(sc, d_it, dec.tp)
    efa_p = _efa_per_pod(p_it.name, min(shape_p.gpus, p_it.gpus))
    gbps_p = efa_p * efa_gbps_per_interface(p_it.name, p_it.efa_interfaces)
    gbps_d = dec.efa_per_pod * efa_gbps_per_interface(d_it.name, d_it.efa_interfaces)
    first_step = perf.decode_step_ms(cal, shape_d, max(1, math.ceil(dec.batch)), sc.isl)
    xfer = serving.kv_transfer(shape_p, shape_d, sc.isl_tail or sc.isl, gbps_p, gbps_d, 0.0)
    budget = sc.ttft_ms - xfer.ms - first_step
    pre = _size_prefill(cal, sc, p_it, p_tp, p_pp, rate, budget, refused)
    if pre is None:
        return None
    reasons = []
    load = rate / pre.filled * xfer.bytes_per_request * 8 / 1e9
    if xfer.ms > KV_TRANSFER_SHARE_OF_TTFT * sc.ttft_ms:
        reasons.append(
            f"KV transfer {xfer.ms:.1f} ms of {xfer.bytes_per_request / 1e9:.2f} GB over {xfer.pod_gbps:.0f} Gbps exceeds "
            f"{KV_TRANSFER_SHARE_OF_TTFT:.0%} of the TTFT SLO ({KV_TRANSFER_SHARE_OF_TTFT * sc.ttft_ms:.0f} ms)"
        )
    if xfer.pod_gbps and load > KV_LINK_SHARE * xfer.pod_gbps:
        reasons.append(f"KV traffic {load:.0f} Gbps per prefill pod exceeds half of its {xfer.pod_gbps:.0f} Gbps EFA share")
    ttft = pre.ttft_p_ms + xfer.ms + first_step
    lay = Layout(
        "disagg", (pre, dec), rate, ttft, dec.itl_p_ms, xfer.ms, xfer.bytes_per_request, load, xfer.pod_gbps,
        feasible=not reasons, reasons=tuple(reasons),
    )
    if reasons:
        refused.append(f"{pre.label()} -> {dec.label()}: " + "; ".join(reasons))
    return replace(lay, output_tok_s=rate * sc.osl)


# --- the search --------------------------------------------------------------------------------------------------


def plan(sc: Scenario, cal: Calibration | None = None) -> PlanResult:
    cal = cal or calibration()
    t0 = time.perf_counter()
    instances, refused = planable_instances(sc.instances)
    if sc.rate is not None:
        result = _plan_at(cal, sc, instances, sc.rate, refused)
    else:
        # Closed loop: the rate a concurrency produces depends on the latencies (Little's law: rate = concurrency /
        # request time). Start at the rate the SLOs would give and raise it while the best layout's own latencies
        # imply more: the final layout is sized for at least the rate it will see (a faster layout only makes its
        # clients send more, which its sizing already covers).
        rate = sc.concurrency / ((sc.ttft_ms + sc.osl * sc.itl_ms) / 1e3)
        result = _plan_at(cal, sc, instances, rate, list(refused))
        for _ in range(12):
            best = result.best
            if best is None:
                break
            implied = sc.concurrency / ((_mean_ttft(best) + sc.osl * _mean_itl(best)) / 1e3)
            if implied <= rate * 1.02:
                break
            rate = implied
            result = _plan_at(cal, sc, instances, rate, list(refused))
    result.seconds = time.perf_counter() - t0
    return result


def _mean_ttft(lay: Layout) -> float:
    r = lay.roles[0]
    return r.ttft_mean_ms + lay.kv_transfer_ms if lay.kind == "disagg" else r.ttft_mean_ms


def _mean_itl(lay: Layout) -> float:
    return lay.roles[-1].itl_mean_ms


def _plan_at(cal: Calibration, sc: Scenario, instances: list[InstanceType], rate: float, refused: list[str]) -> PlanResult:
    decodes: list[RoleLayout] = []
    for it in instances:
        for tp, _ in _layouts(sc, it, "decode"):
            d = _size_decode(cal, sc, it, tp, rate, refused)
            if d is not None:
                decodes.append(d)
    layouts: list[Layout] = []
    for it in instances:
        for tp, pp in _layouts(sc, it, "prefill"):
            for dec in decodes:
                lay = _pair(cal, sc, rate, it, tp, pp, dec, refused)
                if lay is not None and lay.feasible and lay.gpus_provisioned <= sc.max_gpus:
                    layouts.append(lay)
    baseline = []
    for it in instances:
        for tp, pp in _layouts(sc, it, "aggregated"):
            lay = _size_agg(cal, sc, it, tp, pp, rate, refused)
            if lay is not None:
                baseline.append(lay)
    def key(lay: Layout) -> tuple:
        multi = sum(1 for r in lay.roles if r.gpus_per_replica > instance_type(r.instance).gpus)
        return (round(lay.usd_per_hour, 2), lay.gpus_provisioned, multi, lay.ttft_p_ms + lay.itl_p_ms * sc.osl)

    layouts.sort(key=key)
    baseline.sort(key=key)
    return PlanResult(sc, rate, layouts, baseline, _dedupe(refused))


def _dedupe(xs: list[str]) -> list[str]:
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
