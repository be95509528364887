"""`ops verify` against a deployed stack (vLLM or TensorRT-LLM): KV moved from prefill to decode over EFA. Skipped unless
pointed at one:

    pulumi stack output kubeconfig --show-secrets -s prod > /tmp/kubeconfig
    DISAGG_INTEGRATION_KUBECONFIG=/tmp/kubeconfig DISAGG_INTEGRATION_STACK=prod \\
        .venv/bin/python -m pytest -m integration -s tests/integration/test_verify.py

The router is reached through `kubectl port-forward`, or at DISAGG_INTEGRATION_ROUTER_URL (e.g. the internal NLB's
hostname, from inside the VPC). One run of the same functions `python -m ops verify` calls; each check is one test,
so a failure names the check, what was expected, what was seen and what to look at. `-s` prints the whole report
with the TTFT/ITL figures of the load run.
"""

from __future__ import annotations

import pytest

from ops import verify, verify_io
from tooling.render import ROOT
from tests.integration.deployed import KUBECONFIG, MARKS, ROUTER_URL, STACK

pytestmark = MARKS


@pytest.fixture(scope="module")
def report() -> verify.Report:
    _, target = verify.load_target(ROOT, STACK)
    options, notes = verify.Options().fit(target.max_model_len)
    cluster = verify_io.KubectlCluster(KUBECONFIG)
    with verify_io.router(cluster, target, ROUTER_URL) as url:
        result = verify.run(target, options, cluster, url, verify_io.stream_lines, notes=tuple(notes), forwarded=ROUTER_URL is None)
    print("\n" + verify.render(result))
    return result


def passed(report: verify.Report, name: str) -> None:
    check = next((c for c in report.checks if c.name == name), None)
    if check is None:
        pytest.fail(f"{name} did not run: an earlier check failed ({', '.join(c.name + ' ' + c.status for c in report.checks)})")
    if check.status == verify.SKIP:
        pytest.skip(f"{name}: {check.seen}")
    if check.status == verify.UNKNOWN and not check.required:
        pytest.skip(f"{name} could not be shown: {check.seen}")
    assert check.status == verify.PASS, f"{name} {check.status}: {check.seen}\n  expected: {check.expected}\n  look at: {check.look_at}"


def test_engine_pods_ready(report):
    passed(report, "pods")


def test_long_prompt_answered_through_the_router(report):
    passed(report, "request")


def test_nixl_transfer_counters_grew(report):
    passed(report, "nixl-transfers")


def test_no_failed_nixl_transfers(report):
    passed(report, "nixl-failures")


def test_a_context_and_a_generation_server_served_the_probe(report):
    if report.target.engine != "tensorrt-llm":
        pytest.skip("disagg-path is the TensorRT-LLM stand-in for the NIXL counters")
    passed(report, "disagg-path")


def test_engine_logs_name_the_nixl_backend(report):
    passed(report, "nixl-backend")


def test_efa_rdma_bytes_left_the_prefill_nodes(report):
    passed(report, "efa-rdma")


def test_load_run_answered(report):
    """The figures are printed, never compared with a target; this only asks that the load run was served."""
    if report.load is None:
        pytest.skip("no load run: the long prompt failed")
    assert report.load.ok == report.load.requests, f"load run errors: {'; '.join(report.load.errors)}"
