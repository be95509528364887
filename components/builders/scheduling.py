"""Node labels, taints and tolerations: the one place that says how pods find and may land on each pool.

The node pools set them, the platform daemons tolerate them and the serving pods select them, all from these
functions, so a renamed label or an extra taint cannot leave a DaemonSet or a role behind. Plain values in and out:
the stack derives each pool's (stacks/aws_args.py `pool_labels`, `pool_taints`) and hands them to every layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from facts.conventions import POOL_LABEL, ROLE_LABEL, EFA_LABEL, SYSTEM_POOL, SYSTEM_ROLE, GPU_TAINT


def role_taint(role: str) -> dict[str, str]:
    """Keeps decode pods off prefill nodes and the reverse, so each role keeps the hardware it was sized for."""
    return {"key": ROLE_LABEL, "value": role, "effect": "NoSchedule"}


def gpu_pool_labels(name: str, role: str, efa: bool, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels of a GPU pool's nodes: the user's extras (`gpuPools[].labels`), then ours (ours win)."""
    labels = {POOL_LABEL: name, ROLE_LABEL: role, EFA_LABEL: "true" if efa else "false"}
    return {**extra, **labels}


def gpu_pool_taints(role: str, extra: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Kubernetes-style taints (effect NoSchedule, ...) of a GPU pool: GPU, role, then the user's extras
    (`gpuPools[].taints`, each with key, value and effect)."""
    taints = [dict(GPU_TAINT), role_taint(role)]
    taints += [{"key": t["key"], "value": t["value"], "effect": t["effect"]} for t in extra]
    return taints


def system_pool_labels() -> dict[str, str]:
    return {POOL_LABEL: SYSTEM_POOL, ROLE_LABEL: SYSTEM_ROLE}


def eks_taint(taint: Mapping[str, str]) -> dict[str, str]:
    """EKS managed node groups spell effects NO_SCHEDULE / PREFER_NO_SCHEDULE / NO_EXECUTE."""
    effect = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[taint["effect"]]
    return {"key": taint["key"], "value": taint["value"], "effect": effect}


def toleration(taint: Mapping[str, str]) -> dict[str, str]:
    if taint.get("value"):
        return {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": taint["effect"]}
    return {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]}


def tolerations_for(taints: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Tolerations for exactly these taints, deduplicated, in a stable order."""
    seen: dict[tuple, dict[str, str]] = {}
    for t in taints:
        tol = toleration(t)
        seen.setdefault((tol["key"], tol.get("value"), tol["effect"]), tol)
    return list(seen.values())


def role_node_selector(role: str) -> dict[str, str]:
    return {ROLE_LABEL: role}
