"""The render summary's sizing section, and the planner staying off the Pulumi program's import path."""

from __future__ import annotations

import json
import subprocess
import sys

from stacks.config import parse
from tooling.sizing import report
from tooling.sizing.stackfile import SIZED_FOR_TAG
from tests.conftest import ROOT


def test_without_a_workload_only_capacity_is_reported(base):
    s = report.role_sizing(parse(base, stack="t"))
    assert not s["predicted"] and SIZED_FOR_TAG in s["reason"]
    assert s["roles"]["decode"]["kv_tokens_per_replica"] > 0
    md = "\n".join(report.markdown(s))
    assert "No latency prediction" in md and "ms" not in md  # no number that needs a workload


def test_with_the_tag_each_role_gets_its_predictions(base):
    base["tags"] = {SIZED_FOR_TAG: "isl=4096 osl=512 rate=4 ttft-ms=1000 itl-ms=40 p=90"}
    s = report.role_sizing(parse(base, stack="t"))
    assert s["predicted"] and s["workload"]["rate"] == 4
    pre, dec = s["roles"]["prefill"], s["roles"]["decode"]
    assert pre["replicas"] == 2 and dec["replicas"] == 4  # the configured replicas, not a plan's
    assert pre["ttft_p_ms"] > pre["ttft_mean_ms"] > 0 and dec["itl_p_ms"] >= dec["itl_mean_ms"] > 0
    assert 0 < dec["kv_headroom"] < 1
    # One p5 per role at 4 req/s x 512 output tokens: each pool's dollars per million output tokens.
    assert pre["usd_per_mtok"] == round(55.04 / (4 * 512 * 3600 / 1e6), 3)
    assert s["usd_per_mtok"] == round(2 * 55.04 / (4 * 512 * 3600 / 1e6), 3)
    assert s["kv_transfer"]["share_of_ttft_slo"] < 0.05
    md = "\n".join(report.markdown(s))
    assert "| prefill | 2 |" in md and "| decode | 4 |" in md and "TTFT p90" in md


def test_a_bad_tag_or_an_uncatalogued_model_predicts_nothing(base):
    base["tags"] = {SIZED_FOR_TAG: "isl=lots"}
    s = report.role_sizing(parse(base, stack="t"))
    assert not s["predicted"] and "isl='lots'" in s["workload_error"]
    base["serving"]["model"] = {"id": "someone/model", "parametersBillions": 70.0, "weightDtype": "fp8"}
    s = report.role_sizing(parse(base, stack="t"))
    assert not s["predicted"] and "not in the sizing catalog" in s["reason"] and not s["roles"]


def test_loading_the_stack_config_imports_no_planner():
    # The Pulumi program parses the config (which may resolve parametersBillions from the catalog); it must not
    # pull in the planner, the calibration or any third-party numeric package.
    code = (
        "import json, sys; from stacks.config import parse; from tests.conftest import BASE; import copy; "
        "cfg = copy.deepcopy(BASE); cfg['serving']['model'].pop('parametersBillions'); parse(cfg, stack='t'); "
        "import stacks.stack; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('tooling', 'numpy', 'pandas', 'pyarrow')))))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
