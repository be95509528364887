"""Who may call the router: serving.router.apiKey (a Pulumi secret, a Kubernetes Secret, the auth gate in the router
pod) and serving.router.allowedClientCidrs / allowedClientNamespaces (NetworkPolicy, and the NLB's source ranges)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from components.builders.serving import ROUTER_API_KEY, gate, manifests, policies, router, vllm_router
from ops import verify
from ops import verify_io
from stacks.config import ConfigError, parse
from stacks.config.loader import plaintext_secrets
from tests.conftest import stack_file
from tests.delivery.verify_fakes import FakeRouter
from tests.unit.serving_helpers import cfg_of, facts, prod, spec_of
from tooling.render import load

KEY = "k3y-for-tests"


def gated(base, **router):
    base["serving"]["router"] = {**base["serving"].get("router", {}), **router}
    cfg = cfg_of(base)
    return cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"router": cfg.serving.router.model_copy(update={"api_key": SecretStr(KEY)})})})


def router_rules(cfg):
    (np,) = [p for p in policies.network_policies(spec_of(cfg), facts(cfg)) if p["metadata"]["name"] == "t-router"]
    return np["spec"]["ingress"]


def errors(values, **kw):
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t", **kw)
    return [str(i) for i in exc.value.issues]


# ---- the key ---------------------------------------------------------------------------------------------------------


def test_the_key_is_a_secret_key_of_the_config():
    assert plaintext_secrets({"serving": {"router": {"apiKey": "k"}}}, lambda key: False) == ("serving.router.apiKey",)
    assert plaintext_secrets({"serving": {"router": {"apiKey": "k"}}}, lambda key: key == "disagg:serving") == ()
    assert plaintext_secrets({"serving": {"router": {}}}, lambda key: False) == ()


def test_a_plaintext_key_in_the_stack_file_is_refused_with_the_path_command(tmp_path, base):
    base["serving"]["router"] = {"apiKey": "plain-key-in-the-file"}
    path = stack_file(tmp_path / "Pulumi.t.yaml", base)
    with pytest.raises(ConfigError) as exc:
        load(path, "t")
    (issue,) = [str(i) for i in exc.value.issues if "apiKey" in str(i)]
    assert issue.startswith("disagg:serving.router.apiKey") and "plain text" in issue
    assert "pulumi config set --secret --path disagg:serving.router.apiKey" in issue
    assert "plain-key-in-the-file" not in issue


def test_the_key_as_a_secure_value_is_accepted(tmp_path, base):
    path = stack_file(tmp_path / "Pulumi.t.yaml", base)
    text = path.read_text().replace("disagg:serving:\n", "disagg:serving:\n    router:\n      apiKey:\n        secure: v1:abc\n", 1)
    path.write_text(text)
    cfg = load(path, "t")[2]
    assert cfg.serving.router.api_key is not None


@pytest.mark.parametrize("bad", ["", "two words", "tab\tkey", "ключ"])
def test_a_key_a_bearer_token_cannot_carry_is_refused_without_echoing_it(base, bad):
    base["serving"]["router"] = {"apiKey": bad}
    errs = [e for e in errors(base) if e.startswith("disagg:serving.router.apiKey")]
    assert len(errs) == 1 and "(secret)" in errs[0] and "openssl rand" in errs[0]
    assert not bad or bad not in errs[0]


def test_with_a_key_the_gate_owns_the_http_port_and_the_router_listens_inside_the_pod(base):
    spec = spec_of(gated(base))
    pod = router.router_pod_template(spec, facts(cfg_of(base)))["spec"]
    by_name = {c["name"]: c for c in pod["containers"]}
    assert set(by_name) == {"router", gate.CONTAINER}
    r, g = by_name["router"], by_name[gate.CONTAINER]
    assert [p["name"] for p in g["ports"]] == ["http"] and g["ports"][0]["containerPort"] == vllm_router.CONTAINER_PORT
    assert "http" not in {p["name"] for p in r["ports"]}
    args = r["args"]
    assert args[args.index("--host") + 1] == "127.0.0.1" and args[args.index("--port") + 1] == str(gate.ROUTER_PORT)
    # Probes: the router's from inside its container, the gate's on its port through the open health path.
    assert "127.0.0.1:8081/liveness" in r["livenessProbe"]["exec"]["command"][-1]
    assert g["readinessProbe"]["httpGet"] == {"port": "http", "path": "/readiness"}
    assert set(gate.OPEN_PATHS) == {"/liveness", "/readiness", "/health"}
    # The key: mounted into the gate only, group-readable for the pod's fsGroup (the gate's group).
    (vol,) = [v for v in pod["volumes"] if "secret" in v]
    assert vol["secret"]["secretName"] == "t-router-api-key" and vol["secret"]["defaultMode"] == 0o440
    assert [m["name"] for m in g["volumeMounts"] if m["name"] == vol["name"]] and not [m for m in r["volumeMounts"] if m["name"] == vol["name"]]
    assert pod["securityContext"]["fsGroup"] == g["securityContext"]["runAsGroup"] == 65534
    env = {e["name"]: e["value"] for e in g["env"]}
    assert env["GATE_KEY_FILE"] == f"{gate.KEY_DIR}/{gate.KEY_FILE}" and env["GATE_UPSTREAM"] == "http://127.0.0.1:8081"
    assert g["command"][:2] == ["python", "-c"] and env["PYTHONPATH"] == vllm_router.LIB_DIR
    compile(g["command"][2], "gate", "exec")


def test_with_a_key_and_an_own_router_image_the_gate_runs_on_that_image(base):
    spec = spec_of(gated(base, image="example.com/vllm-router:0.1.17"))
    pod = router.router_pod_template(spec, facts(cfg_of(base)))["spec"]
    g = next(c for c in pod["containers"] if c["name"] == gate.CONTAINER)
    assert g["image"] == "example.com/vllm-router:0.1.17" and g["command"][0] == "python3"
    assert "PYTHONPATH" not in {e["name"] for e in g["env"]}


def test_without_a_key_there_is_no_gate_and_no_secret():
    cfg = prod()
    pod = router.router_pod_template(spec_of(cfg), facts(cfg))["spec"]
    assert [c["name"] for c in pod["containers"]] == ["router"] and "fsGroup" not in pod["securityContext"]
    assert not [m for m in manifests(spec_of(cfg), facts(cfg)) if m.secret == ROUTER_API_KEY]


def test_the_key_secret_is_in_the_plan_without_its_value(base):
    cfg = gated(base)
    (m,) = [m for m in manifests(spec_of(cfg), facts(cfg)) if m.secret == ROUTER_API_KEY]
    assert m.obj["metadata"]["name"] == "t-router-api-key" and "data" not in m.obj and "stringData" not in m.obj
    assert ROUTER_API_KEY[1] == gate.KEY_FILE


# ---- who may connect -------------------------------------------------------------------------------------------------


def test_by_default_any_source_reaches_the_router():
    rules = router_rules(prod())
    assert rules[0] == {"ports": [{"protocol": "TCP", "port": "http"}]}
    assert len(rules) == 2 and rules[1]["ports"] == [{"protocol": "TCP", "port": "metrics"}]


def test_allowed_cidrs_and_namespaces_are_the_only_clients(base):
    base["serving"]["router"] = {"allowedClientCidrs": ["10.20.0.0/16"], "allowedClientNamespaces": ["gateway", "batch"]}
    rules = router_rules(cfg_of(base))
    assert rules[0] == {
        "from": [
            {"ipBlock": {"cidr": "10.20.0.0/16"}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}}},
        ],
        "ports": [{"protocol": "TCP", "port": "http"}],
    }
    assert len(rules) == 2  # clusterIP: no NLB health checks to admit
    svc = router.service(spec_of(cfg_of(base)))
    assert "loadBalancerSourceRanges" not in svc["spec"] and "annotations" not in svc["metadata"]


def test_namespaces_alone_admit_no_cidr(base):
    base["serving"]["router"] = {"allowedClientNamespaces": ["gateway"]}
    assert router_rules(cfg_of(base))[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]


def test_an_internal_nlb_keeps_client_addresses_filters_them_and_health_checks_on_the_metrics_port(base):
    base["serving"]["router"] = {"serviceType": "internalNlb", "allowedClientCidrs": ["10.20.0.0/16"]}
    cfg = cfg_of(base)
    svc = router.service(spec_of(cfg))
    ann = svc["metadata"]["annotations"]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]
    assert ann["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] == "preserve_client_ip.enabled=true"
    assert ann["service.beta.kubernetes.io/aws-load-balancer-healthcheck-port"] == str(vllm_router.METRICS_PORT)
    assert ann["service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"] == "/metrics"
    rules = router_rules(cfg)
    assert rules[0]["from"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    # The health checks come from the NLB's addresses in the private subnets: admitted on the metrics port only.
    assert rules[2] == {
        "from": [{"ipBlock": {"cidr": c}} for c in ("10.0.0.0/18", "10.0.64.0/18")],  # one per zone
        "ports": [{"protocol": "TCP", "port": "metrics"}],
    }


def test_an_internal_nlb_without_allow_lists_is_unchanged(base):
    base["serving"]["router"] = {"serviceType": "internalNlb"}
    svc = router.service(spec_of(cfg_of(base)))
    assert set(svc["metadata"]["annotations"]) == set(router.NLB_ANNOTATIONS) and "loadBalancerSourceRanges" not in svc["spec"]


@pytest.mark.parametrize("key", ["allowedClientCidrs", "allowedClientNamespaces"])
def test_an_empty_allow_list_is_refused(base, key):
    base["serving"]["router"] = {key: []}
    errs = [e for e in errors(base) if e.startswith(f"disagg:serving.router.{key}")]
    assert len(errs) == 1 and "admits no client" in errs[0] and "Fix: " in errs[0]


def test_a_bad_cidr_or_namespace_is_refused(base):
    base["serving"]["router"] = {"allowedClientCidrs": ["10.20.0.1/16"], "allowedClientNamespaces": ["Not_A_Label"]}
    errs = errors(base)
    assert any(e.startswith("disagg:serving.router.allowedClientCidrs") and "10.20.0.1/16" in e for e in errs), errs
    assert any(e.startswith("disagg:serving.router.allowedClientNamespaces") and "Not_A_Label" in e for e in errs), errs


def test_nlb_client_cidrs_in_an_existing_vpc_are_refused(base):
    base["network"] = {
        "existingVpcId": "vpc-0123456789abcdef0",
        "existingPrivateSubnetIds": {z: f"subnet-0123456789abcde{i}" for i, z in enumerate(base["availabilityZones"])},
    }
    base["serving"]["router"] = {"serviceType": "internalNlb", "allowedClientCidrs": ["10.20.0.0/16"]}
    errs = [e for e in errors(base) if e.startswith("disagg:serving.router.allowedClientCidrs")]
    assert len(errs) == 1 and "health-checks" in errs[0] and "Fix: " in errs[0]


# ---- ops verify calls the gated router with the key ------------------------------------------------------------------


class _Cluster:
    def __init__(self):
        self.asked = []

    def secret_value(self, namespace, name, key):
        self.asked.append((namespace, name, key))
        return "from-the-secret"


def test_verify_reads_the_key_from_the_environment_or_the_secret(base):
    target = verify.Target.from_config(gated(base))
    assert target.router_api_key_secret == "t-router-api-key"
    c = _Cluster()
    assert verify.router_api_key(target, c, {verify.ROUTER_API_KEY_ENV: "from-env"}) == "from-env" and not c.asked
    assert verify.router_api_key(target, c, {}) == "from-the-secret" and c.asked == [("t", "t-router-api-key", "key")]
    assert verify.router_api_key(verify.Target.from_config(prod()), c, {}) is None


def test_verify_sends_the_key_as_a_bearer_token():
    with FakeRouter(first=0.0, gap=0.0) as r:
        list(verify_io.stream_lines(r.url + "/v1/completions", {"model": "m"}, 10, api_key="s3cret"))
        list(verify_io.stream_lines(r.url + "/v1/completions", {"model": "m"}, 10))
    assert r.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in r.requests[1]["headers"]
