"""Build inputs of the EFA engine image (images/vllm-efa), from the versions table: one place for the base image,
the installer version and digest, and the tag the image is pushed under.

`python -m tooling.efa_image` prints them as `key=value` lines for $GITHUB_OUTPUT (the vllm-efa-image workflow).
Offline tooling, outside the runtime path.
"""

from __future__ import annotations

import sys

from facts.versions import AWS_EFA_INSTALLER_SHA256, AWS_EFA_INSTALLER_VERSION, pin

DOCKERFILE = "images/vllm-efa/Dockerfile"


def inputs() -> dict[str, str]:
    efa = pin("vllm-efa")
    return {
        "vllm_image": pin("vllm").image_ref,
        "efa_installer_version": AWS_EFA_INSTALLER_VERSION,
        "efa_installer_sha256": AWS_EFA_INSTALLER_SHA256,
        "repository": efa.image or "",
        "tag": efa.version,
    }


def main(argv: list[str] | None = None) -> int:
    for key, value in inputs().items():
        sys.stdout.write(f"{key}={value}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
