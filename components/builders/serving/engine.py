"""The engine seam: what the serving builders need from an inference engine, and the registry by engine kind.

Everything engine-specific lives behind `Engine`: the role container (image, command, args, env, ports), its
probes and metrics path, how the pods of a multi-node replica launch together (`process` with a `Group`), where
the model cache and the writable $HOME go, its default scaling metrics, and the router (orchestrator) role in front
of the engines (`router`). Pods, LWS, Grove, router, policies and scaling builders only call these methods, so a
second engine (TensorRT-LLM) is one new module registered here, not an edit across the package; nothing but that
module knows the engine's command line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal, Protocol

from components.builders.serving.spec import ServingSpec
from facts.versions import pin

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
    # Shell expressions expanding to the DNS names of the group's other pods, in rank order (rank 1 first): an engine
    # whose leader launches the whole group (MPI) needs them; one whose members join the leader does not.
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouterProcess:
    """The router's container as the engine's router runs it. The pod around it (service account, placement,
    security context, scheduler) is the router builder's (router.py)."""

    container: dict  # name, image, command, args, env, ports (named `http` and `metrics`), probes, mounts, ...
    volumes: list[dict] = field(default_factory=list)
    init_containers: list[dict] = field(default_factory=list)
    # Further containers of the router pod (e.g. the auth gate in front of it, gate.py), each complete.
    sidecars: list[dict] = field(default_factory=list)
    # The pod's fsGroup, when a container reads a group-readable Secret volume.
    fs_group: int | None = None


class Router(Protocol):
    """The role in front of the engines: takes client requests and picks the engine pod(s) that serve each."""

    kind: str
    container_port: int  # the HTTP listener of the router container (the `http` port)
    metrics_path: str
    kubernetes_discovery: bool  # finds the engine pods through the Kubernetes API (needs the Role on pods)

    def metrics_port(self, spec: ServingSpec) -> int:
        """Where the pod serves the router's Prometheus metrics: the `metrics` port, or container_port when the
        router serves them on its HTTP listener."""
        ...

    def process(self, spec: ServingSpec) -> RouterProcess: ...


@dataclass(frozen=True)
class ScalingTrigger:
    """The Prometheus query a role scales on and how KEDA reads it: `AverageValue` (the query sums over the role's
    pods, the target is per replica) or `Value` (the query is already a per-role figure, such as a mean latency)."""

    query: str
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"


# The parts of a role that run the engine's HTTP API: single-node pods and multi-node leaders (workers run only the
# distributed runtime), for every engine.
HTTP_PARTS = ("single", "leader")


def engine_image(spec: ServingSpec, role: str, pin_name: str) -> str:
    """The image of a role's engine pods: on EFA pools the EFA image (it carries the EFA user space; validation
    requires it there), elsewhere `serving.engine.image` or the engine's release image from the versions table."""
    e = spec.engine
    if spec.role(role).efa:
        return e.efa_image or ""
    return e.image or pin(pin_name).image_ref


class HttpEngine:
    """What every engine of this package does alike: its image by the EFA rule (`engine_image`, from the versions
    table pin named `pin_name`), one HTTP port (`serving.engine.port`), the HTTP API on single pods and leaders."""

    pin_name: str

    def image(self, spec: ServingSpec, role: str) -> str:
        return engine_image(spec, role, self.pin_name)

    def port(self, spec: ServingSpec) -> int:
        return spec.engine.port

    def serves_http(self, part: Part) -> bool:
        return part in HTTP_PARTS


class Engine(Protocol):
    kind: str
    metrics_path: str
    cache_mount: str  # where the model cache volume is mounted in the engine container
    home: str  # $HOME of the engine image's user: a writable emptyDir when the root file system is read-only
    router: Router

    def image(self, spec: ServingSpec, role: str) -> str: ...

    def port(self, spec: ServingSpec) -> int: ...

    def process(self, spec: ServingSpec, role: str, part: Part, group: Group | None) -> dict:
        """command, args, env and ports of the engine container for one part of a role; with a `group`, the
        multi-node launch (every pod of the group joins the leader)."""
        ...

    def probes(self, spec: ServingSpec, role: str) -> dict:
        """startupProbe, readinessProbe and livenessProbe of a part that serves HTTP."""
        ...

    def serves_http(self, part: Part) -> bool:
        """Whether this part runs the HTTP API (probes, router discovery, metrics)."""
        ...

    def leader_ready_startup(self, spec: ServingSpec, role: str) -> bool:
        """Whether workers of a multi-node group may only start once the leader is Ready."""
        ...

    def default_scaling_metric(self, role: str) -> tuple[str, float]:
        """(Prometheus metric, target per replica) used when the role's autoscaling does not name one."""
        ...

    def revision_inputs(self, spec: ServingSpec) -> dict:
        """Everything prefill and decode must share to exchange KV (engine build, model, connector settings)."""
        ...

    def scaling_trigger(self, metric: str, selector: str) -> ScalingTrigger:
        """The KEDA query of `metric` over the role's HTTP pods (`selector` is the PromQL label matcher `{...}`)."""
        ...

    def extra_objects(self, spec: ServingSpec, facts) -> list[dict]:
        """Objects the engine needs beside the roles and the router (its config maps, a discovery store, launcher
        RBAC), created before the workloads."""
        ...


_REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    _REGISTRY[engine.kind] = engine
    return engine


def engine_for(spec: ServingSpec) -> Engine:
    """The engine of `spec.engine.kind`."""
    from components.builders.serving import trtllm, vllm  # noqa: F401 - register themselves

    kind = spec.engine.kind
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no engine builder for kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def engine_revision(spec: ServingSpec) -> str:
    """A short hash of what both roles must share. It labels every engine pod and is part of the router's selectors,
    so the router only ever pairs a prefill and a decode pod of the same revision: NIXL refuses a handshake between
    different engine or connector versions (its compatibility hash), and during a rollout old and new pods coexist."""
    inputs = json.dumps(engine_for(spec).revision_inputs(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(inputs.encode()).hexdigest()[:12]
