"""The engine seam: what the pod builders need from an inference engine, and the registry by engine kind.

Everything engine-specific (command line, ports, health and metrics paths, its own environment, its metric
names) lives behind `Engine`; pods, LWS, Grove, router and scaling builders only call these methods, so a second
engine (TensorRT-LLM) is one new module registered here, not an edit across the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from stacks.config.stack import StackConfig

# single: the whole replica in one pod. leader / worker: the pods of a replica that spans nodes.
Part = Literal["single", "leader", "worker"]


@dataclass(frozen=True)
class Group:
    """How a pod of a multi-node replica finds its group, as shell expressions the workload API provides.

    LWS injects LWS_LEADER_ADDRESS / LWS_GROUP_SIZE; Grove injects the PCSG name and index and the headless service
    from which the leader's hostname is built. The engine only sees these expressions.
    """

    leader_address: str  # shell expression expanding to the leader pod's DNS name
    size: str  # shell expression or literal: pods in the group, leader included


class Engine(Protocol):
    kind: str
    health_path: str
    metrics_path: str

    def image(self, cfg: StackConfig) -> str: ...

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
