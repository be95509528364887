"""The record builder of the real-tool checks (tests/tools/serving_commands.py): what it feeds to vLLM's parser must
be exactly what the wrapper execs, and it must refuse a wrapper it does not understand rather than guess."""

from __future__ import annotations

import pytest

from components.builders.serving import lws, manifests
from components.builders.serving.vllm import EXEC_GROUP, EXEC_SINGLE
from tests.tools.serving_commands import commands, engine_argv, python_snippets
from tests.unit.serving_helpers import facts, multinode, prod, spec_of


def test_single_pods_exec_their_args_and_groups_append_rank_and_leader():
    assert engine_argv(f"set -e\n{EXEC_SINGLE}\n", ["m", "--port", "8000"], "single") == ("vllm", ["m", "--port", "8000"])
    _, leader = engine_argv(f"{EXEC_GROUP}\n", ["m"], "leader")
    _, worker = engine_argv(f"{EXEC_GROUP}\n", ["m", "--headless"], "worker")
    assert leader[:3] == ["m", "--node-rank", "0"] and worker[2:4] == ["--node-rank", "1"]
    assert "--master-addr" in leader


def test_trtllm_wrappers_exec_trtllm_serve_with_the_pod_ip_and_workers_exec_nothing():
    from components.builders.serving import trtllm
    from tests.tools.serving_commands import SAMPLE_POD_IP, TRTLLM_WORKER_WAIT

    assert engine_argv(f"{trtllm.EXEC_SINGLE}\n", ["m", "--port", "8000"], "single") == ("tensorrt-llm", ["m", "--port", "8000", "--host", SAMPLE_POD_IP])
    assert engine_argv(f"{trtllm.EXEC_GROUP}\n", ["m"], "leader") == ("tensorrt-llm", ["m", "--host", SAMPLE_POD_IP])
    assert engine_argv(f"{TRTLLM_WORKER_WAIT}\n", [], "worker") == ("tensorrt-llm", None)
    with pytest.raises(ValueError, match="known exec line"):
        engine_argv(f"{TRTLLM_WORKER_WAIT}\n", [], "single")


def test_an_unknown_exec_line_is_refused():
    with pytest.raises(ValueError, match="known exec line"):
        engine_argv("exec vllm serve --port 1\n", [], "single")


def test_records_cover_every_engine_template_with_its_part():
    cfg = multinode()
    docs = [m.obj for m in manifests(spec_of(cfg), facts(cfg))]
    recs = [c for c in commands("t", docs) if c.engine_argv is not None]
    assert sorted((c.role, c.part) for c in recs) == [("decode", "leader"), ("decode", "worker"), ("prefill", "leader"), ("prefill", "worker")]
    worker = next(c for c in recs if c.part == "worker")
    assert worker.engine_argv[: len(worker.args)] == worker.args and "--headless" in worker.engine_argv


def test_python_snippets_are_found_whole_across_lines():
    cfg = prod()
    script = lws.leader_worker_set(spec_of(cfg), "prefill", facts(cfg))["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["command"][2]
    (code,) = python_snippets(script)
    assert code.startswith("import sys\n") and "register_memory" in code
    compile(code, "<preflight>", "exec")
