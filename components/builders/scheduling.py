"""Node labels, taints and tolerations: the one place that says how pods find and may land on each pool.

The node pools set them, the platform daemons tolerate them and the serving pods select them, all from these
functions, so a renamed label or an extra taint cannot leave a DaemonSet or a role behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from facts.catalog import instance_type
from facts.conventions import POOL_LABEL, ROLE_LABEL, EFA_LABEL, SYSTEM_POOL, SYSTEM_ROLE, GPU_TAINT


class TaintLike(Protocol):
    key: str
    value: str
    effect: str


class GpuPoolLike(Protocol):
    """What these functions read of a GPU pool: a pool of the stack config, or the platform's
    `platform_args.GpuPool` (whose `efa` is already resolved)."""

    name: str
    role: str
    instance_type: str
    efa: bool | None  # the explicit switch; None: the instance type's default
    labels: Mapping[str, str]
    taints: Sequence[TaintLike]


def pool_efa(pool: GpuPoolLike) -> bool:
    """EFA on this pool: the explicit switch, else on wherever the instance type supports it."""
    if pool.efa is not None:
        return pool.efa
    try:
        return instance_type(pool.instance_type).supports_efa
    except KeyError:
        return False


def role_taint(role: str) -> dict[str, str]:
    """Keeps decode pods off prefill nodes and the reverse, so each role keeps the hardware it was sized for."""
    return {"key": ROLE_LABEL, "value": role, "effect": "NoSchedule"}


def gpu_pool_labels(pool: GpuPoolLike) -> dict[str, str]:
    labels = {POOL_LABEL: pool.name, ROLE_LABEL: pool.role, EFA_LABEL: "true" if pool_efa(pool) else "false"}
    return {**pool.labels, **labels}


def gpu_pool_taints(pool: GpuPoolLike) -> list[dict[str, str]]:
    """Kubernetes-style taints (effect NoSchedule, ...) of a GPU pool: GPU, role, then the user's extras."""
    taints = [dict(GPU_TAINT), role_taint(pool.role)]
    taints += [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
    return taints


def system_pool_labels() -> dict[str, str]:
    return {POOL_LABEL: SYSTEM_POOL, ROLE_LABEL: SYSTEM_ROLE}


def eks_taint(taint: dict[str, str]) -> dict[str, str]:
    """EKS managed node groups spell effects NO_SCHEDULE / PREFER_NO_SCHEDULE / NO_EXECUTE."""
    effect = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[taint["effect"]]
    return {"key": taint["key"], "value": taint["value"], "effect": effect}


def toleration(taint: dict[str, str]) -> dict[str, str]:
    if taint.get("value"):
        return {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": taint["effect"]}
    return {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]}


def tolerations_for(taints: list[dict[str, str]]) -> list[dict[str, str]]:
    """Tolerations for exactly these taints, deduplicated, in a stable order."""
    seen: dict[tuple, dict[str, str]] = {}
    for t in taints:
        tol = toleration(t)
        seen.setdefault((tol["key"], tol.get("value"), tol["effect"]), tol)
    return list(seen.values())


def all_gpu_pool_taints(pools: Iterable[GpuPoolLike]) -> list[dict[str, str]]:
    """Every taint of the given GPU pools: what a daemon that runs on every node of them must tolerate."""
    out: list[dict[str, str]] = []
    for p in pools:
        out += gpu_pool_taints(p)
    return out


def daemon_tolerations(pools: Iterable[GpuPoolLike]) -> list[dict[str, str]]:
    return tolerations_for(all_gpu_pool_taints(pools))


def pool_node_selector(pool: GpuPoolLike) -> dict[str, str]:
    return {POOL_LABEL: pool.name}


def role_node_selector(role: str) -> dict[str, str]:
    return {ROLE_LABEL: role}
