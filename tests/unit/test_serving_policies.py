"""Namespace, Secret, cache claim, PDBs, NetworkPolicies, ServiceMonitor, and the whole manifest list."""

from __future__ import annotations

from components.builders.serving import Manifest, manifests, policies
from tests.unit.serving_helpers import cfg_of, facts, multinode, prod, spec_of, with_token


def _np(cfg):
    return {p["metadata"]["name"]: p for p in policies.network_policies(spec_of(cfg), facts(cfg))}


def _peers(rule):
    return [f["podSelector"]["matchLabels"]["disagg.io/role"] for f in rule.get("from", []) if "podSelector" in f]


def test_default_deny_then_allow_pairs():
    cfg = prod()
    nps = _np(cfg)
    deny = nps["t-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}
    # clients -> router on its port, from anywhere
    router_rules = nps["t-router"]["spec"]["ingress"]
    assert router_rules[0] == {"ports": [{"protocol": "TCP", "port": "http"}]}
    for role, peer in (("prefill", "decode"), ("decode", "prefill")):
        rules = nps[f"t-{role}"]["spec"]["ingress"]
        assert nps[f"t-{role}"]["spec"]["podSelector"]["matchLabels"]["disagg.io/role"] == role
        # router -> engine HTTP port (and the metrics stack)
        assert _peers(rules[0]) == ["router"]
        assert rules[0]["ports"] == [{"protocol": "TCP", "port": 8000}]
        assert any(f.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"} for f in rules[0]["from"])
        # prefill <-> decode (KV transfer side channel, UCX) and within the role (Ray/NCCL), every port
        assert set(_peers(rules[1])) == {peer, role}
        assert "ports" not in rules[1]


def test_pdbs_allow_one_pod_at_a_time():
    cfg = prod()
    for c in ("prefill", "decode", "router"):
        p = policies.pdb(spec_of(cfg), c)
        assert p["spec"]["maxUnavailable"] == 1
        assert p["spec"]["selector"]["matchLabels"]["disagg.io/role"] == c


def test_service_monitor_scrapes_engines_and_router():
    cfg = prod()
    sm = policies.service_monitor(spec_of(cfg), facts(cfg))
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"]["disagg.io/metrics"] == "true"
    assert {(e["port"], e["path"]) for e in sm["spec"]["endpoints"]} == {("http", "/metrics"), ("metrics", "/metrics")}


def test_namespace_and_secret_without_value():
    cfg = prod()
    ns = policies.namespace_object(spec_of(cfg))
    assert ns["metadata"]["name"] == "t"
    assert ns["metadata"]["labels"]["app.kubernetes.io/part-of"] == "disagg"
    sec = policies.hf_secret(spec_of(cfg))
    assert sec["metadata"] == {**sec["metadata"], "name": "t-hf-token", "namespace": "t"}
    assert "data" not in sec and "stringData" not in sec


def test_cache_claim_is_read_write_many(base):
    base["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc", "pvcSizeGb": 2000}
    pvc = policies.model_cache_claim(spec_of(cfg_of(base)))
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "efs-sc"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2000Gi"


def _kinds(ms: list[Manifest]) -> list[str]:
    return [m.kind for m in ms]


def test_lws_manifest_list_and_dependencies():
    cfg = prod()
    ms = manifests(spec_of(cfg), facts(cfg))
    kinds = _kinds(ms)
    assert kinds[0] == "Namespace"
    assert kinds.count("LeaderWorkerSet") == 2 and "PodCliqueSet" not in kinds
    assert kinds.count("ScaledObject") == 2 and kinds.count("PodDisruptionBudget") == 3
    assert "Secret" not in kinds and "PersistentVolumeClaim" not in kinds
    by = {(m.kind, m.name): m for m in ms}
    assert by[("LeaderWorkerSet", "t-prefill")].needs == ("lws", "kai-scheduler")
    assert by[("LeaderWorkerSet", "t-prefill")].ignore_changes == ("spec.replicas",)
    assert by[("ScaledObject", "t-decode")].needs == ("keda",)
    assert by[("ServiceMonitor", "t-serving")].needs == ("kube-prometheus-stack",)
    assert by[("Service", "t-router")].needs == ()
    for m in ms:
        md = m.obj["metadata"]
        assert md["name"]
        if m.kind != "Namespace":
            assert md["namespace"] == "t"
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of", "disagg.io/role"):
            assert key in md["labels"], (m.kind, m.name, key)


def test_grove_manifest_list_has_one_pcs_and_no_router_deployment(base):
    base["platform"] = {"workloadApi": "grove"}
    cfg = cfg_of(base)
    ms = manifests(spec_of(cfg), facts(cfg))
    kinds = _kinds(ms)
    assert kinds.count("PodCliqueSet") == 1
    assert "LeaderWorkerSet" not in kinds and "Deployment" not in kinds
    assert next(m for m in ms if m.kind == "PodCliqueSet").needs == ("grove", "kai-scheduler")


def test_token_secret_nlb_dependency_and_claim_when_configured(base):
    base["serving"]["router"] = {"serviceType": "internalNlb"}
    base["serving"]["modelCache"] = {"kind": "pvc", "storageClass": "efs-sc"}
    cfg = with_token(cfg_of(base))
    ms = manifests(spec_of(cfg), facts(cfg))
    secret = next(m for m in ms if m.kind == "Secret")
    assert secret.secret == ("hfToken", "token")
    assert next(m for m in ms if m.kind == "Service" and m.name == "t-router").needs == ("aws-load-balancer-controller",)
    assert "PersistentVolumeClaim" in _kinds(ms)


def test_without_keda_or_monitoring_nothing_needs_them(base):
    base["platform"] = {"keda": {"enabled": False}, "monitoring": {"enabled": False}}
    base["serving"]["prefill"]["autoscaling"] = {"enabled": False}
    base["serving"]["decode"]["autoscaling"] = {"enabled": False}
    cfg = cfg_of(base)
    kinds = _kinds(manifests(spec_of(cfg), facts(cfg)))
    assert "ScaledObject" not in kinds and "ServiceMonitor" not in kinds


def test_multinode_manifests_build():
    cfg = multinode()
    ms = manifests(spec_of(cfg), facts(cfg))
    lws_objs = [m.obj for m in ms if m.kind == "LeaderWorkerSet"]
    assert {o["spec"]["leaderWorkerTemplate"]["size"] for o in lws_objs} == {2}
