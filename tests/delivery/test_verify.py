"""`ops verify`'s pure side against the recorded fixtures: parsing each upstream format, diffing counters, deciding each
check, and the report. The fixtures and where their formats come from: tests/fixtures/verify/README.md."""

from __future__ import annotations

import pytest

from components.builders.serving.common import endpoint_selector, role_selector, served_model_name, workload_name
from facts.conventions import ROUTER
from components.builders.serving.router import router_url
from stacks.serving_args import serving_spec
from ops import verify, verify_formats
from ops.verify import (
    FAIL,
    PASS,
    SKIP,
    UNKNOWN,
    Check,
    NodeCounters,
    Options,
    Report,
    Target,
    check_backend,
    check_efa,
    check_failures,
    check_pods,
    check_request,
    check_transfers,
    load_figures,
    pods_from_json,
    render,
)
from ops.verify_formats import (
    FormatError,
    NixlTotals,
    StreamResult,
    nixl_totals,
    parse_efa_counters,
    parse_engine_log,
    parse_metrics,
    parse_stream,
    percentile,
)
from tooling.render import ROOT, load
from tests.delivery.verify_fakes import fixture

KV = 2 * 80 * 8 * 128 * 2  # bytes of KV per token of Llama-3.3-70B in bf16, what the fixtures were built with
PROBE_BYTES = 4121 * KV


@pytest.fixture(scope="module")
def prod() -> Target:
    return Target.from_config(load(ROOT / "Pulumi.prod.yaml", "prod")[2])


@pytest.fixture(scope="module")
def dev() -> Target:
    return Target.from_config(load(ROOT / "Pulumi.dev.yaml", "dev")[2])


def totals(rel: str) -> NixlTotals:
    return nixl_totals(parse_metrics(fixture(rel)))


def efa(rel: str):
    return parse_efa_counters(fixture(rel))


# ---- the target comes from the builders ----------------------------------------------------------------------------


def test_target_names_come_from_the_serving_builders(prod):
    cfg = serving_spec(load(ROOT / "Pulumi.prod.yaml", "prod")[2])
    assert prod.router_service == workload_name(cfg, ROUTER) == "prod-router"
    assert prod.router_in_cluster_url == router_url(cfg)
    assert prod.model == served_model_name(cfg) == "llama-3.3-70b"
    assert prod.role_selectors == {r: role_selector(cfg, r) for r in ("prefill", "decode")}
    assert prod.endpoint_selectors == {r: endpoint_selector(cfg, r) for r in ("prefill", "decode")}
    assert (prod.namespace, prod.router_port, prod.engine_port, prod.metrics_path, prod.container) == ("prod", 8080, 8000, "/metrics", "engine")
    assert prod.expected_pods == {"prefill": 2, "decode": 4}


def test_an_efa_stack_expects_libfabric_and_a_tcp_stack_its_own_backend(prod, dev):
    assert (prod.efa, prod.backend) == (True, "LIBFABRIC")
    assert (dev.efa, dev.backend) == (False, "UCX")  # g6e.xlarge has no EFA


def test_metrics_are_read_on_localhost_inside_the_engine_container(prod):
    argv = prod.metrics_command()
    assert argv[:2] == ["python3", "-c"]
    assert "'http://127.0.0.1:8000/metrics'" in argv[2]
    compile(argv[2], "<metrics command>", "exec")


def test_prompts_fit_the_model_context():
    opts, notes = Options(prompt_tokens=30000, load_prompt_tokens=1000).fit(16384)
    assert opts.prompt_tokens == int((16384 - 32) * 0.7) and opts.load_prompt_tokens == 1000
    assert notes == [f"prompt_tokens lowered from 30000 to {opts.prompt_tokens} to fit maxModelLen 16384"]
    assert Options().fit(None) == (Options(), [])


def test_the_probe_prompt_is_long_and_starts_with_its_nonce():
    text = verify.prompt("abc123", 4000)
    assert text.startswith("Request abc123.")
    assert 2900 <= len(text.split()) <= 3100  # ~0.75 words per token
    assert verify.prompt("other", 4000) != text
    body = verify.completion_payload("llama-3.3-70b", text, 32)
    assert body["model"] == "llama-3.3-70b" and body["stream"] is True and body["stream_options"] == {"include_usage": True}


