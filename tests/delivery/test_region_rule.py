"""`aws:region` and `disagg:region` must agree."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, parse
from tests.conftest import ROOT, render


def test_aws_region_that_differs_is_an_error_naming_both(base):
    with pytest.raises(ConfigError) as info:
        parse(base, stack="t", aws_region="us-west-2")
    (issue,) = info.value.issues
    assert issue.key == "disagg:region" and issue.value == "us-east-1"
    assert "aws:region (us-west-2)" in issue.problem
    assert "pulumi config set aws:region us-east-1" in issue.fix


def test_same_or_unset_aws_region_passes(base):
    assert parse(base, stack="t", aws_region="us-east-1").region == "us-east-1"
    assert parse(base, stack="t", aws_region=None).region == "us-east-1"


def test_reported_in_the_same_run_as_the_models_errors(base):
    base["gpuPools"][0]["nodes"] = "two"
    with pytest.raises(ConfigError) as info:
        parse(base, stack="t", aws_region="eu-west-1")
    keys = [i.key for i in info.value.issues]
    assert "disagg:region" in keys and "disagg:gpuPools[0].nodes" in keys


def test_the_render_refuses_a_stack_file_with_two_regions(tmp_path):
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    assert "  aws:region: us-east-1\n" in text
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text.replace("  aws:region: us-east-1\n", "  aws:region: eu-central-1\n"))
    proc = render(["--config", str(path), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2
    assert "disagg:region = 'us-east-1': differs from aws:region (eu-central-1)" in proc.stderr
