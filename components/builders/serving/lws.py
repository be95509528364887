"""`lws`: one LeaderWorkerSet per serving role (kubernetes-sigs/lws v1).

A replica that fits a node is a group of one pod (size 1: leader only). A replica whose TP x PP spans nodes is a
group of `nodes_per_replica` pods, one per node: a leader (the HTTP API) and workers, recreated together when any
of them restarts (a partial group cannot serve). KAI's pod grouper turns each group into one PodGroup with
minAvailable = size under the LeaderCreated startup policy (KAI lws_grouper.go), i.e. gang-scheduled.
"""

from __future__ import annotations

from components.builders.serving.common import KAI_QUEUE_LABEL, labels, meta, workload_name
from components.builders.serving.engine import Group, engine_for
from components.builders.serving.pods import pod_template
from components.builders.serving.spec import PlatformFacts, ServingSpec

API_VERSION = "leaderworkerset.x-k8s.io/v1"
KIND = "LeaderWorkerSet"



def lws_group(nodes: int) -> Group:
    """Env vars LWS injects into every container of a group: the leader's address and the pod's index in the group,
    0 on the leader (lws site/content/en/docs/reference/labels-annotations-and-environment-variables.md)."""
    # Worker pods are <lws>-<group index>-<worker index> under the same headless Service as the leader
    # <lws>-<group index> (lws docs, "LeaderWorkerSet" concepts: pod naming), so a worker's DNS name is the leader's
    # with the worker index appended to its first label.
    workers = tuple(f"${{LWS_LEADER_ADDRESS%%.*}}-{i}.${{LWS_LEADER_ADDRESS#*.}}" for i in range(1, nodes))
    return Group(leader_address="${LWS_LEADER_ADDRESS}", node_rank="${LWS_WORKER_INDEX}", nodes=nodes, workers=workers)


def leader_worker_set(spec: ServingSpec, role: str, facts: PlatformFacts) -> dict:
    rp = spec.role(role)
    engine = engine_for(spec)
    name = workload_name(spec, role)
    annotations: dict[str, str] = {}
    if rp.multi_node:
        # Prefer each group inside one network block so PP/TP traffic between its nodes crosses the fewest
        # switches (KAI docs/topology/README.md; EKS topology labels). Preferred, not required: a group that
        # cannot pack still schedules.
        pack = facts.pack_for(role)  # a Topology every node of the role's pools carries the labels of
        annotations["kai.scheduler/topology"] = pack.topology_name
        annotations["kai.scheduler/topology-preferred-placement"] = pack.node_label
        template = {
            "size": rp.nodes_per_replica,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": pod_template(spec, role, facts, part="leader", group=lws_group(rp.nodes_per_replica)),
            "workerTemplate": pod_template(spec, role, facts, part="worker", group=lws_group(rp.nodes_per_replica)),
        }
        startup = "LeaderReady" if engine.leader_ready_startup(spec, role) else "LeaderCreated"
    else:
        template = {
            "size": 1,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "workerTemplate": pod_template(spec, role, facts, part="single"),
        }
        startup = "LeaderCreated"
    m = meta(spec, name, role, annotations=annotations)
    # KAI reads the queue from the top owner first (defaultgrouper.CalcPodGroupQueue).
    m["labels"] = {**labels(spec, role, name), KAI_QUEUE_LABEL: facts.queue_name}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": m,
        "spec": {
            "replicas": rp.replicas,
            "startupPolicy": startup,
            "leaderWorkerTemplate": template,
            # One group at a time: a rollout never takes more than one replica's GPUs out of service, and with
            # maxSurge 0 it never needs GPUs the pools do not have.
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}},
        },
    }