# ---- Prometheus exposition ------------------------------------------------------------------------------------------


def test_parses_vllms_metrics_page():
    samples = parse_metrics(fixture("metrics/efa/decode-2.after.prom"))
    names = {s.name for s in samples}
    assert {verify_formats.NIXL_TRANSFERS, verify_formats.NIXL_BYTES, verify_formats.NIXL_FAILED_TRANSFERS, verify_formats.NIXL_FAILED_NOTIFICATIONS} <= names
    count = next(s for s in samples if s.name == verify_formats.NIXL_TRANSFERS)
    assert dict(count.labels) == {"engine": "0", "model_name": "llama-3.3-70b"} and count.value == 40
    inf = [s for s in samples if s.name == "vllm:nixl_xfer_time_seconds_bucket" and ("le", "+Inf") in s.labels]
    assert inf[0].value == 40


def test_label_values_keep_escapes_commas_and_braces():
    text = 'm{a="x,y}",b="q\\"uote",c="back\\\\slash",d="new\\nline"} 1.5e+03 1700000000000\nn 7\n# comment\n'
    s = parse_metrics(text)
    assert dict(s[0].labels) == {"a": "x,y}", "b": 'q"uote', "c": "back\\slash", "d": "new\nline"}
    assert s[0].value == 1500 and (s[1].name, s[1].value) == ("n", 7)


@pytest.mark.parametrize("bad", ['m{a="x"', "m{a=x} 1", "m", "m 1 2 3", "m notanumber", "{} 1"])
def test_malformed_exposition_is_an_error(bad):
    with pytest.raises(FormatError):
        parse_metrics(bad)


def test_nixl_totals_and_growth():
    before, after = totals("metrics/efa/decode-2.before.prom"), totals("metrics/efa/decode-2.after.prom")
    assert (before.transfers, before.bytes) == (36, pytest.approx(6334709760))
    delta, restarted = after.minus(before)
    assert not restarted
    assert delta.transfers == 4 and delta.bytes == pytest.approx(PROBE_BYTES, rel=1e-3)
    assert delta.failed_transfers == 0


def test_a_counter_that_went_down_is_a_restart():
    before, after = totals("metrics/efa/decode-2.after.prom"), totals("metrics/efa/decode-2.before.prom")
    delta, restarted = before.minus(after)
    assert not restarted and delta.transfers == 4
    _, restarted = after.minus(before)
    assert restarted


def test_an_engine_without_the_connector_has_no_nixl_series():
    assert not totals("metrics/no-connector.prom").present


# ---- checks on the metrics -----------------------------------------------------------------------------------------


def _world(kind: str, decode2_after: str | None = None):
    m = f"metrics/{kind}"
    before = {
        "prod-prefill-0": totals(f"{m}/prefill-0.before.prom"),
        "prod-decode-0": totals(f"{m}/decode-0.prom"),
        "prod-decode-2": totals(f"{m}/decode-2.before.prom"),
    }
    after = {
        "prod-prefill-0": totals(f"{m}/prefill-0.after.prom"),
        "prod-decode-0": totals(f"{m}/decode-0.prom"),
        "prod-decode-2": totals(decode2_after or f"{m}/decode-2.after.prom"),
    }
    return before, after


def test_transfers_that_grew_pass_with_the_figures():
    c = check_transfers(*_world("efa"), {})
    assert c.status == PASS
    assert "+4 transfers (prod-decode-2 +4)" in c.seen and "1.26 GiB moved" in c.seen and "15.4 GB/s" in c.seen


def test_no_transfer_fails_with_what_to_look_at():
    before, _ = _world("efa")
    c = check_transfers(before, dict(before), {})
    assert c.status == FAIL and "+0 transfers on 3 engine pods" in c.seen
    assert "--vllm-pd-disaggregation" in c.look_at and verify_formats.NIXL_TRANSFERS in c.expected


