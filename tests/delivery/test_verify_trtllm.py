"""`ops verify` on a TensorRT-LLM stack (tests/configs/Pulumi.trtllm.yaml) against the recorded fixtures
(tests/fixtures/verify/trtllm, see the README there): the target, each upstream format, each check, the report, and the
real command end to end with kubectl answered from the fixtures and an orchestrator on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess

import pytest

from components.builders.serving.trtllm import METRICS_PATH
from ops import verify, verify_trtllm
from ops.__main__ import main as ops_main
from ops.verify import FAIL, PASS, SKIP, UNKNOWN, NodeCounters, Report, Target, pods_from_json
from ops.verify_formats import RequestTotals, parse_efa_counters, parse_metrics, parse_trtllm_log, trtllm_totals
from ops.verify_trtllm import check_backend, check_disagg_path, check_efa, kv_floor, render_trtllm
from tests.delivery.verify_fakes import TRTLLM_ROUTER_KEY, FakeKubectl, FakeRouter, World, fixture
from tooling.render import ROOT, load

CONFIG = ROOT / "tests/configs/Pulumi.trtllm.yaml"
PROBE_TOKENS = 4121
KV_FP8 = 80 * 2 * 8 * 128  # bytes of KV per token of Llama-3.3-70B at one byte per element


@pytest.fixture(scope="module")
def trtllm() -> Target:
    return Target.from_config(load(CONFIG, "trtllm")[2])


def totals(rel: str) -> RequestTotals:
    return trtllm_totals(parse_metrics(fixture(f"trtllm/metrics/{rel}.prom")))


def efa(rel: str):
    return parse_efa_counters(fixture(f"trtllm/efa/{rel}.txt"))


def endpoints(target: Target) -> dict[str, list[verify.Pod]]:
    pods = pods_from_json(json.loads(fixture("trtllm/pods.json")))
    return {r: [p for p in pods if p.matches(target.endpoint_selectors[r])] for r in ("prefill", "decode")}


# ---- the target -------------------------------------------------------------------------------------------------------


def test_the_target_knows_the_engine_and_what_trtllm_serve_serves(trtllm):
    assert trtllm.engine == "tensorrt-llm"
    # trtllm-serve serves the model under its id (no --served_model_name: rule trtllm-no-served-name).
    assert trtllm.model == "nvidia/Llama-3.3-70B-Instruct-FP8"
    assert (trtllm.metrics_path, trtllm.backend, trtllm.efa) == (METRICS_PATH, "LIBFABRIC", True)
    assert trtllm.kv_bytes_per_token_min == KV_FP8
    assert "'http://127.0.0.1:8000/prometheus/metrics'" in trtllm.metrics_command()[2]


def test_a_vllm_target_says_vllm():
    prod = Target.from_config(load(ROOT / "Pulumi.prod.yaml", "prod")[2])
    assert prod.engine == "vllm" and prod.model == "llama-3.3-70b"


# ---- formats ----------------------------------------------------------------------------------------------------------


def test_request_counter_of_a_server_and_its_growth():
    before, after = totals("context-0.before"), totals("context-0.after")
    assert (before.present, before.success) == (True, 39)
    assert after.minus(before) == (RequestTotals(True, 1), False)
    assert before.minus(after)[1]  # a counter that went down: the server restarted
    assert not trtllm_totals(parse_metrics(fixture("metrics/efa/decode-0.prom"))).present  # a vLLM page has none


def test_the_backend_line_of_each_rank():
    assert parse_trtllm_log(fixture("trtllm/logs/context.libfabric.log")).instantiated == ("LIBFABRIC",) * 4
    assert parse_trtllm_log(fixture("trtllm/logs/generation.ucx.log")).instantiated == ("UCX",) * 2
    misspelled = parse_trtllm_log(fixture("trtllm/logs/context.misspelled.log"))
    assert misspelled.instantiated == ("UCX",) * 4
    assert misspelled.problems[0] == "[TensorRT-LLM][WARNING] Unsupported NIXL backend: libfabric, fallback to UCX"
    # vLLM's NIXL line is not TensorRT-LLM's: a vLLM log names no backend here.
    assert parse_trtllm_log(fixture("logs/prefill.libfabric.log")).instantiated == ()


# ---- disagg-path ------------------------------------------------------------------------------------------------------


def _counters(context_after="context-0.after", generation_after="generation-2.after"):
    before = {
        "trtllm-prefill-0": totals("context-0.before"), "trtllm-prefill-1": totals("context-1"),
        "trtllm-decode-0": totals("generation-0"), "trtllm-decode-2": totals("generation-2.before"),
    }
    after = {
        "trtllm-prefill-0": totals(context_after), "trtllm-prefill-1": totals("context-1"),
        "trtllm-decode-0": totals("generation-0"), "trtllm-decode-2": totals(generation_after),
    }
    return before, after


def test_both_roles_served_the_probe(trtllm):
    c = check_disagg_path(endpoints(trtllm), *_counters(), {})
    assert c.status == PASS
    assert c.seen == "context servers (prefill): trtllm-prefill-0 +1; generation servers (decode): trtllm-decode-2 +1"


def test_a_generation_server_alone_is_not_the_disaggregated_path(trtllm):
    c = check_disagg_path(endpoints(trtllm), *_counters(context_after="context-0.before"), {})
    assert c.status == FAIL and "context servers (prefill): +0 on the 2 read twice" in c.seen
    assert "without a context phase" in c.look_at and "registration successful" in c.look_at


def test_no_generation_phase_fails_with_its_own_hint(trtllm):
    c = check_disagg_path(endpoints(trtllm), *_counters(generation_after="generation-2.before"), {})
    assert c.status == FAIL and "no generation server finished the request" in c.look_at


def test_servers_without_the_metrics_fail(trtllm):
    after = {"trtllm-prefill-0": RequestTotals(present=False), "trtllm-decode-0": RequestTotals(present=False)}
    c = check_disagg_path(endpoints(trtllm), {}, after, {})
    assert c.status == FAIL and "return_perf_metrics" in c.look_at


def test_an_unreadable_server_of_the_missing_role_is_unknown(trtllm):
    before, after = _counters(context_after="context-0.before")
    del before["trtllm-prefill-0"], after["trtllm-prefill-0"]
    c = check_disagg_path(endpoints(trtllm), before, after, {"trtllm-prefill-0": "kubectl exec trtllm-prefill-0: Forbidden"})
    assert c.status == UNKNOWN and "Forbidden" in c.seen


# ---- nixl-backend -----------------------------------------------------------------------------------------------------


def _logs(context: str, generation: str):
    return {
        "trtllm-prefill-0": parse_trtllm_log(fixture(f"trtllm/logs/context.{context}.log")),
        "trtllm-decode-0": parse_trtllm_log(fixture(f"trtllm/logs/generation.{generation}.log")),
    }


def test_backend_check(trtllm):
    ok = check_backend(trtllm, _logs("libfabric", "libfabric"), {})
    assert ok.status == PASS and ok.seen == "LIBFABRIC in 2/2 servers (6 NIXL agents)" and not ok.required
    ucx = check_backend(trtllm, _logs("libfabric", "ucx"), {})
    assert ucx.status == FAIL and "1/2 servers created UCX, not LIBFABRIC (trtllm-decode-0)" in ucx.seen
    assert "TRTLLM_NIXL_KVCACHE_BACKEND" in ucx.look_at
    misspelled = check_backend(trtllm, _logs("misspelled", "libfabric"), {})
    assert misspelled.status == FAIL and "Unsupported NIXL backend: libfabric" in misspelled.seen and "case-sensitive" in misspelled.look_at


def test_a_log_without_the_info_line_is_unknown_not_a_pass(trtllm):
    silent = {"trtllm-prefill-0": parse_trtllm_log("[TensorRT-LLM][WARNING] something else\n")}
    c = check_backend(trtllm, silent, {})
    assert c.status == UNKNOWN and "TLLM_LOG_LEVEL above info" in c.seen


# ---- efa-rdma ---------------------------------------------------------------------------------------------------------


def _nodes(before: str, after: str, node: str, pod: str, fixtures: str = "trtllm/efa"):
    return [NodeCounters(node, pod, parse_efa_counters(fixture(f"{fixtures}/{before}.txt")), parse_efa_counters(fixture(f"{fixtures}/{after}.txt")))]


CONTEXT = ("context-node.before", "context-node.after", "ip-10-0-17-201.ec2.internal", "trtllm-prefill-0")
GENERATION = ("generation-node.before", "generation-node.after", "ip-10-0-23-88.ec2.internal", "trtllm-decode-0")


def test_rdma_into_the_generation_node_passes_with_the_criterion(trtllm):
    assert kv_floor(trtllm, PROBE_TOKENS) == PROBE_TOKENS * KV_FP8 / 2
    c = check_efa(trtllm, _nodes(*CONTEXT), _nodes(*GENERATION), PROBE_TOKENS)
    assert c.status == PASS and c.required
    assert "ip-10-0-23-88.ec2.internal +1.26 GiB received by RDMA over 32 EFA ports" in c.seen
    assert "context nodes sent 1.26 GiB by RDMA" in c.seen
    assert "the probe's KV at one byte per element: 643.91 MiB (RDMA brought 200% of it)" in c.seen


def test_idle_counters_fail(trtllm):
    idle = _nodes("idle-node", "idle-node", "ip-10-0-23-88.ec2.internal", "trtllm-decode-0", "efa")
    c = check_efa(trtllm, [], idle, PROBE_TOKENS)
    assert c.status == FAIL and "KV did not cross EFA" in c.look_at and "TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC" in c.look_at
    assert c.expected.startswith("EFA RDMA bytes into the generation servers' nodes (rdma_read_bytes + rdma_write_recv_bytes) to grow by at least 321.95 MiB")


def test_rdma_below_the_probes_kv_fails(trtllm):
    # The generation node received 1.26 GiB; a prompt that would need more than twice that (at one byte per
    # element) did not come over EFA, whatever else moved.
    c = check_efa(trtllm, [], _nodes(*GENERATION), 20000)
    assert c.status == FAIL and "part of the KV went another way" in c.look_at


def test_without_the_kv_size_any_growth_is_the_criterion(trtllm):
    c = check_efa(trtllm, [], _nodes(*GENERATION), None)
    assert c.status == PASS
    idle = _nodes("idle-node", "idle-node", "n", "trtllm-decode-0", "efa")
    assert "the probe's KV size is unknown" in check_efa(trtllm, [], idle, None).expected


def test_unreadable_generation_nodes_are_unknown(trtllm):
    c = check_efa(trtllm, [], [NodeCounters("n1", "trtllm-decode-0", None, None, "kubectl exec trtllm-decode-0: Forbidden")], PROBE_TOKENS)
    assert c.status == UNKNOWN and c.required


# ---- the report -------------------------------------------------------------------------------------------------------


def test_render_names_the_engine_and_the_verdict(trtllm):
    checks = (verify.Check("disagg-path", PASS, "x"), verify.Check("efa-rdma", FAIL, "+0 B", "grow", "look"))
    text = render_trtllm(Report(trtllm, "http://x", checks))
    assert text.splitlines()[0].startswith("ops verify: stack trtllm, engine TensorRT-LLM, namespace trtllm, model nvidia/Llama-3.3-70B-Instruct-FP8")
    assert text.endswith("NOT PROVEN: TensorRT-LLM ran the request on a context and a generation server, but its KV did not cross EFA. "
                         f"Failed: efa-rdma. See {verify.RUNBOOK}.")
    assert verify.render(Report(trtllm, "http://x", checks)) == text  # render() dispatches on the engine


# ---- end to end: the command, kubectl from the fixtures, an orchestrator on loopback -----------------------------------


def run_verify(monkeypatch, world: World, *extra: str) -> tuple[int, FakeKubectl, FakeRouter]:
    fake = FakeKubectl(world)
    monkeypatch.setattr(subprocess, "run", fake)
    with FakeRouter(fixture("trtllm/sse/completion.sse")) as router:
        code = ops_main([
            "verify", "--stack", "trtllm", "--work-dir", str(CONFIG.parent), "--kubeconfig", "/tmp/kubeconfig-trtllm",
            "--router-url", router.url, "--settle-seconds", "0", *extra,
        ])
    return code, fake, router


def test_pass_when_kv_moved_from_context_to_generation_over_efa(monkeypatch, capsys):
    code, kubectl, router = run_verify(monkeypatch, World.trtllm("efa"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("ops verify: stack trtllm, engine TensorRT-LLM,")
    for name in ("pods", "request", "disagg-path", "nixl-backend", "efa-rdma"):
        assert f"PASS    {name}" in out
    assert f"SKIP    nixl-transfers  {verify_trtllm.NO_NIXL_COUNTERS}" in out
    assert "trtllm-prefill-0 +1; generation servers (decode): trtllm-decode-2 +1" in out
    assert "load run: 16/16 requests ok" in out
    assert out.rstrip().endswith(
        "KV moved from a context server to a generation server over EFA (TensorRT-LLM, NIXL LIBFABRIC, RDMA bytes counted on the generation nodes)."
    )
    # The orchestrator got the model id, streamed, with the key read from the stack's Secret (the test stack sets
    # serving.router.apiKey); the metrics were read at trtllm-serve's path.
    assert {r["body"]["model"] for r in router.requests} == {"nvidia/Llama-3.3-70B-Instruct-FP8"}
    assert {r["headers"].get("Authorization") for r in router.requests} == {f"Bearer {TRTLLM_ROUTER_KEY}"}
    scrapes = [c for c in kubectl.calls if "exec" in c and c[-3] == "python3"]
    assert scrapes and all("/prometheus/metrics" in c[-1] for c in scrapes)


def test_fail_when_the_servers_fell_back_to_ucx_and_efa_did_not_move(monkeypatch, capsys):
    code, _, _ = run_verify(monkeypatch, World.trtllm("tcp"), "--load-requests", "0")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "PASS    disagg-path" in out
    assert "FAIL    nixl-backend    6/6 servers created UCX, not LIBFABRIC" in out
    assert "look at:  TRTLLM_NIXL_KVCACHE_BACKEND in the engine env must be LIBFABRIC" in out
    assert "FAIL    efa-rdma        ip-10-0-23-88.ec2.internal +0 B received by RDMA over 32 EFA ports" in out
    assert "look at:  KV did not cross EFA" in out
    assert out.rstrip().endswith(
        "NOT PROVEN: TensorRT-LLM ran the request on a context and a generation server, but its KV did not cross EFA. "
        "Failed: nixl-backend, efa-rdma. See docs/runbook.md#ops-verify-failures."
    )


def test_the_gated_orchestrator_gets_the_key(monkeypatch, capsys):
    # serving.router.apiKey: `ops verify` sends the key to the orchestrator as it does to vllm-router.
    from pydantic import SecretStr

    cfg = load(CONFIG, "trtllm")[2]
    router = cfg.serving.router.model_copy(update={"api_key": SecretStr("k3y")})
    cfg = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"router": router})})
    target = Target.from_config(cfg)
    assert target.router_api_key_secret == "trtllm-router-api-key"
    monkeypatch.setattr(verify, "load_target", lambda work_dir, stack: (cfg, target))
    monkeypatch.setenv(verify.ROUTER_API_KEY_ENV, "k3y")
    code, _, router = run_verify(monkeypatch, World.trtllm("efa"), "--load-requests", "0")
    assert code == 0, capsys.readouterr().out
    assert {r["headers"].get("Authorization") for r in router.requests} == {"Bearer k3y"}


def test_efa_is_skipped_on_a_trtllm_stack_without_efa(trtllm):
    from dataclasses import replace

    ucx = replace(trtllm, efa=False, backend="UCX")
    assert check_efa(ucx, [], [], PROBE_TOKENS).status == SKIP
    text = render_trtllm(Report(ucx, "http://x", (verify.Check("disagg-path", PASS, "x"),)))
    assert text.endswith("KV moved from a context server to a generation server over NIXL UCX (TensorRT-LLM); this stack has no EFA, so EFA was not checked.")
