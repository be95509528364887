"""The EFA engine image workflows: one caller per image (its own paths filter) around the shared efa-image.yml, whose
steps are run here against fake `aws` and `docker` so the build args, the immutable-tag handling and the summary line
are checked as the runner would execute them."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.delivery.test_workflows import WORKFLOWS, load, run_code, steps, uses
from tooling.efa_image import IMAGES, context, dockerfile, inputs

SHARED = "efa-image.yml"
CALLERS = {image: f"{image}-image.yml" for image in IMAGES}


def dockerfile_args(image: str) -> dict[str, str]:
    """The ARG names of the image's Dockerfile and their defaults (instructions only, comments skipped)."""
    text = (ROOT / dockerfile(image)).read_text()
    return dict(re.findall(r"^ARG ([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", text, re.M))


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_has_its_caller_with_its_own_paths_filter(image):
    wf = load(CALLERS[image])
    push = wf["on"]["push"]
    assert push["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    # What shapes the image, and nothing of the other image: a change to one image's files starts only its build.
    assert set(push["paths"]) == {
        f"{context(image)}/**", "facts/versions.py", "tooling/efa_image.py",
        f".github/workflows/{CALLERS[image]}", f".github/workflows/{SHARED}",
    }
    for other in set(IMAGES) - {image}:
        assert not any(p.startswith(context(other)) for p in push["paths"])
    for path in push["paths"]:
        assert list(ROOT.glob(path)), f"{CALLERS[image]}: paths entry {path} matches no file"
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["uses"] == f"./.github/workflows/{SHARED}" and job["with"] == {"image": image}
    assert job["permissions"] == {"contents": "read", "id-token": "write"}, "caps the called workflow's token"


def test_the_shared_workflow_is_called_only_and_careful():
    wf = load(SHARED)
    assert set(wf["on"]) == {"workflow_call"}
    assert wf["on"]["workflow_call"]["inputs"]["image"]["required"] is True
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["if"] == "vars.AWS_IMAGE_ROLE_ARN != ''"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["concurrency"] == {"group": "efa-image-${{ inputs.image }}", "cancel-in-progress": False}
    (checkout,) = uses(job, "actions/checkout")
    assert checkout["with"]["persist-credentials"] is False
    (creds,) = uses(job, "aws-actions/configure-aws-credentials")
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_IMAGE_ROLE_ARN }}"
    text = (WORKFLOWS / SHARED).read_text()
    # It names no ARG and no version: both come from tooling/efa_image.py, so they cannot drift from the table.
    for args in (a for _, a in IMAGES.values()):
        for name, value in args.items():
            assert name not in text and value not in text, f"{SHARED} hard-codes {name} or its value"
    # Every output of the inputs step it reads exists for every image.
    for key in set(re.findall(r"steps\.pins\.outputs\.([a-z_]+)", text)):
        for image in IMAGES:
            assert key in inputs(image), f"{SHARED} reads steps.pins.outputs.{key}, which {image} does not print"
    free = next(s for s in steps(job) if "rm -rf" in run_code(s))
    build = next(s for s in steps(job) if "docker buildx build" in run_code(s))
    assert free["if"] == build["if"] == "steps.ecr.outputs.digest == ''", "an existing tag costs no disk clean-up, no build"


# ---- the steps, run against fakes ---------------------------------------------------------------------------------

ACCOUNT, REGION = "123456789012", "us-east-1"
BUILT = "sha256:" + "b" * 64
EXISTING = "sha256:" + "e" * 64

FAKE_AWS = r"""#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
case "$1 $2" in
  "sts get-caller-identity") echo "$FAKE_ACCOUNT" ;;
  "ecr describe-repositories") [ -n "$FAKE_REPO_EXISTS" ] || { echo "RepositoryNotFoundException" >&2; exit 254; } ;;
  "ecr create-repository") ;;
  "ecr describe-images") if [ -n "$FAKE_DIGEST" ]; then echo "$FAKE_DIGEST"; else echo "ImageNotFoundException" >&2; exit 254; fi ;;
  "ecr get-login-password") echo password ;;
  *) echo "fake aws: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_DOCKER = r"""#!/usr/bin/env bash
