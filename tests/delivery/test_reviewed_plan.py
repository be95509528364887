"""scripts/reviewed_plan.py: the deploy finds the plan the PR's preview saved for this exact tree, or refuses."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from scripts import reviewed_plan
from scripts.reviewed_plan import NoReviewedPlan, artifact_name, fetch

REPO = "acme/disagg"
TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
PLAN = {"manifest": {"time": "2026-11-22T00:00:00Z", "version": "v3.272.0"}, "resourcePlans": {}}


def artifact_zip(stack: str = "prod", tree: str = TREE, *, allow: bool = False, files: dict | None = None) -> bytes:
    meta = reviewed_plan.metadata(stack=stack, tree=tree, commit="c" * 40, pr="42", head_sha="h" * 40, base_sha="b" * 40,
                                  run_url="https://example.invalid/run/7", allow_replace=allow)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in (files if files is not None else {"plan.json": json.dumps(PLAN), "meta.json": json.dumps(meta)}).items():
            z.writestr(name, data)
    return buf.getvalue()


class FakeGitHub:
    def __init__(self, artifacts: list[dict], runs: dict[int, dict], zips: dict[int, bytes]):
        self.artifacts, self.runs, self.zips, self.calls = artifacts, runs, zips, []
        self.labels = ["allow-replace"]

    def __call__(self, path: str):
        self.calls.append(path)
        if path.startswith(f"/repos/{REPO}/actions/artifacts?name="):
            name = path.split("name=", 1)[1].split("&", 1)[0]
            return {"artifacts": [a for a in self.artifacts if a["name"] == name]}
        if path.endswith("/zip"):
            return self.zips[int(path.split("/")[-2])]
        if "/actions/runs/" in path:
            return self.runs[int(path.rsplit("/", 1)[1])]
        if "/pulls/" in path:
            return {"number": int(path.rsplit("/", 1)[1]), "labels": [{"name": n} for n in self.labels]}
        raise AssertionError(path)


def art(i: int, run: int, created: str, *, stack: str = "prod", tree: str = TREE, expired: bool = False) -> dict:
    return {"id": i, "name": artifact_name(stack, tree), "expired": expired, "created_at": created, "workflow_run": {"id": run}}


def preview_run(head_repo: str = REPO, path: str = ".github/workflows/preview.yml", event: str = "pull_request") -> dict:
    return {"path": path, "event": event, "head_repository": {"full_name": head_repo}}


def test_the_newest_plan_of_a_pull_request_preview_is_fetched(tmp_path):
    gh = FakeGitHub(
        [art(1, 10, "2026-11-20T10:00:00Z"), art(2, 11, "2026-11-21T10:00:00Z")],
        {10: preview_run(), 11: preview_run()},
        {1: artifact_zip(), 2: artifact_zip(allow=True)},
    )
    meta = fetch(gh, REPO, "prod", TREE, tmp_path)
    assert meta["artifact_id"] == 2 and meta["allow_replace"] is True and meta["pr"] == 42
    assert json.loads((tmp_path / "plan.json").read_text()) == PLAN


@pytest.mark.parametrize(
    "run, verdict",
    [
        (preview_run(head_repo="mallory/disagg"), "from a pull request of 'mallory/disagg'"),  # a fork's own preview.yml
        (preview_run(path=".github/workflows/ci.yml"), "uploaded by '.github/workflows/ci.yml'"),  # any other workflow
        (preview_run(event="workflow_dispatch"), "not a pull request's preview"),
    ],
)
def test_an_artifact_of_that_name_from_anywhere_else_is_refused(tmp_path, run, verdict):
    gh = FakeGitHub([art(1, 10, "2026-11-21T10:00:00Z")], {10: run}, {1: artifact_zip()})
    with pytest.raises(NoReviewedPlan) as info:
        fetch(gh, REPO, "prod", TREE, tmp_path, commit="d" * 40)
    assert verdict in str(info.value) and not (tmp_path / "plan.json").exists()
    assert not any(c.endswith("/zip") for c in gh.calls), "nothing refused is even downloaded"


def test_no_plan_for_this_tree_says_why_and_what_to_do(tmp_path):
    # main moved after the preview: the only plan is for the tree the PR was previewed at.
    gh = FakeGitHub([art(1, 10, "2026-11-21T10:00:00Z", tree="f" * 40), art(2, 11, "2026-10-01T00:00:00Z", tree="e" * 40, expired=True)], {10: preview_run()}, {})
    with pytest.raises(NoReviewedPlan) as info:
        fetch(gh, REPO, "prod", TREE, tmp_path, commit="d" * 40)
    text = str(info.value)
    assert text.startswith("Deploy refused: no reviewed update plan for stack prod matches this commit.")
    assert f"tree {TREE}" in text and "none exists." in text
    assert "main moved between the pull request's preview and its merge" in text and "fresh-preview" in text


def test_an_expired_plan_is_listed_but_not_used(tmp_path):
    gh = FakeGitHub([art(2, 11, "2026-10-01T00:00:00Z", expired=True)], {}, {})
    with pytest.raises(NoReviewedPlan, match=r"artifact 2 \(run 11, 2026-10-01T00:00:00Z\): expired"):
        fetch(gh, REPO, "prod", TREE, tmp_path)


def test_an_artifact_whose_contents_disagree_with_its_name_is_refused(tmp_path):
    gh = FakeGitHub([art(1, 10, "2026-11-21T10:00:00Z")], {10: preview_run()}, {1: artifact_zip(stack="dev")})
    with pytest.raises(NoReviewedPlan, match="describes stack dev"):
        fetch(gh, REPO, "prod", TREE, tmp_path)
    gh.zips[1] = artifact_zip(files={"plan.json": "{}"})
    with pytest.raises(NoReviewedPlan, match="lacks"):
        fetch(gh, REPO, "prod", TREE, tmp_path)


def test_cli_exit_codes_and_outputs(tmp_path, monkeypatch, capsys):
    out_file = tmp_path / "gh-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out_file))
    gh = FakeGitHub([art(1, 10, "2026-11-21T10:00:00Z")], {10: preview_run()}, {1: artifact_zip(allow=True)})
    args = ["fetch", "--repo", REPO, "--stack", "prod", "--tree", TREE, "--out", str(tmp_path / "plan")]
    assert reviewed_plan.main(args, api=gh) == 0
    assert "allow-replace=true" in out_file.read_text() and "pr=42" in out_file.read_text()
    assert reviewed_plan.main(["fetch", "--repo", REPO, "--stack", "dev", "--tree", TREE, "--out", str(tmp_path / "x")], api=gh) == 1
    assert "::error title=No reviewed plan for dev::Deploy refused" in capsys.readouterr().out
    assert reviewed_plan.main(["meta", "--stack", "prod", "--tree", TREE, "--commit", "c" * 40, "--pr", "7", "--allow-replace", "true"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["stack"] == "prod" and meta["tree"] == TREE and meta["pr"] == 7 and meta["allow_replace"] is True


def test_an_allow_replace_verdict_counts_only_while_the_pr_still_has_the_label(tmp_path):
    from ops.preview_guard import ALLOW_LABEL

    assert reviewed_plan.ALLOW_LABEL == ALLOW_LABEL
    gh = FakeGitHub([art(1, 10, "2026-11-21T10:00:00Z")], {10: preview_run()}, {1: artifact_zip(allow=True)})
    assert fetch(gh, REPO, "prod", TREE, tmp_path)["allow_replace"] is True
    gh.labels = ["review-stack"]  # removed after the plan was made
    assert fetch(gh, REPO, "prod", TREE, tmp_path)["allow_replace"] is False
    gh.zips[1] = artifact_zip(allow=False)
    calls = len(gh.calls)
    assert fetch(gh, REPO, "prod", TREE, tmp_path)["allow_replace"] is False
    assert not any("/pulls/" in c for c in gh.calls[calls:]), "no label lookup when the plan needs none"
