"""`python -m ops verify` end to end: the real command, argument parsing, kubectl layer and HTTP client, with kubectl
answered from the recorded fixtures (a fake `subprocess.run`) and a router on 127.0.0.1 streaming a recorded vLLM
SSE body. Exit code and message for the pass case and the fail cases."""

from __future__ import annotations

import subprocess

import pytest

from ops import verify_io
from ops.__main__ import main as ops_main
from ops.kube import KubeError
from ops.verify import Target
from tooling.render import ROOT, load
from tests.delivery.verify_fakes import FakeKubectl, FakeRouter, World, fixture


def run_verify(monkeypatch, world: World, router: FakeRouter | None, *extra: str) -> tuple[int, FakeKubectl]:
    fake = FakeKubectl(world)
    monkeypatch.setattr(subprocess, "run", fake)
    url = router.url if router else "http://127.0.0.1:9"  # port 9 (discard): nothing listens
    code = ops_main(["verify", "--stack", "prod", "--kubeconfig", "/tmp/kubeconfig-prod", "--router-url", url, "--settle-seconds", "0", *extra])
    return code, fake


def test_pass_when_kv_moved_over_efa(monkeypatch, capsys):
    with FakeRouter() as router:
        code, kubectl = run_verify(monkeypatch, World.scenario("efa"), router)
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("pods", "request", "nixl-transfers", "nixl-failures", "nixl-backend", "efa-rdma"):
        assert f"PASS    {name}" in out
    assert "+4 transfers (prod-decode-2 +4)" in out
    assert "ip-10-0-17-201.ec2.internal +1.26 GiB over 32 EFA ports" in out
    assert "load run: 16/16 requests ok, 4 concurrent" in out and "TTFT p50" in out and "ITL p50" in out
    assert out.rstrip().endswith("KV moved from prefill to decode over EFA (NIXL LIBFABRIC, RDMA bytes counted on the prefill nodes).")

    # What the router was sent: the served model name, streamed, a unique long prompt each time.
    bodies = [r["body"] for r in router.requests]
    assert {r["path"] for r in router.requests} == {"/v1/completions"} and len(bodies) == 17
    assert all(b["model"] == "llama-3.3-70b" and b["stream"] is True for b in bodies)
    assert len({b["prompt"].split(".")[0] for b in bodies}) == 17
    assert len(bodies[0]["prompt"].split()) > 2500 and bodies[0]["max_tokens"] == 32

    # What ran in the cluster: read-only commands in the engine container, the EFA counters once per node and phase.
    verbs = [c[c.index("--request-timeout=60s") + 1] for c in kubectl.calls]
    assert set(verbs) == {"get", "exec", "logs"}
    efa_reads = [c for c in kubectl.calls if "exec" in c and "/sys/class/infiniband" in c[-1]]
    assert sorted(c[c.index("exec") + 3] for c in efa_reads) == ["prod-decode-0", "prod-decode-0", "prod-prefill-0", "prod-prefill-0"]


def test_fail_when_kv_fell_back_to_tcp(monkeypatch, capsys):
    with FakeRouter() as router:
        code, _ = run_verify(monkeypatch, World.scenario("tcp"), router)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "PASS    nixl-transfers" in out and "0.7 GB/s per transfer" in out
    assert "FAIL    nixl-backend    6/6 engine pods created UCX, not LIBFABRIC" in out
    assert "FAIL    efa-rdma        ip-10-0-17-201.ec2.internal +0 B over 32 EFA ports" in out
    assert "expected: EFA RDMA bytes out of the prefill nodes (rdma_read_resp_bytes + rdma_write_bytes) to grow" in out
    assert "look at:  KV did not cross EFA" in out
    assert out.rstrip().endswith(
        "NOT PROVEN: KV moved from prefill to decode, but not over EFA. Failed: nixl-backend, efa-rdma. See docs/runbook.md#ops-verify-failures."
    )


def test_fail_when_no_transfer_happened(monkeypatch, capsys):
    world = World.scenario("efa")
    world.metrics["prod-decode-2"] = world.metrics["prod-decode-2"][:1]  # the probe moved nothing
    world.efa["prod-prefill-0"] = world.efa["prod-prefill-0"][:1]
    world.efa["prod-decode-0"] = world.efa["prod-decode-0"][:1]
    with FakeRouter() as router:
        code, _ = run_verify(monkeypatch, world, router, "--load-requests", "0")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL    nixl-transfers  +0 transfers on 6 engine pods" in out and "FAIL    efa-rdma" in out
    assert "load run" not in out
    assert "NOT PROVEN: KV did not move over EFA, or it could not be shown. Failed: nixl-transfers, efa-rdma." in out


def test_fail_when_the_router_is_unreachable(monkeypatch, capsys):
    code, kubectl = run_verify(monkeypatch, World.scenario("efa"), None)
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL    request" in out and "Connection refused" in out
    assert "SKIP    nixl-transfers  no request reached the engines" in out
    assert "Failed: request." in out


def test_fail_when_the_router_answers_an_error(monkeypatch, capsys):
    with FakeRouter(status=503) as router:
        code, _ = run_verify(monkeypatch, World.scenario("efa"), router)
    out = capsys.readouterr().out
    assert code == 1 and "HTTP 503 from http://127.0.0.1:" in out and "no available decode workers" in out


def test_fail_when_the_stream_reports_an_error(monkeypatch, capsys):
    with FakeRouter(fixture("sse/error.sse")) as router:
        code, _ = run_verify(monkeypatch, World.scenario("efa"), router)
    out = capsys.readouterr().out
    assert code == 1 and "FAIL    request         stream failed: Internal server error" in out