def test_engines_without_the_connector_fail_the_transfer_check():
    after = {"prod-decode-0": totals("metrics/no-connector.prom")}
    c = check_transfers({}, after, {})
    assert c.status == FAIL and "--kv-transfer-config" in c.look_at


def test_unreadable_metrics_are_unknown_not_a_pass():
    c = check_transfers({}, {}, {"prod-decode-0": "kubectl exec prod-decode-0 -c engine -- python3: Forbidden"})
    assert c.status == UNKNOWN and "Forbidden" in c.seen


def test_a_pod_without_a_baseline_is_not_counted_as_growth():
    # prod-decode-2's first scrape failed: all of its history would otherwise pass for the probe's transfers.
    before, after = _world("efa")
    del before["prod-decode-2"]
    errors = {"prod-decode-2": "before the request: kubectl exec prod-decode-2 -c engine -- python3: container not found"}
    c = check_transfers(before, after, errors)
    assert c.status == UNKNOWN and "+0 transfers on the 2 engine pods read twice" in c.seen and "container not found" in c.seen
    assert check_failures({}, after, errors).status == UNKNOWN


def test_a_restart_between_the_scrapes_is_reported():
    before, after = _world("efa")
    before["prod-decode-2"] = totals("metrics/efa/decode-2.after.prom")
    after["prod-decode-2"] = totals("metrics/efa/decode-2.before.prom")  # counters went down: the engine restarted
    c = check_transfers(before, after, {})
    assert "restarted during the check: prod-decode-2" in c.seen


def test_failed_transfers_fail():
    before = {"prod-decode-2": totals("metrics/failed.before.prom")}
    after = {"prod-decode-2": totals("metrics/failed.after.prom")}
    c = check_failures(before, after, {})
    assert c.status == FAIL
    assert "prod-decode-2: +3 failed transfers, +0 failed notifications" in c.seen
    assert "same engine image" in c.look_at


def test_no_failures_pass_and_expired_kv_is_reported():
    before, after = _world("efa")
    c = check_failures(before, after, {})
    assert c.status == PASS and "+0 failed transfers" in c.seen
    before["prod-prefill-0"] = NixlTotals()
    c = check_failures(before, after, {})
    assert "1 requests' KV expired" in c.seen  # prefill-0 has one expired request since start


# ---- engine logs ---------------------------------------------------------------------------------------------------------


def test_libfabric_log_names_one_agent_per_tp_worker():
    log = parse_engine_log(fixture("logs/prefill.libfabric.log"))
    assert log.instantiated == ("LIBFABRIC",) * 4 and not log.problems


def test_a_missing_plugin_is_a_problem():
    log = parse_engine_log(fixture("logs/prefill.missing-plugin.log"))
    assert not log.instantiated
    assert "Skipping backend registration LIBFABRIC due to the missing plugin" in log.problems[0]


def _logs(prefill: str, decode: str):
    return {
        "prod-prefill-0": parse_engine_log(fixture(f"logs/prefill.{prefill}.log")),
        "prod-decode-0": parse_engine_log(fixture(f"logs/decode.{decode}.log")),
    }


def test_backend_check(prod):
    assert check_backend(prod, _logs("libfabric", "libfabric"), {}).status == PASS
    ucx = check_backend(prod, _logs("ucx", "libfabric"), {})
    assert ucx.status == FAIL and "1/2 engine pods created UCX, not LIBFABRIC (prod-prefill-0)" in ucx.seen
    assert "disagg:serving.kvTransfer.backend" in ucx.look_at and "libhwloc" not in ucx.look_at
    missing = check_backend(prod, _logs("missing-plugin", "libfabric"), {})
    assert missing.status == FAIL and "missing plugin" in missing.seen
    assert "libfabric.so.1 with the EFA provider and libhwloc.so.15" in missing.look_at


def test_rotated_logs_do_not_fail_but_are_named(prod):
    c = check_backend(prod, _logs("libfabric", "rotated"), {})
    assert c.status == PASS and "no backend line in prod-decode-0" in c.seen and "containerLogMaxSize" in c.seen
    logs = {"prod-decode-0": parse_engine_log(fixture("logs/decode.rotated.log"))}
    c = check_backend(prod, logs, {})
    assert c.status == UNKNOWN and not c.required