printf 'docker' >> "$FAKE_LOG"; printf ' <%s>' "$@" >> "$FAKE_LOG"; echo >> "$FAKE_LOG"
if [ "$1" = login ]; then cat >/dev/null; exit 0; fi
if [ "$1 $2" = "buildx build" ]; then
  while [ $# -gt 0 ]; do
    if [ "$1" = --metadata-file ]; then printf '{"containerimage.digest": "%s"}' "$FAKE_BUILT" > "$2"; fi
    shift
  done
  exit 0
fi
echo "fake docker: unexpected $*" >&2; exit 2
"""


def _expr(expr: str, ctx: dict) -> str:
    """The few expression forms the workflow uses: `a || b`, `a == 'x'`, context paths and string literals."""
    expr = expr.strip()
    if "||" in expr:
        return next((v for v in (_expr(p, ctx) for p in expr.split("||")) if v), "")
    if "==" in expr:
        left, right = expr.split("==")
        return "true" if _expr(left, ctx) == _expr(right, ctx) else ""
    if expr.startswith("'"):
        return expr.strip("'")
    node = ctx
    for part in expr.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, str) else ""


def _subst(value: str, ctx: dict) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _expr(m.group(1), ctx), str(value))


def run_job(image: str, tmp_path: Path, repo_exists: bool, digest: str | None, pins: dict | None = None) -> tuple[str, str]:
    """Runs the shared job's `run:` steps in order, as the runner would (bash -e, env from the expressions, outputs
    from $GITHUB_OUTPUT). The disk clean-up step is checked by its condition only: it deletes runner directories."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (bin_dir / "python").symlink_to(sys.executable)
    log, summary = tmp_path / "log", tmp_path / "summary.md"
    (job,) = load(SHARED)["jobs"].values()
    ctx: dict = {"inputs": {"image": image}, "vars": {"AWS_IMAGE_ROLE_ARN": "arn:aws:iam::1:role/x"}, "steps": {}}
    ctx["env"] = {k: _subst(v, ctx) for k, v in job["env"].items()}
    base = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary), "FAKE_LOG": str(log), "FAKE_ACCOUNT": ACCOUNT, "FAKE_BUILT": BUILT,
        "FAKE_REPO_EXISTS": "1" if repo_exists else "", "FAKE_DIGEST": digest or "", **ctx["env"],
    }
    for i, step in enumerate(steps(job)):
        if "run" not in step or ("if" in step and not _expr(step["if"], ctx)):
            continue
        if "rm -rf" in run_code(step):
            continue
        out = tmp_path / f"out{i}"
        out.write_text("")
        env = {**base, **{k: _subst(v, ctx) for k, v in (step.get("env") or {}).items()}, "GITHUB_OUTPUT": str(out)}
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"step {step.get('name')}: {proc.stdout}{proc.stderr}"
        if "id" in step:
            ctx["steps"][step["id"]] = {"outputs": dict(ln.split("=", 1) for ln in out.read_text().splitlines() if ln)}
            if step["id"] == "pins":
                ctx["steps"]["pins"]["outputs"].update(pins or {})
    return (log.read_text() if log.exists() else ""), (summary.read_text() if summary.exists() else "")


def _config_line(image: str, digest: str) -> str:
    return f"pulumi config set --path 'disagg:serving.engine.efaImage' {ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/disagg/{image}@{digest}"


@pytest.mark.parametrize("image", IMAGES)
def test_a_new_tag_is_built_with_exactly_the_dockerfile_args_into_an_immutable_repository(image, tmp_path):
    log, summary = run_job(image, tmp_path, repo_exists=False, digest=None)
    assert "aws ecr create-repository --repository-name disagg/" + image + " --image-tag-mutability IMMUTABLE" in log
    assert "--image-scanning-configuration scanOnPush=true" in log
    (build,) = [ln for ln in log.splitlines() if ln.startswith("docker <buildx> <build>")]
    argv = re.findall(r"<([^>]*)>", build)
    assert argv[2] == context(image)
    passed = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--build-arg")
    # The names the build passes are the Dockerfile's ARGs, no more, no fewer, at the Dockerfile's defaults.
    assert passed == dockerfile_args(image)
    tag = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/disagg/{image}:{inputs(image)['tag']}"
    assert argv[argv.index("--tag") + 1] == tag and "--push" in argv
    assert _config_line(image, BUILT) in summary
    assert f"serving.engine.kind {IMAGES[image][0]}" in summary


@pytest.mark.parametrize("image", IMAGES)
def test_an_existing_tag_is_never_rebuilt_and_its_digest_is_reported(image, tmp_path):
    log, summary = run_job(image, tmp_path, repo_exists=True, digest=EXISTING)
    assert "docker" not in log and "create-repository" not in log
    assert _config_line(image, EXISTING) in summary


def test_the_harness_would_catch_a_build_arg_the_dockerfile_lacks_or_a_missing_one(tmp_path):
    # The same run with the inputs step's build_args changed: the comparison above must fail.
    args = inputs("tensorrt-llm-efa")["build_args"].split()
    wrong = " ".join(args[1:] + ["NOT_AN_ARG=x"])  # TRTLLM_IMAGE dropped, an unknown ARG added
    log, _ = run_job("tensorrt-llm-efa", tmp_path, repo_exists=True, digest=None, pins={"build_args": wrong})
    (build,) = [ln for ln in log.splitlines() if ln.startswith("docker <buildx> <build>")]
    argv = re.findall(r"<([^>]*)>", build)
    passed = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--build-arg")
    assert passed != dockerfile_args("tensorrt-llm-efa")
    assert "TRTLLM_IMAGE" not in passed and passed["NOT_AN_ARG"] == "x"


def test_ci_lints_every_image_dockerfile():
    lint = load("ci.yml")["jobs"]["lint"]
    (code,) = [run_code(s) for s in steps(lint) if "hadolint" in run_code(s)]
    assert sorted(code.split()[1:]) == sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("images/*/Dockerfile"))
    assert sorted(dockerfile(image) for image in IMAGES) == sorted(code.split()[1:]), "every image has its workflow"
