"""Build inputs of the EFA engine images (images/vllm-efa, images/tensorrt-llm-efa), from the versions table: one
place for each image's Dockerfile ARGs (base image, installer version and digest, ...), the repository and the tag it
is pushed under.

`python -m tooling.efa_image --image <name>` prints them as `key=value` lines for $GITHUB_OUTPUT (the reusable
.github/workflows/efa-image.yml, called by vllm-efa-image.yml and tensorrt-llm-efa-image.yml). Each ARG is printed
under its lower-case name, and all of them together as `build_args` (`NAME=value` words), which the workflow passes
as `--build-arg`s: the workflow names no ARG of its own, so it cannot drift from the Dockerfile. Offline tooling,
outside the runtime path.
"""

from __future__ import annotations

import argparse
import re
import sys

from facts.versions import AWS_EFA_INSTALLER_SHA256, AWS_EFA_INSTALLER_VERSION, pin

_EFA_INSTALLER = {"EFA_INSTALLER_VERSION": AWS_EFA_INSTALLER_VERSION, "EFA_INSTALLER_SHA256": AWS_EFA_INSTALLER_SHA256}

# Each image (its name is its directory under images/ and its pin in facts/versions.py, whose `image` is the ECR
# repository and whose version the tag): the serving.engine.kind whose EFA pools run it, and its Dockerfile's ARGs
# with the pins they come from.
IMAGES: dict[str, tuple[str, dict[str, str]]] = {
    "vllm-efa": ("vllm", {"VLLM_IMAGE": pin("vllm").image_ref, **_EFA_INSTALLER}),
    "tensorrt-llm-efa": ("tensorrt-llm", {
        "TRTLLM_IMAGE": pin("tensorrt-llm").image_ref,
        "TRTLLM_VERSION": pin("tensorrt-llm").version,
        "KUBECTL_IMAGE": pin("kubectl").image_ref,
        **_EFA_INSTALLER,
    }),
}
DEFAULT = "vllm-efa"


def context(image: str) -> str:
    return f"images/{image}"


def dockerfile(image: str) -> str:
    return f"{context(image)}/Dockerfile"


DOCKERFILE = dockerfile(DEFAULT)


def build_args(image: str = DEFAULT) -> dict[str, str]:
    """The Dockerfile ARGs of `image` and their values."""
    return dict(IMAGES[image][1])


def inputs(image: str = DEFAULT) -> dict[str, str]:
    engine, args = IMAGES[image]
    p = pin(image)
    for name, value in args.items():
        # One word each: the workflow splits `build_args` on whitespace, and a newline would end the output line.
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not re.fullmatch(r"\S+", value):
            raise ValueError(f"{image}: build arg {name}={value!r} is not NAME=<one word>")
    return {
        **{name.lower(): value for name, value in args.items()},
        "build_args": " ".join(f"{name}={value}" for name, value in args.items()),
        "context": context(image),
        "engine": engine,
        "repository": p.image or "",
        "tag": p.version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.efa_image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", choices=sorted(IMAGES), default=DEFAULT, help=f"which image (default {DEFAULT})")
    args = parser.parse_args(argv)
    for key, value in inputs(args.image).items():
        sys.stdout.write(f"{key}={value}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
