"""The serving layer in whole-stack renders: what `pulumi up` would create for prefill, decode and the router."""

from __future__ import annotations

import json

import yaml

from tests.conftest import ROOT, Rendered, render, stack_file


def _docs(r: Rendered, kind: str) -> list[dict]:
    return [d for d in r.manifests.values() if d.get("kind") == kind]


def gpu_pod_specs(r: Rendered) -> list[tuple[str, str, dict]]:
    """(role, template name, pod spec) of every engine pod template in a render."""
    out = []
    for lws in _docs(r, "LeaderWorkerSet"):
        role = lws["metadata"]["labels"]["disagg.io/role"]
        for part in ("leaderTemplate", "workerTemplate"):
            tpl = lws["spec"]["leaderWorkerTemplate"].get(part)
            if tpl:
                out.append((role, f"{lws['metadata']['name']}/{part}", tpl["spec"]))
    for pcs in _docs(r, "PodCliqueSet"):
        for c in pcs["spec"]["template"]["cliques"]:
            role = c["labels"]["disagg.io/role"]
            if role != "router":
                out.append((role, f"{pcs['metadata']['name']}/{c['name']}", c["spec"]["podSpec"]))
    return out


def _labels_of(r: Rendered, name: str) -> dict:
    for lws in _docs(r, "LeaderWorkerSet"):
        for part in ("leaderTemplate", "workerTemplate"):
            tpl = lws["spec"]["leaderWorkerTemplate"].get(part)
            if tpl and f"{lws['metadata']['name']}/{part}" == name:
                return tpl["metadata"]["labels"]
    for pcs in _docs(r, "PodCliqueSet"):
        for c in pcs["spec"]["template"]["cliques"]:
            if f"{pcs['metadata']['name']}/{c['name']}" == name:
                return c["labels"]
    raise KeyError(name)


def test_every_gpu_pod_is_kai_scheduled_queued_with_4_efa_per_gpu_and_libfabric(rendered):
    for stack in ("prod", "grove", "multinode", "multinode-grove", "glm5-wide-ep"):
        r = rendered[stack]
        specs = gpu_pod_specs(r)
        assert {role for role, _, _ in specs} == {"prefill", "decode"}, stack
        for _role, name, spec in specs:
            where = f"{stack}/{name}"
            assert spec["schedulerName"] == "kai-scheduler", where
            assert spec["priorityClassName"] == "inference", where
            assert _labels_of(r, name)["kai.scheduler/queue"] == "serving", where
            c = spec["containers"][0]
            lim = c["resources"]["limits"]
            gpus = int(lim["nvidia.com/gpu"])
            assert int(lim["vpc.amazonaws.com/efa"]) == 4 * gpus, where
            assert c["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"], where
            assert not c["securityContext"].get("privileged"), where
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["FI_PROVIDER"] == "efa", where
            # Every engine pod, leader and worker alike, runs `vllm serve` with the connector (no Ray workers).
            assert '\\"backends\\":[\\"LIBFABRIC\\"]' in json.dumps(c["args"]), where


def test_dev_without_efa_uses_ucx_and_no_efa(rendered):
    for _, name, spec in gpu_pod_specs(rendered["dev"]):
        c = spec["containers"][0]
        assert "vpc.amazonaws.com/efa" not in c["resources"]["limits"], name
        assert '\\"backends\\":[\\"UCX\\"]' in json.dumps(c), name
        assert "add" not in c["securityContext"]["capabilities"], name


