"""Pure builders of the serving layer: config in, plain Kubernetes manifests out.

`manifests(cfg, facts)` is the whole serving layer as an ordered list; the Serving component only registers
each entry. `needs` names the platform releases (by version-table key) an object must wait for: the one that
installs its CRD or controller, so `pulumi destroy` removes the object before its controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.builders.serving import grove, lws, policies, router, scaling
from components.builders.serving.common import PlatformFacts
from facts.conventions import ROLES, ROUTER
from stacks.config.stack import StackConfig


@dataclass(frozen=True)
class Manifest:
    obj: dict
    needs: tuple[str, ...] = ()
    # Fields another controller owns after creation (KEDA owns a scaled LeaderWorkerSet's replicas).
    ignore_changes: tuple[str, ...] = ()
    # The object is a workload: it waits for the whole platform, not only for `needs`.
    workload: bool = False
    # The HF token Secret: the component fills in its data from the Pulumi secret.
    hf_token: bool = field(default=False)

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


def manifests(cfg: StackConfig, facts: PlatformFacts) -> list[Manifest]:
    pf = cfg.platform
    out = [Manifest(policies.namespace_object(cfg))]
    if cfg.hf_token is not None:
        out.append(Manifest(policies.hf_secret(cfg), hf_token=True))
    if cfg.serving.model_cache.kind == "pvc":
        out.append(Manifest(policies.model_cache_claim(cfg)))
    out += [Manifest(router.service_account(cfg)), Manifest(router.role(cfg)), Manifest(router.role_binding(cfg))]
    out += [Manifest(router.role_service(cfg, r)) for r in ROLES]
    lb = ("aws-load-balancer-controller",) if cfg.serving.router.service_type == "internalNlb" else ()
    out += [Manifest(router.service(cfg), needs=lb), Manifest(router.metrics_service(cfg))]
    scaled = scaling.scaled_roles(cfg) if pf.keda.enabled else []
    if pf.workload_api == "lws":
        for r in ROLES:
            ignore = ("spec.replicas",) if r in scaled else ()
            out.append(Manifest(lws.leader_worker_set(cfg, r, facts), needs=("lws", "kai-scheduler"), ignore_changes=ignore, workload=True))
        out.append(Manifest(router.deployment(cfg, facts), workload=True))
    else:
        out.append(Manifest(grove.pod_clique_set(cfg, facts), needs=("grove", "kai-scheduler"), workload=True))
    out += [Manifest(policies.pdb(cfg, c)) for c in (*ROLES, ROUTER)]
    out += [Manifest(np) for np in policies.network_policies(cfg, facts)]
    if pf.monitoring.enabled:
        out.append(Manifest(policies.service_monitor(cfg, facts), needs=("kube-prometheus-stack",)))
    out += [Manifest(scaling.scaled_object(cfg, r, facts), needs=("keda",), workload=True) for r in scaled]
    return out