def test_exit_2_without_a_config(monkeypatch, capsys):
    assert ops_main(["verify", "--stack", "no-such-stack"]) == 2
    assert "cannot load the config of stack no-such-stack" in capsys.readouterr().err


def test_exit_2_when_the_cluster_cannot_be_reached(monkeypatch, capsys):
    def unreachable(cmd, **_):
        return subprocess.CompletedProcess(cmd, 1, "", "Unable to connect to the server: dial tcp 10.0.0.1:443: i/o timeout")

    monkeypatch.setattr(subprocess, "run", unreachable)
    assert ops_main(["verify", "--stack", "prod", "--kubeconfig", "/tmp/k", "--router-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach stack prod's cluster prod" in err and "i/o timeout" in err


# ---- the kubectl and HTTP layer ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod() -> Target:
    return Target.from_config(load(ROOT / "Pulumi.prod.yaml", "prod")[2])


def test_kubectl_commands(prod):
    fake = FakeKubectl(World.scenario("efa"))
    k = verify_io.KubectlCluster("/tmp/kc", run=fake)
    pods = k.pods("prod", prod.role_selectors["decode"])
    assert [p.name for p in pods] == ["prod-decode-0", "prod-decode-1", "prod-decode-2", "prod-decode-3"]
    assert fake.calls[0] == [
        "kubectl", "--kubeconfig", "/tmp/kc", "--request-timeout=60s",
        "get", "pods", "-n", "prod", "-l", "disagg.io/deployment=prod,disagg.io/role=decode", "-o", "json",
    ]
    assert "vllm:nixl_xfer_time_seconds_count" in k.exec("prod", "prod-decode-2", "engine", prod.metrics_command())
    assert "Backend LIBFABRIC was instantiated" in k.logs("prod", "prod-decode-2", "engine")
    assert fake.calls[-1][-6:] == ["logs", "-n", "prod", "prod-decode-2", "-c", "engine"]


def test_kubectl_errors_name_the_pod_not_the_script():
    def forbidden(cmd, **_):
        return subprocess.CompletedProcess(cmd, 1, "", 'pods "prod-decode-0" is forbidden: User "ci" cannot create resource "pods/exec"')

    k = verify_io.KubectlCluster("/tmp/kc", run=forbidden)
    with pytest.raises(KubeError) as exc:
        k.exec("prod", "prod-decode-0", "engine", ["python3", "-c", "import sys; " * 20])
    assert str(exc.value) == 'kubectl exec prod-decode-0 -c engine -- python3: pods "prod-decode-0" is forbidden: User "ci" cannot create resource "pods/exec"'


class FakePopen:
    def __init__(self, stdout_lines: list[str], stderr: str = ""):
        self.stdout_lines, self.stderr_text = stdout_lines, stderr
        self.argv = None
        self.terminated = False

    def __call__(self, argv, **_):
        import io

        self.argv = argv
        self.stdout = io.StringIO("".join(self.stdout_lines))
        self.stderr = io.StringIO(self.stderr_text)
        return self

    def terminate(self):
        self.terminated = True

    def wait(self, timeout=None):
        return 0


def test_port_forward_to_the_router_service(prod):
    popen = FakePopen(["Forwarding from 127.0.0.1:54321 -> 8080\n", "Handling connection for 54321\n"])
    k = verify_io.KubectlCluster("/tmp/kc", run=None)
    with k.port_forward(prod.namespace, f"service/{prod.router_service}", prod.router_port, popen=popen) as url:
        assert url == "http://127.0.0.1:54321"
    assert popen.argv == ["kubectl", "--kubeconfig", "/tmp/kc", "port-forward", "-n", "prod", "service/prod-router", ":8080", "--address", "127.0.0.1"]
    assert popen.terminated


def test_a_port_forward_that_exits_says_why(prod):
    popen = FakePopen([], stderr='Error from server (NotFound): services "prod-router" not found\n')
    k = verify_io.KubectlCluster("/tmp/kc", run=None)
    with pytest.raises(KubeError, match='services "prod-router" not found'):
        with k.port_forward("prod", "service/prod-router", 8080, popen=popen):
            pass


def test_router_url_forms():
    assert verify_io.normalize_router_url("internal-k8s-prod-abc.elb.us-east-1.amazonaws.com", 8080) == "http://internal-k8s-prod-abc.elb.us-east-1.amazonaws.com:8080"
    assert verify_io.normalize_router_url("10.0.3.4:9000", 8080) == "http://10.0.3.4:9000"
    assert verify_io.normalize_router_url("https://router.example.com/", 8080) == "https://router.example.com"
    assert verify_io.forwarded_port("Forwarding from 127.0.0.1:40001 -> 8080") == 40001
    assert verify_io.forwarded_port("Forwarding from [::1]:40001 -> 8080") is None


def test_stream_lines_times_each_line_as_it_arrives():
    with FakeRouter(first=0.05, gap=0.01) as router:
        lines = list(verify_io.stream_lines(router.url + "/v1/completions", {"model": "m", "prompt": "p"}, 10))
    data = [(t, line) for t, line in lines if line.startswith("data: ")]
    assert len(data) == 34 and data[-1][1] == "data: [DONE]\n"
    assert data[0][0] >= 0.05 and data[-1][0] - data[0][0] >= 0.3  # the events arrived spread out, not buffered
    assert router.requests[0]["body"] == {"model": "m", "prompt": "p"}