def test_a_ucx_stack_expects_ucx(dev):
    logs = {"dev-prefill-0": parse_engine_log(fixture("logs/prefill.ucx.log"))}
    assert check_backend(dev, logs, {}).status == PASS
    logs = {"dev-prefill-0": parse_engine_log(fixture("logs/prefill.libfabric.log"))}
    assert check_backend(dev, logs, {}).status == FAIL


# ---- EFA counters ----------------------------------------------------------------------------------------------------------


def test_parses_the_sysfs_counters_of_32_efa_ports():
    c = efa("efa/prefill-node.after.txt")
    assert len(c.devices) == 32 and "rdmap79s0/1" in c.devices
    assert set(verify_formats.EFA_SOURCE_RDMA + verify_formats.EFA_SINK_RDMA + (verify_formats.EFA_TX,)) <= set(c.devices["rdmap79s0/1"])


def test_counter_growth_matches_what_nixl_moved():
    d = efa("efa/prefill-node.after.txt").minus(efa("efa/prefill-node.before.txt"))
    assert d["rdma_read_resp_bytes"] == PROBE_BYTES // 16 * 16  # spread over prefill-0's 16 EFA ports
    assert d["rdma_write_bytes"] == 0 and d["tx_bytes"] > d["rdma_read_resp_bytes"]


def test_a_line_that_is_not_a_counter_is_an_error():
    with pytest.raises(FormatError):
        parse_efa_counters("grep: /sys/class/infiniband: Permission denied\n")


def _nodes(before: str, after: str, node="ip-10-0-17-201.ec2.internal", pod="prod-prefill-0"):
    return [NodeCounters(node, pod, efa(before), efa(after))]


def test_rdma_bytes_out_of_the_prefill_node_pass(prod):
    decode = _nodes("efa/decode-node.before.txt", "efa/decode-node.after.txt", "ip-10-0-23-88.ec2.internal", "prod-decode-0")
    c = check_efa(prod, _nodes("efa/prefill-node.before.txt", "efa/prefill-node.after.txt"), decode, PROBE_BYTES)
    assert c.status == PASS
    assert "ip-10-0-17-201.ec2.internal +1.26 GiB over 32 EFA ports" in c.seen and "(100% of it" in c.seen
    assert "decode nodes received 1.26 GiB by RDMA" in c.seen


def test_idle_efa_counters_fail(prod):
    c = check_efa(prod, _nodes("efa/idle-node.txt", "efa/idle-node.txt"), [], PROBE_BYTES)
    assert c.status == FAIL and "+0 B" in c.seen and "KV did not cross EFA" in c.look_at and "FI_PROVIDER=efa" in c.look_at


def test_efa_traffic_without_rdma_fails_with_its_own_hint(prod):
    c = check_efa(prod, _nodes("efa/no-rdma.before.txt", "efa/no-rdma.after.txt"), [], PROBE_BYTES)
    assert c.status == FAIL and "not as RDMA" in c.look_at and "FI_EFA_USE_DEVICE_RDMA" in c.look_at


def test_no_efa_device_in_the_pod_fails_with_its_own_hint(prod):
    empty = parse_efa_counters("")
    c = check_efa(prod, [NodeCounters("n1", "prod-prefill-0", empty, empty)], [], PROBE_BYTES)
    assert c.status == FAIL and "sees no EFA device" in c.look_at


def test_unreadable_counters_are_unknown_and_required(prod):
    c = check_efa(prod, [NodeCounters("n1", "prod-prefill-0", None, None, "kubectl exec prod-prefill-0: Forbidden")], [], 1)
    assert c.status == UNKNOWN and c.required and "Forbidden" in c.seen


def test_no_rdma_on_the_nodes_read_is_unknown_if_another_could_not_be_read(prod):
    nodes = _nodes("efa/idle-node.txt", "efa/idle-node.txt") + [NodeCounters("n2", "prod-prefill-1", None, None, "timed out")]
    c = check_efa(prod, nodes, [], PROBE_BYTES)
    assert c.status == UNKNOWN and "could not read n2 (via prod-prefill-1): timed out" in c.seen


