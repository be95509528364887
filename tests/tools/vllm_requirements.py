"""The requirements of the installed vllm wheel that its argument parser needs, as pip lines on stdout.

Runs inside .venv-vllm after `pip install --no-deps vllm==<pin>`: reads the wheel's own Requires-Dist (with their
version specifiers) and leaves out the GPU kernel and media packages the parser never imports (flashinfer, tilelang,
the nvidia-* CUDA wheels, numba, torchvision/torchaudio/torchcodec, ...); torch itself is installed before, at the
exact version vLLM pins. Nothing is added that vLLM does not declare.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

NOT_FOR_THE_PARSER = re.compile(
    r"^(torch|torchaudio|torchvision|torchcodec|flashinfer.*|tilelang|nvidia-.*|quack-kernels|humming-kernels|"
    r"tokenspeed-mla|pynvvideocodec|numba|fastsafetensors|instanttensor|zentorch|opencv-python-headless|nvtx|"
    r"mistral-common|lm-format-enforcer|depyf|compressed-tensors|outlines-core)$",
    re.I,
)


def lines() -> list[str]:
    out = []
    for line in requires("vllm") or []:
        r = Requirement(line)
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue  # an extra (bench, audio, ...) or another platform
        if NOT_FOR_THE_PARSER.match(r.name.replace("_", "-")):
            continue
        r.marker = None
        out.append(str(r))
    return out


if __name__ == "__main__":
    sys.stdout.write("\n".join(lines()) + "\n")
