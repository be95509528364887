"""The P/D router: discovery by label, RBAC, placement, Service, metrics."""

from __future__ import annotations

import shlex

from components.builders.serving import lws, router, vllm_router
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256, pin
from components.builders.serving.engine import engine_revision
from tests.unit.serving_helpers import aggregated, cfg_of, facts, prod, spec_of


def _args(cfg):
    return vllm_router.router_args(spec_of(cfg))


def _after(args, flag, n=1):
    i = args.index(flag)
    return args[i + 1 : i + 1 + n]


def test_router_runs_in_pd_mode_discovering_http_pods_of_the_current_revision_by_label():
    cfg = prod()
    a = _args(cfg)
    rev = f"disagg.io/engine-revision={engine_revision(spec_of(cfg))}"
    assert "--vllm-pd-disaggregation" in a and "--service-discovery" in a
    assert _after(a, "--service-discovery-namespace") == ["t"]
    assert _after(a, "--service-discovery-port") == ["8000"]
    assert _after(a, "--prefill-selector", 4) == ["disagg.io/deployment=t", "disagg.io/endpoint=true", rev, "disagg.io/role=prefill"]
    assert _after(a, "--decode-selector", 4) == ["disagg.io/deployment=t", "disagg.io/endpoint=true", rev, "disagg.io/role=decode"]
    assert _after(a, "--prefill-policy") == ["cache_aware"] and _after(a, "--decode-policy") == ["power_of_two"]
    assert _after(a, "--prometheus-host") == ["0.0.0.0"]


def test_router_rbac_reads_pods_in_its_namespace_only():
    cfg = prod()
    role = router.role(spec_of(cfg))
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "t"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    rb = router.role_binding(spec_of(cfg))
    assert rb["roleRef"]["name"] == role["metadata"]["name"]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "t-router", "namespace": "t"}]
    assert router.service_account(spec_of(cfg))["metadata"]["name"] == "t-router"


def test_router_deployment_on_the_system_pool_spread_with_replicas():
    cfg = prod()
    d = router.deployment(spec_of(cfg), facts(cfg))
    assert d["spec"]["replicas"] == 2
    spec = d["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"disagg.io/pool": "system"}
    assert spec["serviceAccountName"] == "t-router"
    assert {c["topologyKey"] for c in spec["topologySpreadConstraints"]} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert "schedulerName" not in spec  # a Deployment needs no gang
    assert "kai.scheduler/queue" not in d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    assert any(k.startswith("checkov.io/skip") and v.startswith("CKV_K8S_38=") for k, v in d["metadata"]["annotations"].items())


def test_router_runs_the_pinned_wheel_on_the_pinned_python_image():
    cfg = prod()
    spec = router.router_pod_template(spec_of(cfg), facts(cfg))["spec"]
    init = spec["initContainers"][0]
    assert init["image"] == pin("vllm-router-python").image_ref
    shell, flag, script = init["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    write, install = script.split(" && exec ")
    # The requirements file the script writes: every package of the closure, exact version, its wheel's sha256.
    printf = shlex.split(write)
    assert printf[:2] == ["printf", "%s\\n"] and printf[-2:] == [">", vllm_router.REQUIREMENTS_FILE]
    assert printf[2:-2] == [f"{k}=={v} --hash=sha256:{VLLM_ROUTER_PYPI_SHA256[k]}" for k, v in VLLM_ROUTER_PYPI.items()]
    pip = shlex.split(install)
    assert pip[:4] == ["python", "-m", "pip", "install"]
    # Hash-checked, nothing resolved at start (no transitive version floats), no source builds.
    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(pip)
    assert pip[pip.index("-r") + 1] == vllm_router.REQUIREMENTS_FILE and pip[pip.index("--target") + 1] == vllm_router.LIB_DIR
    main = spec["containers"][0]
    assert main["command"] == ["python", "-m", "vllm_router.launch_router"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True and main["securityContext"]["runAsNonRoot"] is True


def test_router_image_override_drops_the_installer(base):
    base["serving"]["router"] = {"image": "example.com/vllm-router:0.1.17"}
    cfg = cfg_of(base)
    spec = router.router_pod_template(spec_of(cfg), facts(cfg))["spec"]
    assert "initContainers" not in spec
    assert spec["containers"][0]["image"] == "example.com/vllm-router:0.1.17"
    assert spec["containers"][0]["command"] == ["vllm-router"]


def test_router_service_clusterip_by_default_and_internal_nlb_on_request(base):
    svc = router.service(spec_of(prod()))
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["port"] == 8080
    base["serving"]["router"] = {"serviceType": "internalNlb"}
    nlb = router.service(spec_of(cfg_of(base)))
    assert nlb["spec"]["type"] == "LoadBalancer"
    ann = nlb["metadata"]["annotations"]
    assert ann["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert ann["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert ann["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"


def test_role_services_select_only_http_pods_and_are_scraped():
    cfg = prod()
    svc = router.role_service(spec_of(cfg), "prefill")
    # Never the LeaderWorkerSet's name: LWS creates a headless Service of that name for its pods' hostnames.
    assert svc["metadata"]["name"] == "t-prefill-api" != lws.leader_worker_set(spec_of(cfg), "prefill", facts(cfg))["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"]["disagg.io/endpoint"] == "true"
    assert svc["metadata"]["labels"]["disagg.io/metrics"] == "true"
    assert svc["spec"]["ports"][0]["name"] == "http"


def test_router_url():
    assert router.router_url(spec_of(prod())) == "http://t-router.t.svc.cluster.local:8080"


def test_every_router_wheel_is_pinned_by_a_sha256():
    assert set(VLLM_ROUTER_PYPI_SHA256) == set(VLLM_ROUTER_PYPI)
    assert all(len(h) == 64 and all(c in "0123456789abcdef" for c in h) for h in VLLM_ROUTER_PYPI_SHA256.values())


def test_aggregated_router_balances_every_http_engine_pod_without_pd_mode():
    cfg = aggregated()
    a = _args(cfg)
    assert "--vllm-pd-disaggregation" not in a and "--prefill-selector" not in a
    rev = f"disagg.io/engine-revision={engine_revision(spec_of(cfg))}"
    assert _after(a, "--selector", 3) == ["disagg.io/deployment=t", "disagg.io/endpoint=true", rev]
    assert _after(a, "--policy") == ["cache_aware"]


def test_engine_revision_follows_the_image_and_the_kv_config_not_the_replica_count(base):
    before = engine_revision(spec_of(cfg_of(base)))
    base["serving"]["decode"]["replicas"] = 3
    assert engine_revision(spec_of(cfg_of(base))) == before
    base["serving"]["engine"]["efaImage"] = "example.com/vllm-efa@sha256:" + "0" * 64
    assert engine_revision(spec_of(cfg_of(base))) != before


def test_router_is_ready_only_with_backends_and_pulumi_does_not_wait_for_it():
    cfg = prod()
    d = router.deployment(spec_of(cfg), facts(cfg))
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readiness"
    assert c["livenessProbe"]["httpGet"]["path"] == "/liveness"
    assert d["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