def test_efa_is_skipped_on_a_stack_without_efa(dev):
    assert check_efa(dev, [], [], 0).status == SKIP


# ---- the stream and the figures -------------------------------------------------------------------------------------------


def timed(body: str, first: float = 0.4, gap: float = 0.02) -> list[tuple[float, str]]:
    """The recorded SSE body as lines arriving `first` s after the request, then one event every `gap` s."""
    out, t = [], first
    for line in body.splitlines(keepends=True):
        out.append((t, line))
        if line.strip() == "":
            t += gap
    return out


def test_stream_timings_from_vllms_sse():
    r = parse_stream(timed(fixture("sse/completion.sse")))
    assert r.ok and r.chunks == 32 and r.ttft == pytest.approx(0.4)
    assert len(r.gaps) == 31 and all(g == pytest.approx(0.02) for g in r.gaps)
    assert (r.prompt_tokens, r.completion_tokens) == (4121, 32)
    assert r.text.startswith(" The passage explains")


def test_an_error_event_fails_the_stream():
    r = parse_stream(timed(fixture("sse/error.sse")))
    assert not r.ok and r.error == "Internal server error" and r.chunks == 0


def test_a_stream_cut_before_done_is_an_error():
    lines = timed(fixture("sse/completion.sse"))[:10]
    assert parse_stream(lines).error == "the stream ended without data: [DONE]"


def test_an_answer_that_is_not_an_event_stream_says_so():
    r = parse_stream([(0.1, '{"object":"text_completion","choices":[{"text":"hi"}]}\n')])
    assert not r.ok and r.error.startswith('not an event stream: {"object":"text_completion"')


def test_sse_framing_crlf_comments_and_multiline_data():
    lines = [(0.1, ": keep-alive\r\n"), (0.2, 'data: {"choices":[{"index":0,\r\n'), (0.25, 'data: "text":"a"}]}\r\n'), (0.3, "\r\n"),
             (0.5, 'data:{"choices":[{"index":0,"delta":{"content":"b"}}]}\n'), (0.5, "\n"), (0.6, "data: [DONE]\n"), (0.6, "\n")]
    r = parse_stream(lines)
    assert r.ok and r.text == "ab" and r.ttft == 0.25 and r.gaps == (pytest.approx(0.25),)