def test_prod_summary_matches_the_manifests_and_packs_100_percent(rendered):
    r = rendered["prod"]
    s = r.summary
    assert s["gpu_packing"] == 1.0
    lws = {d["metadata"]["labels"]["disagg.io/role"]: d for d in _docs(r, "LeaderWorkerSet")}
    for role, want_gpus in (("prefill", 4), ("decode", 2)):
        rs = s["roles"][role]
        spec = lws[role]["spec"]
        lim = spec["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["resources"]["limits"]
        assert rs["replicas"] == spec["replicas"]
        assert rs["gpus_per_pod"] == int(lim["nvidia.com/gpu"]) == want_gpus
        assert rs["efa_per_pod"] == int(lim["vpc.amazonaws.com/efa"]) == 4 * want_gpus
        assert rs["nodes_per_replica"] == spec["leaderWorkerTemplate"]["size"] == 1
        assert rs["gpu_packing"] == 1.0
    # Pods of one node add up to its 8 GPUs and 32 EFA interfaces.
    assert 2 * 4 == 8 and s["roles"]["prefill"]["pods_per_node"] * s["roles"]["prefill"]["efa_per_pod"] == 32
    assert s["roles"]["decode"]["pods_per_node"] * s["roles"]["decode"]["efa_per_pod"] == 32


def test_grove_summary_matches_the_cliques(rendered):
    r = rendered["grove"]
    (pcs,) = _docs(r, "PodCliqueSet")
    cliques = {c["name"]: c for c in pcs["spec"]["template"]["cliques"]}
    for role in ("prefill", "decode"):
        assert r.summary["roles"][role]["replicas"] == cliques[role]["spec"]["replicas"]
    assert cliques["router"]["spec"]["startsAfter"] == ["prefill", "decode"]
    assert r.summary["gpu_packing"] == 1.0


def test_multinode_renders_lws_groups_of_two(rendered):
    r = rendered["multinode"]
    groups = _docs(r, "LeaderWorkerSet")
    assert len(groups) == 2
    for g in groups:
        t = g["spec"]["leaderWorkerTemplate"]
        assert t["size"] == 2 and t["restartPolicy"] == "RecreateGroupOnPodRestart"
        assert "leaderTemplate" in t and "workerTemplate" in t
    assert r.summary["roles"]["prefill"]["nodes_per_replica"] == 2


def test_multinode_grove_renders_scaling_groups(rendered):
    (pcs,) = _docs(rendered["multinode-grove"], "PodCliqueSet")
    groups = {g["name"]: g["cliqueNames"] for g in pcs["spec"]["template"]["podCliqueScalingGroups"]}
    assert groups == {"prefill": ["prefill-leader", "prefill-worker"], "decode": ["decode-leader", "decode-worker"]}


def test_outputs_name_the_router_and_model(rendered):
    out = rendered["prod"].outputs
    assert out["routerUrl"] == "http://prod-router.prod.svc.cluster.local:8080"
    assert out["routerServiceName"] == "prod-router"
    assert out["servingNamespace"] == "prod"
    assert out["modelName"] == "llama-3.3-70b"


def _serving(r: Rendered) -> dict:
    return r.one("disagg:serving:Serving")


def test_serving_children_use_the_cluster_provider_and_the_component_parent(rendered):
    for stack in ("prod", "grove"):
        r = rendered[stack]
        comp = _serving(r)
        kids = [rec for rec in r.records if rec["parent"] == comp["urn"]]
        assert len(kids) >= 15, stack
        provider = r.one("pulumi:providers:kubernetes")
        for rec in kids:
            assert rec["type"].startswith("kubernetes:"), rec["name"]
            assert (rec["provider"] or "").startswith(provider["urn"] + "::"), rec["name"]


def _release_urn(r: Rendered, key: str) -> str:
    return next(rec["urn"] for rec in r.of_type("kubernetes:helm.sh/v3:Release") if rec["name"].endswith(f"-{key}"))


def _cr(r: Rendered, kind: str, name: str) -> dict:
    """A custom resource's record: registered as `kubernetes:<group>/<version>:<Kind>`."""
    return next(
        rec
        for rec in r.records
        if rec["type"].startswith("kubernetes:") and rec["type"].endswith(f":{kind}") and rec["inputs"].get("metadata", {}).get("name") == name
    )


def test_custom_resources_wait_for_the_release_installing_their_crd(rendered):
    r = rendered["prod"]
    lws = _cr(r, "LeaderWorkerSet", "prod-prefill")
    assert _release_urn(r, "lws") in lws["dependencies"]
    assert _release_urn(r, "kai-scheduler") in lws["dependencies"]
    assert _release_urn(r, "keda") in _cr(r, "ScaledObject", "prod-decode")["dependencies"]
    assert _release_urn(r, "kube-prometheus-stack") in _cr(r, "ServiceMonitor", "prod-serving")["dependencies"]
    svc = next(rec for rec in r.of_type("kubernetes:core/v1:Service") if rec["inputs"]["metadata"]["name"] == "prod-router")
    assert svc["inputs"]["spec"]["type"] == "LoadBalancer"
    assert _release_urn(r, "aws-load-balancer-controller") in svc["dependencies"]
    g = rendered["grove"]
    assert _release_urn(g, "grove") in _cr(g, "PodCliqueSet", "grove")["dependencies"]


def test_scaled_leaderworkerset_replicas_are_left_to_keda(rendered):
    r = rendered["prod"]
    lws = _cr(r, "LeaderWorkerSet", "prod-decode")
    assert lws["inputs"]["spec"]["replicas"] == 4
    # ignoreChanges is an option of the registration, not an input: the harness does not record it, so the
    # builder-level test (tests/unit/test_serving_policies.py) checks it; here the ScaledObject must target it.
    so = _cr(r, "ScaledObject", "prod-decode")
    assert so["inputs"]["spec"]["scaleTargetRef"]["name"] == "prod-decode"


def test_hf_token_is_a_kubernetes_secret_from_the_pulumi_secret(tmp_path):
    values = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    values = {k[len("disagg:"):]: v for k, v in values.items() if k.startswith("disagg:")}
    path = stack_file(tmp_path / "Pulumi.tok.yaml", values, secrets={"hfToken": "AAABAHZ2djEyMw=="})
    out = tmp_path / "out"
    proc = render(["--config", str(path), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = Rendered(out)
    (secret,) = [rec for rec in r.of_type("kubernetes:core/v1:Secret") if rec["inputs"]["metadata"]["name"] == "tok-hf-token"]
    assert secret["inputs"]["stringData"] == {"token": "[secret]"}
    assert "hf_" not in (out / "resources.json").read_text().replace("hf-token", "")
    lws = _cr(r, "LeaderWorkerSet", "tok-prefill")
    pod = lws["inputs"]["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    assert {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"} in pod["containers"][0]["env"]
    assert {"name": "hf-token", "secret": {"secretName": "tok-hf-token", "items": [{"key": "token", "path": "token"}], "defaultMode": 0o400}} in pod["volumes"]


def test_glm5_is_servable_both_ways(rendered):
    """The seed's GLM-5 on 4 x p5: aggregated PP=2 x TP=8 groups behind a plain router, or disaggregated wide EP."""
    agg, ep = rendered["glm5-aggregated"], rendered["glm5-wide-ep"]
    for r, pp, dp in ((agg, "2", None), (ep, "1", "2")):
        for lws in _docs(r, "LeaderWorkerSet"):
            t = lws["spec"]["leaderWorkerTemplate"]
            assert t["size"] == 2 and lws["spec"]["replicas"] == 1
            args = t["leaderTemplate"]["spec"]["containers"][0]["args"]
            assert args[0] == "zai-org/GLM-5-FP8" and args[args.index("--tensor-parallel-size") + 1] == "8"
            assert args[args.index("--pipeline-parallel-size") + 1] == pp
            if dp:
                assert args[args.index("--data-parallel-size") + 1] == dp and "--enable-expert-parallel" in args
            assert ("--kv-transfer-config" in args) == (r is ep)
    router = lambda r: next(d for d in _docs(r, "Deployment") if d["metadata"]["name"].endswith("-router"))["spec"]["template"]["spec"]["containers"][0]["args"]  # noqa: E731
    assert "--vllm-pd-disaggregation" in router(ep) and "--vllm-pd-disaggregation" not in router(agg)
    assert agg.summary["kv_transfer"]["backend"] == "none" and ep.summary["kv_transfer"]["backend"] == "LIBFABRIC"


def test_role_services_do_not_take_the_leaderworkerset_names(rendered):
    r = rendered["prod"]
    services = {d["metadata"]["name"] for d in _docs(r, "Service")}
    workloads = {d["metadata"]["name"] for d in _docs(r, "LeaderWorkerSet")}
    assert {"prod-prefill-api", "prod-decode-api"} <= services and not services & workloads
