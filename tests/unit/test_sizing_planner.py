"""The planner end to end: layouts that meet the SLOs, refusals with reasons, a stack file the project accepts."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import yaml

from facts.catalog import instance_type
from stacks.config import ConfigError, decode, engine_config_from_file, parse
from stacks.plan import role_plan
from tooling.sizing import planner, stackfile
from tooling.sizing.cli import main
from facts.models import lookup
from tests.conftest import ROOT, render

LLAMA = "nvidia/Llama-3.3-70B-Instruct-FP8"


def _scenario(**kw) -> planner.Scenario:
    args = dict(
        model=lookup(LLAMA), model_id=LLAMA, weights="fp8", kv="bf16", isl=4096, osl=512, ttft_ms=1000, itl_ms=40,
        rate=10.0, instances=("p5.48xlarge",),
    )
    args.update(kw)
    return planner.Scenario(**args)


@pytest.fixture(scope="module")
def llama_plan() -> planner.PlanResult:
    return planner.plan(_scenario())


def test_best_layout_meets_the_slos_and_fills_its_nodes(llama_plan):
    best = llama_plan.best
    assert best is not None and best.kind == "disagg" and best.feasible
    assert best.ttft_p_ms <= 1000 and best.itl_p_ms <= 40
    pre, dec = best.role("prefill"), best.role("decode")
    for r in (pre, dec):
        assert r.replicas <= r.filled and r.nodes * 8 == r.filled * r.gpus_per_replica  # whole p5 nodes, no stranded GPU
    assert best.gpus == best.gpus_provisioned
    assert best.usd_per_hour == pytest.approx((pre.nodes + dec.nodes) * instance_type("p5.48xlarge").on_demand_usd_per_hour)
    assert best.usd_per_mtok == pytest.approx(best.usd_per_hour / (10 * 512 * 3600 / 1e6))
    assert best.kv_transfer_ms <= 0.05 * 1000
    # Ranked by cost: nothing cheaper is listed after the best.
    assert all(lay.usd_per_hour >= best.usd_per_hour for lay in llama_plan.layouts)


def test_refusals_carry_the_reason(llama_plan):
    text = "\n".join(llama_plan.refused)
    assert "TP1 on p5.48xlarge" in text and "no room to serve" in text  # 70B FP8 does not fit one H100 with a cache


def test_efa_per_pod_comes_from_the_stack_plan(llama_plan):
    pre = llama_plan.best.role("prefill")
    assert pre.efa_per_pod == pre.gpus_per_replica * instance_type("p5.48xlarge").efa_per_gpu


def test_671b_fp8_is_refused_on_p5_and_planned_on_h200():
    ds = lookup("deepseek-ai/DeepSeek-V3")
    sc = _scenario(model=ds, model_id="deepseek-ai/DeepSeek-V3", weights="fp8_block", isl=2048, osl=512, rate=2.0, ttft_ms=3000, itl_ms=60)
    on_p5 = planner.plan(sc)
    assert any("673 GB in all" in r and "p5.48xlarge" in r for r in on_p5.refused)
    on_h200 = planner.plan(planner.Scenario(**{**sc.__dict__, "instances": ("p5en.48xlarge",)}))
    assert on_h200.best is not None and on_h200.best.role("decode").tp == 8


def test_uncalibrated_gpus_are_refused_by_name():
    result = planner.plan(_scenario(instances=("g6e.48xlarge",)))
    assert result.best is None and any("no measured kernel tables for L40S" in r for r in result.refused)


def test_concurrency_is_converted_to_a_rate():
    result = planner.plan(_scenario(rate=None, concurrency=64))
    assert result.best is not None
    best = result.best
    request_s = (best.role("prefill").ttft_mean_ms + best.kv_transfer_ms + 512 * best.role("decode").itl_mean_ms) / 1e3
    # Sized for at least the rate 64 clients produce on the layout it picked (and not wildly more).
    assert 64 / request_s <= result.rate * 1.02
    assert result.rate < 2 * 64 / ((1000 + 512 * 40) / 1e3) * 10


def test_sized_for_tag_round_trips():
    sc = _scenario(isl_tail=8192, kv="fp8")
    tag = stackfile.sized_for(sc, 10.0)
    assert len(tag) <= 256
    assert stackfile.parse_sized_for(tag) == {
        "isl": 4096, "osl": 512, "rate": 10.0, "ttft-ms": 1000.0, "itl-ms": 40.0, "p": 90.0, "isl-tail": 8192, "kv": "fp8", "weights": "fp8"
    }
    with pytest.raises(ValueError, match="missing rate"):
        stackfile.parse_sized_for("isl=1 osl=2 ttft-ms=3 itl-ms=4")
    with pytest.raises(ValueError, match="not one of"):
        stackfile.parse_sized_for("bogus=1")


def test_written_stack_validates_and_keeps_what_the_planner_decided(llama_plan, tmp_path):
    out = tmp_path / "Pulumi.sized.yaml"
    assert main(["plan", "--model", LLAMA, "--instance", "p5.48xlarge", "--isl", "4096", "--osl", "512", "--rate", "10",
                 "--ttft-ms", "1000", "--itl-ms", "40", "--out", str(out)]) == 0
    assert out.read_text().startswith("# Written by `python -m tooling.sizing plan`")
    config, secrets = engine_config_from_file(out)
    cfg = parse(decode(config), stack="sized")
    best = llama_plan.best
    pre, dec = best.role("prefill"), best.role("decode")
    assert (cfg.serving.prefill.tensor_parallel, cfg.serving.prefill.replicas) == (pre.tp, pre.filled)
    assert (cfg.serving.decode.tensor_parallel, cfg.serving.decode.replicas) == (dec.tp, dec.filled)
    assert cfg.serving.prefill.autoscaling.min_replicas == pre.replicas
    assert cfg.serving.decode.autoscaling.target == dec.keda_target <= planner.KV_USAGE_TARGET_MAX
    assert cfg.serving.prefill.autoscaling.target >= 1
    assert {p.role: p.nodes for p in cfg.gpu_pools} == {"prefill": pre.nodes, "decode": dec.nodes}
    assert cfg.serving.model.parameters_billions == pytest.approx(70.55)  # resolved from the catalog, not written
    assert "parametersBillions" not in yaml.safe_load(out.read_text())["config"]["disagg:serving"]["model"]
    assert role_plan(cfg, "prefill").efa_per_pod == pre.efa_per_pod
    assert stackfile.parse_sized_for(cfg.tags[stackfile.SIZED_FOR_TAG])["rate"] == 10.0


def test_written_stack_keeps_a_base_files_other_keys(tmp_path):
    out = tmp_path / "Pulumi.sized.yaml"
    rc = main(["plan", "--model", LLAMA, "--instance", "p5.48xlarge", "--isl", "4096", "--osl", "512", "--rate", "10",
               "--ttft-ms", "1000", "--itl-ms", "40", "--out", str(out), "--base", str(ROOT / "Pulumi.prod.yaml")])
    assert rc == 0
    doc = yaml.safe_load(out.read_text())["config"]
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert doc["disagg:cluster"] == prod["disagg:cluster"] and doc["disagg:serving"]["router"] == prod["disagg:serving"]["router"]
    assert doc["disagg:serving"]["model"]["servedName"] == "llama-3.3-70b"
    assert doc["disagg:tags"]["environment"] == "prod"


def test_cli_reports_bad_input_without_a_traceback(capsys):
    assert main(["plan", "--model", "someone/unknown", "--isl", "1", "--osl", "1", "--rate", "1", "--ttft-ms", "1", "--itl-ms", "1"]) == 2
    assert "not in the sizing catalog" in capsys.readouterr().err
    assert main(["plan", "--model", LLAMA, "--isl", "1", "--osl", "1", "--ttft-ms", "1", "--itl-ms", "1"]) == 2
    assert "exactly one of --rate" in capsys.readouterr().err
    assert main(["plan", "--model", LLAMA, "--instance", "p5.48xlarge", "--isl", "4096", "--osl", "512", "--rate", "10", "--ttft-ms", "50", "--itl-ms", "40"]) == 1


def test_planned_stack_renders_with_its_predictions(tmp_path):
    out = tmp_path / "Pulumi.sized.yaml"
    assert main(["plan", "--model", LLAMA, "--instance", "p5.48xlarge", "--isl", "4096", "--osl", "512", "--rate", "10",
                 "--ttft-ms", "1000", "--itl-ms", "40", "--out", str(out)]) == 0
    res = render(["--config", str(out), "--out", str(tmp_path / "build")])
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "build" / "summary.md").read_text()
    assert "## Sizing (predicted)" in md and "the configured replicas meet them" in md
    assert "| prefill |" in md and "TTFT p90" in md and "$/Mtok" in md


def test_predict_cli_leaves_unknown_rows_blank(tmp_path):
    cols = ["id", "backend", "model_path", "system", "precision", "mode", "isl", "osl", "gemm_quant_mode", "batch_size", "tp_size", "pp_size"]
    rows = [
        ["known", "vllm", "Qwen/Qwen3-32B", "h100_sxm", "", "agg", "1024", "128", "", "8", "2", "1"],
        ["unknown-model", "vllm", "someone/model", "h100_sxm", "", "agg", "1024", "128", "", "8", "2", "1"],
        ["unknown-system", "vllm", "Qwen/Qwen3-32B", "b200_sxm", "", "agg", "1024", "128", "", "8", "2", "1"],
        ["fp4-on-hopper", "vllm", "Qwen/Qwen3-32B", "h100_sxm", "fp4", "agg", "1024", "128", "nvfp4", "8", "2", "1"],
    ]
    src, dst = tmp_path / "rows.csv", tmp_path / "pred.csv"
    with src.open("w", newline="") as f:
        csv.writer(f).writerows([cols, *rows])
    res = subprocess.run([sys.executable, "-m", "tooling.sizing", "predict", "--in", str(src), "--out", str(dst)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = list(csv.DictReader(dst.open()))
    assert list(out[0]) == ["id", "ttft_ms", "tpot_ms"]
    by = {r["id"]: r for r in out}
    assert float(by["known"]["ttft_ms"]) > 0 and float(by["known"]["tpot_ms"]) > 0
    for rid in ("unknown-model", "unknown-system", "fp4-on-hopper"):
        assert by[rid]["ttft_ms"] == "" and by[rid]["tpot_ms"] == ""
    assert "not in the sizing catalog" in res.stderr and "no calibrated kernels" in res.stderr


def test_config_resolves_parameters_from_the_catalog(base):
    base["serving"]["model"] = {"id": "Qwen/Qwen3-32B", "weightDtype": "bf16"}
    cfg = parse(base, stack="t")
    assert cfg.serving.model.parameters_billions == pytest.approx(32.76)
    base["serving"]["model"] = {"id": "someone/private-model", "weightDtype": "bf16"}
    with pytest.raises(ConfigError) as err:
        parse(base, stack="t")
    issue = next(i for i in err.value.issues if i.key == "disagg:serving.model.parametersBillions")
    assert "not in the sizing model catalog" in issue.problem and "set serving.model.parametersBillions" in issue.fix


def test_written_stack_runs_the_efa_image_given_or_a_placeholder_preview_refuses(tmp_path):
    from stacks import preflight

    argv = ["plan", "--model", LLAMA, "--instance", "p5.48xlarge", "--isl", "4096", "--osl", "512", "--rate", "10",
            "--ttft-ms", "1000", "--itl-ms", "40", "--region", "us-west-2", "--zones", "us-west-2a,us-west-2b"]
    placeholder, mine = tmp_path / "Pulumi.a.yaml", tmp_path / "Pulumi.b.yaml"
    image = "210987654321.dkr.ecr.us-west-2.amazonaws.com/disagg/vllm-efa@sha256:" + "0" * 64
    assert main([*argv, "--out", str(placeholder)]) == 0
    assert main([*argv, "--out", str(mine), "--efa-image", image]) == 0
    cfg_a = parse(decode(engine_config_from_file(placeholder)[0]), stack="a")
    cfg_b = parse(decode(engine_config_from_file(mine)[0]), stack="b")
    assert cfg_a.serving.engine.efa_image == stackfile.placeholder_efa_image("us-west-2")
    assert [i.key for i in preflight.check_engine_images(cfg_a)] == ["disagg:serving.engine.efaImage"]
    assert cfg_b.serving.engine.efa_image == image and preflight.check_engine_images(cfg_b) == []
