"""TensorRT-LLM in whole-stack renders: the p5 layout packs 100%, multi-node groups render as LWS and as Grove, every
rendered command line and option file passes the checks against the release's option list, and switching
`serving.engine.kind` changes nothing but the serving objects."""

from __future__ import annotations

import copy

import yaml

from components.builders.serving import trtllm
from tests.conftest import CONFIGS, Rendered, render
from tests.tools.serving_commands import from_dir
from tests.unit.test_serving_trtllm import check_llm_api_options, check_orchestrator_config, check_serve_argv

STACKS = ("trtllm", "trtllm-multinode", "trtllm-multinode-grove")


def _docs(r: Rendered, kind: str) -> list[dict]:
    return [d for d in r.manifests.values() if d.get("kind") == kind]


def test_the_p5_layout_packs_every_gpu_with_context_and_generation_servers(rendered):
    r = rendered["trtllm"]
    s = r.summary
    assert s["gpu_packing"] == 1.0 and s["gpus_requested"] == s["gpus_provisioned"] == 16
    assert s["router"]["kind"] == "trtllm-serve disaggregated" and s["kv_transfer"]["backend"] == "LIBFABRIC"
    lws = {d["metadata"]["labels"]["disagg.io/role"]: d for d in _docs(r, "LeaderWorkerSet")}
    for role, tp, replicas, server_role in (("prefill", 4, 2, "context"), ("decode", 2, 4, "generation")):
        spec = lws[role]["spec"]
        c = spec["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
        assert spec["replicas"] == replicas == s["roles"][role]["replicas"]
        assert int(c["resources"]["limits"]["nvidia.com/gpu"]) == tp and int(c["resources"]["limits"]["vpc.amazonaws.com/efa"]) == 4 * tp
        assert c["args"][c["args"].index("--tp_size") + 1] == str(tp)
        assert c["args"][c["args"].index("--server_role") + 1] == server_role
        assert c["image"].endswith("/disagg/tensorrt-llm-efa:1.2.1-efa1.49.0")
    router = next(d for d in _docs(r, "Deployment") if d["metadata"]["name"] == "trtllm-router")
    assert router["spec"]["replicas"] == 3
    assert router["spec"]["template"]["spec"]["containers"][0]["command"] == ["trtllm-serve"]
    svc = next(d for d in _docs(r, "Service") if d["metadata"]["name"] == "trtllm-router")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert {d["metadata"]["name"] for d in _docs(r, "PodDisruptionBudget") if d["metadata"]["namespace"] == "trtllm"} == {
        "trtllm-prefill", "trtllm-decode", "trtllm-router"}
    assert {d["metadata"]["name"] for d in _docs(r, "ScaledObject")} == {"trtllm-prefill", "trtllm-decode"}
    sm = next(d for d in _docs(r, "ServiceMonitor") if d["metadata"]["name"] == "trtllm-serving")
    assert {e["path"] for e in sm["spec"]["endpoints"]} == {trtllm.METRICS_PATH}
    assert r.outputs["routerUrl"] == "http://trtllm-router.trtllm.svc.cluster.local:8080"
    assert r.outputs["modelName"] == "nvidia/Llama-3.3-70B-Instruct-FP8"


def test_a_multinode_role_renders_as_one_lws_group_and_one_grove_scaling_group_replica(rendered):
    for g in _docs(rendered["trtllm-multinode"], "LeaderWorkerSet"):
        t = g["spec"]["leaderWorkerTemplate"]
        assert t["size"] == 2 and t["restartPolicy"] == "RecreateGroupOnPodRestart" and g["spec"]["startupPolicy"] == "LeaderCreated"
        leader = t["leaderTemplate"]["spec"]
        assert leader["serviceAccountName"] == "trtllm-multinode-launcher" and leader["automountServiceAccountToken"] is True
        assert leader["containers"][0]["command"][2].rstrip().endswith(trtllm.EXEC_GROUP)
        assert t["workerTemplate"]["spec"]["automountServiceAccountToken"] is False
        assert g["metadata"]["annotations"]["kai.scheduler/topology-preferred-placement"]
    (pcs,) = _docs(rendered["trtllm-multinode-grove"], "PodCliqueSet")
    groups = {g["name"]: g for g in pcs["spec"]["template"]["podCliqueScalingGroups"]}
    assert {k: v["cliqueNames"] for k, v in groups.items()} == {"prefill": ["prefill-leader", "prefill-worker"], "decode": ["decode-leader", "decode-worker"]}
    cliques = {c["name"]: c for c in pcs["spec"]["template"]["cliques"]}
    script = cliques["decode-leader"]["spec"]["podSpec"]["containers"][0]["command"][2]
    assert "${GROVE_PCSG_NAME}-${GROVE_PCSG_INDEX}-decode-worker-0.${GROVE_HEADLESS_SERVICE}:8" in script
    assert cliques["router"]["spec"]["podSpec"]["containers"][0]["args"][0] == "disaggregated"


def test_every_rendered_trtllm_command_and_option_file_is_one_the_release_accepts(rendered):
    seen = {"serve": 0, "disaggregated": 0, "options": 0, "orchestrator": 0}
    for stack in STACKS:
        r = rendered[stack]
        for c in from_dir(stack, r.out / "manifests"):
            if c.engine == "tensorrt-llm" and c.engine_argv is not None:
                assert check_serve_argv(["trtllm-serve", *c.engine_argv]) == [], c.where
                seen["serve"] += 1
            elif c.container == "router":
                assert check_serve_argv([*c.command, *c.args], "disaggregated") == [], c.where
                seen["disaggregated"] += 1
        for cm in _docs(r, "ConfigMap"):
            data = cm.get("data", {})
            if trtllm.OPTIONS_FILE in data:
                assert check_llm_api_options(yaml.safe_load(data[trtllm.OPTIONS_FILE])) == [], cm["metadata"]["name"]
                seen["options"] += 1
            if trtllm.ORCHESTRATOR_FILE in data:
                assert check_orchestrator_config(yaml.safe_load(data[trtllm.ORCHESTRATOR_FILE])) == [], cm["metadata"]["name"]
                seen["orchestrator"] += 1
    # prod: 2 single roles; multinode: 2 leaders each (workers exec no engine of their own); one router per stack.
    assert seen == {"serve": 6, "disaggregated": 3, "options": 6, "orchestrator": 3}


def _not_serving(r: Rendered) -> dict[str, dict]:
    """Every resource outside the Serving component, by URN: AWS and the platform."""
    return {rec["urn"]: rec for rec in r.records if "disagg:serving:Serving" not in rec["urn"]}


def test_switching_the_engine_changes_only_the_serving_objects(tmp_path):
    raw = yaml.safe_load((CONFIGS / "Pulumi.trtllm.yaml").read_text())
    vllm = copy.deepcopy(raw)
    serving = vllm["config"]["disagg:serving"]
    serving["engine"] = {"kind": "vllm", "efaImage": serving["engine"]["efaImage"].replace("tensorrt-llm-efa:1.2.1", "vllm-efa:v0.30.0")}
    for role in ("prefill", "decode"):
        serving[role].pop("tensorrtLlm")
    for key in ("prefillPolicy", "decodePolicy"):
        serving["router"].pop(key)
    out = {}
    for kind, values in (("trt", raw), ("vllm", vllm)):
        d = tmp_path / kind
        d.mkdir()
        f = d / "Pulumi.switch.yaml"
        f.write_text(yaml.safe_dump(values))
        proc = render(["--config", str(f), "--out", str(d / "out")])
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[kind] = Rendered(d / "out")
    trt, vl = _not_serving(out["trt"]), _not_serving(out["vllm"])
    assert set(trt) == set(vl)
    changed = sorted(u for u in trt if trt[u]["inputs"] != vl[u]["inputs"] or trt[u]["options"] != vl[u]["options"])
    assert changed == [], changed
    assert len(trt) > 100  # the whole AWS and platform side was compared
    serving_t = {rec["urn"] for rec in out["trt"].records} - set(trt)
    serving_v = {rec["urn"] for rec in out["vllm"].records} - set(vl)
    assert serving_t != serving_v and any("discovery" in u for u in serving_t - serving_v)
