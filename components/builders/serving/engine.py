"""The engine seam: what the pod builders need from an inference engine, and the registry by engine kind.

Everything engine-specific (command line, ports, health and metrics paths, its own environment, its metric
names) lives behind `Engine`; pods, LWS, Grove, router and scaling builders only call these methods, so a second
engine (TensorRT-LLM) is one new module registered here, not an edit across the package.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal, Protocol

from stacks.config.stack import StackConfig

# single: the whole replica in one pod. leader / worker: the pods of a replica that spans nodes.
Part = Literal["single", "leader", "worker"]


@dataclass(frozen=True)
class Group:
    """How a pod of a multi-node replica finds its group, as shell expressions over the env the workload API injects.

    LWS injects LWS_LEADER_ADDRESS and LWS_WORKER_INDEX (0 on the leader); Grove injects the PCSG name and index, the
    headless service and the pod's index in its clique, from which the leader's hostname and the node rank are built.
    The engine only sees these expressions.
    """

    leader_address: str  # shell expression expanding to the leader pod's DNS name
    node_rank: str  # shell expression expanding to this pod's rank in the group (0 = leader)
    nodes: int  # pods in the group, leader included (one per node)


class Engine(Protocol):
    kind: str
    health_path: str
    metrics_path: str

    def image(self, cfg: StackConfig, role: str) -> str: ...

    def port(self, cfg: StackConfig) -> int: ...

    def process(self, cfg: StackConfig, role: str, part: Part, group: Group | None) -> dict:
        """command, args, env and ports of the engine container for one part of a role."""
        ...

    def serves_http(self, part: Part) -> bool:
        """Whether this part runs the HTTP API (probes, router discovery, metrics)."""
        ...

    def leader_ready_startup(self, cfg: StackConfig, role: str) -> bool:
        """Whether workers of a multi-node group may only start once the leader is Ready."""
        ...

    def default_scaling_metric(self, role: str) -> tuple[str, float]:
        """(Prometheus metric, target per replica) used when the role's autoscaling does not name one."""
        ...

    def revision_inputs(self, cfg: StackConfig) -> dict:
        """Everything prefill and decode must share to exchange KV (engine build, model, connector settings)."""
        ...


_REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    _REGISTRY[engine.kind] = engine
    return engine


def engine_for(cfg: StackConfig) -> Engine:
    """The engine of `cfg.serving.engine.kind`."""
    from components.builders.serving import vllm  # noqa: F401 - registers itself

    kind = cfg.serving.engine.kind
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no engine builder for kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def engine_revision(cfg: StackConfig) -> str:
    """A short hash of what both roles must share. It labels every engine pod and is part of the router's selectors,
    so the router only ever pairs a prefill and a decode pod of the same revision: NIXL refuses a handshake between
    different engine or connector versions (its compatibility hash), and during a rollout old and new pods coexist."""
    inputs = json.dumps(engine_for(cfg).revision_inputs(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(inputs.encode()).hexdigest()[:12]
