"""Pure builders of the serving layer: a `ServingSpec` (spec.py) in, plain Kubernetes manifests out.

`manifests(spec, facts)` is the whole serving layer as an ordered list; the Serving component only registers
each entry. `needs` names the platform releases (by version-table key) an object must wait for: the one that
installs its CRD or controller, so `pulumi destroy` removes the object before its controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.builders.serving import grove, lws, policies, router, scaling
from components.builders.serving.engine import engine_for
from components.builders.serving.gate import KEY_FILE
from components.builders.serving.spec import PlatformFacts, ServingSpec
from facts.conventions import ROLES, ROUTER


# The Pulumi secrets the Serving component is given, by name, and where each goes.
HF_TOKEN, HF_TOKEN_KEY = "hfToken", "token"
ROUTER_API_KEY = ("routerApiKey", KEY_FILE)


@dataclass(frozen=True)
class Manifest:
    obj: dict
    needs: tuple[str, ...] = ()
    # Fields another controller owns after creation (KEDA owns a scaled LeaderWorkerSet's replicas).
    ignore_changes: tuple[str, ...] = ()
    # The object is a workload: it waits for the whole platform, not only for `needs`.
    workload: bool = False
    # A Secret whose data the component fills in from a Pulumi secret: (secret name in the component, data key).
    secret: tuple[str, str] | None = field(default=None)

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


def manifests(spec: ServingSpec, facts: PlatformFacts) -> list[Manifest]:
    out = [Manifest(policies.namespace_object(spec))]
    if spec.hf_token:
        out.append(Manifest(policies.hf_secret(spec), secret=(HF_TOKEN, HF_TOKEN_KEY)))
    if spec.router.api_key:
        out.append(Manifest(policies.router_api_key_secret(spec), secret=ROUTER_API_KEY))
    if spec.model_cache.kind == "pvc":
        out.append(Manifest(policies.model_cache_claim(spec)))
    out += [Manifest(router.service_account(spec)), Manifest(router.role(spec)), Manifest(router.role_binding(spec))]
    out += [Manifest(router.role_service(spec, r)) for r in ROLES]
    lb = ("aws-load-balancer-controller",) if spec.router.service_type == "internalNlb" else ()
    out += [Manifest(router.service(spec), needs=lb), Manifest(router.metrics_service(spec))]
    out += [Manifest(o) for o in engine_for(spec).extra_objects(spec, facts)]
    scaled = scaling.scaled_roles(spec) if spec.keda else []
    if spec.workload_api == "lws":
        for r in ROLES:
            ignore = ("spec.replicas",) if r in scaled else ()
            out.append(Manifest(lws.leader_worker_set(spec, r, facts), needs=("lws", "kai-scheduler"), ignore_changes=ignore, workload=True))
        out.append(Manifest(router.deployment(spec, facts), workload=True))
    else:
        out.append(Manifest(grove.pod_clique_set(spec, facts), needs=("grove", "kai-scheduler"), workload=True))
    out += [Manifest(policies.pdb(spec, c)) for c in (*ROLES, ROUTER)]
    out += [Manifest(np) for np in policies.network_policies(spec, facts)]
    if spec.monitoring:
        out.append(Manifest(policies.service_monitor(spec, facts), needs=("kube-prometheus-stack",)))
    out += [Manifest(scaling.scaled_object(spec, r, facts), needs=("keda",), workload=True) for r in scaled]
    return out
