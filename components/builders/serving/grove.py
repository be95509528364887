"""`grove`: one PodCliqueSet holding the router, prefill and decode cliques (ai-dynamo/grove v1alpha1).

Single-node roles are standalone cliques whose pods are the replicas (minAvailable 1: each pod serves alone, so
one unschedulable pod must not hold the others back). A role whose replica spans nodes is a
PodCliqueScalingGroup of a leader clique (1 pod) and a worker clique (nodes - 1 pods); each scaling-group
replica is gang-scheduled as one unit (KAI builds the PodGroup from Grove's PodGang). The router clique starts
after the engines' HTTP-serving cliques (CliqueStartupTypeExplicit + startsAfter), so it never routes into a
role that has no ready pod.
"""

from __future__ import annotations

from components.builders.serving.common import KAI_PRIORITY_CLASS, KAI_QUEUE_LABEL, meta
from facts.conventions import ROLES, ROUTER
from components.builders.serving.engine import Group, engine_for
from components.builders.serving.pods import pod_template
from components.builders.serving.router import router_pod_template
from components.builders.serving.spec import PlatformFacts, ServingSpec

API_VERSION = "grove.io/v1alpha1"
KIND = "PodCliqueSet"


def pcs_name(spec: ServingSpec) -> str:
    return spec.name


def leader_clique(role: str) -> str:
    return f"{role}-leader"


def worker_clique(role: str) -> str:
    return f"{role}-worker"


def endpoint_clique(spec: ServingSpec, role: str) -> str:
    """The clique whose pods serve the role's HTTP API."""
    return leader_clique(role) if spec.role(role).multi_node else role


def grove_group(spec: ServingSpec, role: str, part: str) -> Group:
    # Grove env (docs/user-guide/03_environment-variables-for-pod-discovery): the leader's hostname is
    # <pcsg fqn>-<pcsg index>-<leader clique>-0, resolvable under the PCS replica's headless service. A worker's rank
    # is its index in the worker clique (GROVE_PCLQ_POD_INDEX, from 0) plus one: the leader is node 0.
    leader = f"${{GROVE_PCSG_NAME}}-${{GROVE_PCSG_INDEX}}-{leader_clique(role)}-0.${{GROVE_HEADLESS_SERVICE}}"
    rank = "0" if part == "leader" else "$((GROVE_PCLQ_POD_INDEX + 1))"
    nodes = spec.role(role).nodes_per_replica
    workers = tuple(
        f"${{GROVE_PCSG_NAME}}-${{GROVE_PCSG_INDEX}}-{worker_clique(role)}-{j}.${{GROVE_HEADLESS_SERVICE}}" for j in range(nodes - 1)
    )
    return Group(leader_address=leader, node_rank=rank, nodes=nodes, workers=workers)


def scale_target(spec: ServingSpec, role: str) -> dict:
    """The object KEDA scales for a role: the PodClique of a single-node role, the scaling group of a multi-node
    one. Grove names them <pcs>-<pcs replica>-<template name> (operator/api/common/namegen.go); the PCS has one
    replica."""
    kind = "PodCliqueScalingGroup" if spec.role(role).multi_node else "PodClique"
    return {"apiVersion": API_VERSION, "kind": kind, "name": f"{pcs_name(spec)}-0-{role}"}


def _topology(facts: PlatformFacts, role: str) -> dict:
    # One Topology per PodCliqueSet (Grove), satisfied by every pool of both roles (platform_objects.role_packs).
    pack = facts.pack_for(role)
    return {"topologyName": pack.topology_name, "pack": {"preferred": pack.domain}}


def _clique(name: str, role_name: str, template: dict, *, replicas: int, min_available: int, starts_after=None, topology=None) -> dict:
    spec: dict = {"roleName": role_name, "replicas": replicas, "minAvailable": min_available, "podSpec": template["spec"]}
    if starts_after:
        spec["startsAfter"] = starts_after
    out = {"name": name, "labels": template["metadata"]["labels"], "spec": spec}
    if template["metadata"].get("annotations"):
        out["annotations"] = template["metadata"]["annotations"]
    if topology:
        out["topologyConstraint"] = topology
    return out


def pod_clique_set(spec: ServingSpec, facts: PlatformFacts) -> dict:
    engine = engine_for(spec)
    tas = spec.grove_topology_aware
    cliques, groups = [], []
    for role in ROLES:
        rp = spec.role(role)
        if not rp.multi_node:
            tpl = pod_template(spec, role, facts, part="single")
            # Prefer all pods of a role in one network block: KV blocks then travel the fewest EFA hops.
            cliques.append(_clique(role, role, tpl, replicas=rp.replicas, min_available=1, topology=_topology(facts, role) if tas else None))
            continue
        leader = pod_template(spec, role, facts, part="leader", group=grove_group(spec, role, "leader"))
        worker = pod_template(spec, role, facts, part="worker", group=grove_group(spec, role, "worker"))
        workers = rp.nodes_per_replica - 1
        after_leader = [leader_clique(role)] if engine.leader_ready_startup(spec, role) else None
        cliques.append(_clique(leader_clique(role), leader_clique(role), leader, replicas=1, min_available=1))
        cliques.append(_clique(worker_clique(role), worker_clique(role), worker, replicas=workers, min_available=workers, starts_after=after_leader))
        g = {
            "name": role,
            "cliqueNames": [leader_clique(role), worker_clique(role)],
            "replicas": rp.replicas,
            # Each replica of the group is its own gang; one is enough to start serving.
            "minAvailable": 1,
        }
        if tas:
            g["topologyConstraint"] = _topology(facts, role)
        groups.append(g)
    router = router_pod_template(spec, facts)
    cliques.append(
        _clique(
            ROUTER,
            ROUTER,
            router,
            replicas=spec.router.replicas,
            min_available=1,
            starts_after=[endpoint_clique(spec, r) for r in ROLES],
        )
    )
    template: dict = {
        "cliqueStartupType": "CliqueStartupTypeExplicit",
        "priorityClassName": KAI_PRIORITY_CLASS,
        "cliques": cliques,
    }
    if groups:
        template["podCliqueScalingGroups"] = groups
    m = meta(spec, pcs_name(spec), "serving")
    m["labels"][KAI_QUEUE_LABEL] = facts.queue_name
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": m, "spec": {"replicas": 1, "template": template}}
