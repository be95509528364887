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

from components.builders.serving.common import meta, namespace, role_service_name, workload_name
from components.builders.serving import grove, lws
from components.builders.serving.engine import ScalingTrigger, engine_for
from components.builders.serving.spec import PlatformFacts, ServingSpec

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"

# A replica takes minutes to load its model: scale up promptly, scale down only after load stayed low for long.
SCALE_DOWN_WINDOW_SECONDS = 600


def metric(spec: ServingSpec, role: str) -> tuple[str, float]:
    rs = spec.role(role)
    default_metric, default_target = engine_for(spec).default_scaling_metric(role)
    return rs.scaling_metric or default_metric, rs.scaling_target if rs.scaling_target is not None else default_target


def trigger(spec: ServingSpec, role: str) -> ScalingTrigger:
    name, _ = metric(spec, role)
    # `service` is the role's headless Service (the ServiceMonitor target), which selects only the role's HTTP
    # pods, so multi-node workers never count.
    return engine_for(spec).scaling_trigger(name, f'{{namespace="{namespace(spec)}",service="{role_service_name(spec, role)}"}}')


def query(spec: ServingSpec, role: str) -> str:
    return trigger(spec, role).query


def scale_target(spec: ServingSpec, role: str) -> dict:
    if spec.workload_api == "grove":
        return grove.scale_target(spec, role)
    return {"apiVersion": lws.API_VERSION, "kind": lws.KIND, "name": workload_name(spec, role)}


def scaled_object(spec: ServingSpec, role: str, facts: PlatformFacts) -> dict:
    rp = spec.role(role)
    _, target = metric(spec, role)
    trig = trigger(spec, role)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta(spec, workload_name(spec, role), role),
        "spec": {
            "scaleTargetRef": scale_target(spec, role),
            "minReplicaCount": rp.min_replicas if rp.min_replicas is not None else rp.replicas,
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
                    "metricType": trig.metric_type,
                    "metadata": {"serverAddress": facts.prometheus_url, "query": trig.query, "threshold": f"{target:g}"},
                }
            ],
        },
    }


def scaled_roles(spec: ServingSpec) -> list[str]:
    return [r for r in ("prefill", "decode") if spec.role(r).autoscaling]