def test_a_chat_role_delta_is_not_a_token():
    lines = [(0.1, 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n'), (0.1, "\n"),
             (0.3, 'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n'), (0.3, "\n"), (0.4, "data: [DONE]\n"), (0.4, "\n")]
    assert parse_stream(lines).ttft == 0.3


def test_percentile_is_linear_between_ranks():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([7], 90) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_load_figures():
    results = [parse_stream(timed(fixture("sse/completion.sse"), first=f)) for f in (0.2, 0.3, 0.4, 0.5)]
    results.append(StreamResult(ok=False, error="HTTPError: HTTP 503"))
    f = load_figures(results, concurrency=4, wall_seconds=2.0)
    assert (f.requests, f.ok, f.errors) == (5, 4, ("HTTPError: HTTP 503",))
    assert f.ttft_p50 == pytest.approx(0.35) and f.ttft_p90 == pytest.approx(0.47)
    assert f.itl_p50 == pytest.approx(0.02) and f.output_tokens == 128 and f.output_tokens_per_second == 64


# ---- pods, request and the verdict --------------------------------------------------------------------------------------


def test_pods_from_kubectl_json(prod):
    pods = pods_from_json(__import__("json").loads(fixture("pods.json")))
    assert [p.name for p in pods][:2] == ["prod-decode-0", "prod-decode-1"]
    by_role = {r: [p for p in pods if p.matches(prod.role_selectors[r])] for r in ("prefill", "decode")}
    assert [len(by_role[r]) for r in ("prefill", "decode")] == [2, 4]
    assert check_pods(prod, by_role).status == PASS
    none = check_pods(prod, {"prefill": by_role["prefill"], "decode": []})
    assert none.status == FAIL and none.expected == "at least one Ready decode pod serving HTTP"
    assert none.look_at.startswith("kubectl get pods -n prod -l disagg.io/deployment=prod,disagg.io/role=decode -o wide")


def test_a_pod_not_ready_is_named(prod):
    pods = pods_from_json(__import__("json").loads(fixture("pods.json")))
    pods = [p if p.name != "prod-decode-3" else verify.Pod(p.name, p.node, "Pending", False, p.labels) for p in pods]
    by_role = {r: [p for p in pods if p.matches(prod.role_selectors[r])] for r in ("prefill", "decode")}
    c = check_pods(prod, by_role)
    assert c.status == PASS and "3/4 decode endpoint pods Ready" in c.seen and "prod-decode-3 is Pending, not Ready" in c.seen


def test_request_check():
    assert check_request(None, "URLError: <urlopen error [Errno 111] Connection refused>").status == FAIL
    assert check_request(parse_stream(timed(fixture("sse/error.sse"))), None).seen.startswith("stream failed: Internal server error")
    ok = check_request(parse_stream(timed(fixture("sse/completion.sse"))), None)
    assert ok.status == PASS and ok.seen == "4121 prompt tokens -> 32 token chunks, TTFT 0.400 s"


def test_proven_only_when_every_required_check_passes(prod):
    good = (Check("a", PASS, ""), Check("b", SKIP, "", required=False), Check("c", UNKNOWN, "", required=False))
    assert Report(prod, "u", good).proven
    assert not Report(prod, "u", good + (Check("d", UNKNOWN, ""),)).proven
    assert not Report(prod, "u", good + (Check("e", FAIL, "", required=False),)).proven


def test_render_says_what_failed_and_where_to_look(prod):
    checks = (
        Check("nixl-transfers", PASS, "+4 transfers"),
        Check("efa-rdma", FAIL, "+0 B", expected="RDMA bytes to grow", look_at="FI_PROVIDER=efa"),
    )
    text = render(Report(prod, "http://x", checks))
    assert "FAIL    efa-rdma" in text and "expected: RDMA bytes to grow" in text and "look at:  FI_PROVIDER=efa" in text
    assert text.endswith(f"NOT PROVEN: KV moved from prefill to decode, but not over EFA. Failed: efa-rdma. See {verify.RUNBOOK}.")
    assert render(Report(prod, "http://x", (Check("a", PASS, "ok"),))).endswith("KV moved from prefill to decode over EFA (NIXL LIBFABRIC, RDMA bytes counted on the prefill nodes).")


# ---- an aggregated stack: no KV moves between pods, so only the request is proven ------------------------------------


def test_aggregated_serving_checks_the_request_and_skips_every_kv_check():
    from ops.verify import KV_CHECKS, SKIP, Options, Pod, Target, render, run

    cfg = load(ROOT / "tests/configs/Pulumi.glm5-aggregated.yaml", "glm5-aggregated")[2]
    target = Target.from_config(cfg)
    assert target.kv_moves is False and target.efa is False

    class Cluster:
        def pods(self, namespace, selector):
            role = selector["disagg.io/role"]
            n = target.expected_pods[role]
            return [Pod(f"{role}-{i}", f"node-{role}-{i}", "Running", True, {**target.endpoint_selectors[role]}) for i in range(n)]

        def exec(self, *_):
            raise AssertionError("an aggregated stack has no NIXL metrics or EFA counters to read")

        logs = exec

    sse = fixture("sse/completion.sse")

    def stream(url, body, timeout):
        return ((0.01 * i, line) for i, line in enumerate(sse.splitlines()))

    report = run(target, Options(load_requests=0), Cluster(), "http://router", stream, nonce=lambda: "n")
    assert report.proven, render(report)
    assert {c.name: c.status for c in report.checks if c.name in KV_CHECKS} == {n: SKIP for n in KV_CHECKS}
    text = render(report)
    assert "aggregated serving (no KV transfer)" in text.splitlines()[0]
    assert text.rstrip().endswith("The router served the model (aggregated serving: no KV transfer to prove).")
