"""Each role scales on its own: a KEDA ScaledObject per role on an engine metric from Prometheus.

KEDA drives the scale subresource of the role's LeaderWorkerSet (one replica = one group; the HPA reads the
leaders' metrics through `.status.hpaPodSelector`, lws api/leaderworkerset/v1).

Under Grove nothing scales: the scale subresource of a PodClique / PodCliqueScalingGroup carries a pod selector only
when Grove's own scaleConfig is set (grove v0.1.0-alpha.11 operator/internal/controller/podclique/reconcilestatus.go
`mutateSelector`, podcliquescalinggroup/reconcilestatus.go), without which an HPA (KEDA's included) cannot act; and
that scaleConfig makes Grove create HPAs on autoscaling/v2 metrics, which for engine metrics need a custom-metrics
adapter the platform does not install. Autoscaling therefore defaults to off under Grove and validation refuses
turning it on (stacks/validation.py). `scale_target` still names Grove's objects for the day that changes.

The query sums the metric over the role's HTTP pods; KEDA's default AverageValue target divides it by the current
replica count, so the target is per replica (e.g. 4 waiting requests per prefill replica).
"""

from __future__ import annotations

from components.builders.serving.common import PlatformFacts, meta, namespace, role_service_name, workload_name
from components.builders.serving import grove, lws
from components.builders.serving.engine import engine_for
from stacks.config.stack import StackConfig
from stacks.plan import autoscaling_enabled, role_plan

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"

# A replica takes minutes to load its model: scale up promptly, scale down only after load stayed low for long.
SCALE_DOWN_WINDOW_SECONDS = 600


def metric(cfg: StackConfig, role: str) -> tuple[str, float]:
    a = cfg.serving.role(role).autoscaling
    default_metric, default_target = engine_for(cfg).default_scaling_metric(role)
    return a.metric or default_metric, a.target if a.target is not None else default_target


def query(cfg: StackConfig, role: str) -> str:
    name, _ = metric(cfg, role)
    # `service` is the role's headless Service (the ServiceMonitor target), which selects only the role's HTTP
    # pods, so multi-node workers never count.
    return f'sum({name}{{namespace="{namespace(cfg)}",service="{role_service_name(cfg, role)}"}})'


def scale_target(cfg: StackConfig, role: str) -> dict:
    if cfg.platform.workload_api == "grove":
        return grove.scale_target(cfg, role)
    return {"apiVersion": lws.API_VERSION, "kind": lws.KIND, "name": workload_name(cfg, role)}


def scaled_object(cfg: StackConfig, role: str, facts: PlatformFacts) -> dict:
    rp = role_plan(cfg, role)
    a = cfg.serving.role(role).autoscaling
    _, target = metric(cfg, role)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta(cfg, workload_name(cfg, role), role),
        "spec": {
            "scaleTargetRef": scale_target(cfg, role),
            "minReplicaCount": a.min_replicas if a.min_replicas is not None else rp.replicas,
            "maxReplicaCount": rp.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
                        "scaleUp": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {"serverAddress": facts.prometheus_url, "query": query(cfg, role), "threshold": f"{target:g}"},
                }
            ],
        },
    }


def scaled_roles(cfg: StackConfig) -> list[str]:
    return [r for r in ("prefill", "decode") if autoscaling_enabled(cfg, r)]

