"""The two workload APIs: LeaderWorkerSet per role, or one Grove PodCliqueSet."""

from __future__ import annotations

from components.builders.serving import grove, lws
from tests.unit.serving_helpers import container, facts, multinode, prod, spec_of


def test_lws_single_node_role_is_a_group_of_one_kai_queued():
    cfg = prod()
    obj = lws.leader_worker_set(spec_of(cfg), "prefill", facts(cfg))
    assert (obj["apiVersion"], obj["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    assert obj["metadata"]["name"] == "t-prefill" and obj["metadata"]["namespace"] == "t"
    assert obj["metadata"]["labels"]["kai.scheduler/queue"] == "serving"
    assert obj["spec"]["replicas"] == 2
    t = obj["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 1
    assert "leaderTemplate" not in t
    assert t["workerTemplate"]["spec"]["schedulerName"] == "kai-scheduler"
    assert t["workerTemplate"]["metadata"]["labels"]["kai.scheduler/queue"] == "serving"
    assert "kai.scheduler/topology" not in obj["metadata"].get("annotations", {})


def test_lws_multi_node_role_is_a_group_of_two_recreated_together():
    cfg = multinode()
    f = facts(cfg)
    obj = lws.leader_worker_set(spec_of(cfg), "decode", f)
    t = obj["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 2
    assert t["restartPolicy"] == "RecreateGroupOnPodRestart"
    # The vLLM leader serves /health only once its workers joined: LeaderReady would deadlock the group.
    assert obj["spec"]["startupPolicy"] == "LeaderCreated"
    leader, worker = t["leaderTemplate"], t["workerTemplate"]
    assert leader["metadata"]["labels"]["disagg.io/endpoint"] == "true"
    assert "disagg.io/endpoint" not in worker["metadata"]["labels"]
    assert leader["metadata"]["labels"]["disagg.io/part"] == "leader"
    for tpl in (leader, worker):
        script = container(tpl["spec"])["command"][2]
        assert 'NODE_RANK="${LWS_WORKER_INDEX}"' in script and 'LEADER_ADDR="${LWS_LEADER_ADDRESS}"' in script
        assert "ray" not in script.lower()
    assert "--headless" in container(worker["spec"])["args"] and "--headless" not in container(leader["spec"])["args"]
    ann = obj["metadata"]["annotations"]
    assert ann["kai.scheduler/topology"] == f.topology_name
    assert ann["kai.scheduler/topology-preferred-placement"] == f.pack_node_label


def test_lws_rollout_never_needs_spare_gpus():
    cfg = prod()
    ru = lws.leader_worker_set(spec_of(cfg), "decode", facts(cfg))["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]
    assert ru == {"maxUnavailable": 1, "maxSurge": 0}


def _cliques(pcs):
    return {c["name"]: c for c in pcs["spec"]["template"]["cliques"]}


def test_grove_pcs_has_router_prefill_decode_cliques_started_in_order():
    cfg = prod()
    pcs = grove.pod_clique_set(spec_of(cfg), facts(cfg))
    assert (pcs["apiVersion"], pcs["kind"]) == ("grove.io/v1alpha1", "PodCliqueSet")
    t = pcs["spec"]["template"]
    assert t["cliqueStartupType"] == "CliqueStartupTypeExplicit"
    assert t["priorityClassName"] == "inference"
    c = _cliques(pcs)
    assert set(c) == {"prefill", "decode", "router"}
    assert c["prefill"]["spec"]["replicas"] == 2 and c["decode"]["spec"]["replicas"] == 4
    assert c["prefill"]["spec"]["minAvailable"] == 1
    assert c["router"]["spec"]["startsAfter"] == ["prefill", "decode"]
    assert "podCliqueScalingGroups" not in t
    for clique in c.values():
        # Grove requires one scheduler for every clique of a PodCliqueSet.
        assert clique["spec"]["podSpec"]["schedulerName"] == "kai-scheduler"
        assert clique["labels"]["kai.scheduler/queue"] == "serving"


def test_grove_single_node_cliques_prefer_one_block_with_pack_not_packdomain():
    cfg = prod()
    f = facts(cfg)
    c = _cliques(grove.pod_clique_set(spec_of(cfg), f))
    assert c["prefill"]["topologyConstraint"] == {"topologyName": f.topology_name, "pack": {"preferred": "block"}}
    assert "topologyConstraint" not in c["router"]


def test_grove_without_topology_aware_scheduling_has_no_constraints(base):
    from tests.unit.serving_helpers import cfg_of

    base["platform"] = {"workloadApi": "grove", "grove": {"topologyAwareScheduling": False}}
    cfg = cfg_of(base)
    assert all("topologyConstraint" not in c for c in grove.pod_clique_set(spec_of(cfg), facts(cfg))["spec"]["template"]["cliques"])


def test_grove_multi_node_role_is_a_scaling_group_of_leader_and_worker():
    cfg = multinode("grove")
    pcs = grove.pod_clique_set(spec_of(cfg), facts(cfg))
    groups = {g["name"]: g for g in pcs["spec"]["template"]["podCliqueScalingGroups"]}
    assert set(groups) == {"prefill", "decode"}
    g = groups["prefill"]
    assert g["cliqueNames"] == ["prefill-leader", "prefill-worker"]
    assert g["replicas"] == 1 and g["minAvailable"] == 1
    assert g["topologyConstraint"]["pack"] == {"preferred": "block"}
    c = _cliques(pcs)
    assert c["prefill-leader"]["spec"]["replicas"] == 1
    assert c["prefill-worker"]["spec"]["replicas"] == 1
    assert c["prefill-worker"]["spec"]["minAvailable"] == 1
    assert "startsAfter" not in c["prefill-worker"]["spec"]
    assert c["router"]["spec"]["startsAfter"] == ["prefill-leader", "decode-leader"]
    worker_cmd = container(c["prefill-worker"]["spec"]["podSpec"])["command"][2]
    assert 'LEADER_ADDR="${GROVE_PCSG_NAME}-${GROVE_PCSG_INDEX}-prefill-leader-0.${GROVE_HEADLESS_SERVICE}"' in worker_cmd
    # Workers are ranks 1..n-1: their index in the worker clique plus one.
    assert 'NODE_RANK="$((GROVE_PCLQ_POD_INDEX + 1))"' in worker_cmd
    assert 'NODE_RANK="0"' in container(c["prefill-leader"]["spec"]["podSpec"])["command"][2]
    checks = {part: {v.split("=", 1)[0] for v in c[f"prefill-{part}"]["annotations"].values()} for part in ("leader", "worker")}
    # Only workers serve no HTTP (no probes); both run as root with IPC_LOCK on EFA.
    assert checks["worker"] - checks["leader"] == {"CKV_K8S_8", "CKV_K8S_9"}
    assert {"CKV_K8S_25", "CKV_K8S_40"} <= checks["leader"]
    assert c["prefill-leader"]["labels"]["disagg.io/endpoint"] == "true"
    assert "disagg.io/endpoint" not in c["prefill-worker"]["labels"]


def test_lws_pod_templates_carry_the_engine_revision_and_checkov_reasons():
    cfg = prod()
    t = lws.leader_worker_set(spec_of(cfg), "prefill", facts(cfg))["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    from components.builders.serving.engine import engine_revision

    assert t["metadata"]["labels"]["disagg.io/engine-revision"] == engine_revision(spec_of(cfg))
    assert all(v.split("=", 1)[0].startswith("CKV_K8S_") for v in t["metadata"]["annotations"].values())


def test_grove_scale_targets_follow_grove_naming():
    assert grove.scale_target(spec_of(prod()), "decode") == {"apiVersion": "grove.io/v1alpha1", "kind": "PodClique", "name": "t-0-decode"}
    mn = multinode("grove")
    assert grove.scale_target(spec_of(mn), "prefill")["kind"] == "PodCliqueScalingGroup"
    assert grove.scale_target(spec_of(mn), "prefill")["name"] == "t-0-prefill"
