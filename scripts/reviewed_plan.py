"""Update plans that travel from a pull request's preview to the deploy of the merge: apply what was reviewed.

The Preview workflow (.github/workflows/preview.yml) runs `pulumi preview --save-plan` on the commit GitHub
builds for the pull request (the PR head merged into its base: what main becomes when it merges) and uploads
the plan as the artifact `plan-<stack>-<tree>`, where <tree> is the git tree hash of that commit: the exact
program and config that were previewed. The deploy after the merge (pulumi-up.yml) looks for the artifact whose
tree is the tree of the main commit it deploys and runs `pulumi up --plan` with it, so the update cannot do
anything the reviewed preview did not show (Pulumi refuses any step beyond the plan: pkg/resource/deploy/
step_generator.go, "is not allowed by the plan").

When there is no such plan the deploy stops with a message saying why and what to do, instead of applying
something unreviewed. That happens when main moved between the preview and the merge (another change landed
first: the merged tree is one nobody previewed), when the change reached main without a preview (a direct
push, a fork's pull request), when the preview failed or its guard refused it, or when the artifact expired.

    python -m scripts.reviewed_plan meta --stack prod ...  > meta.json      (in the preview job)
    python -m scripts.reviewed_plan fetch --repo o/r --stack prod --tree T --out DIR   (in the deploy job)

Only artifacts uploaded by preview.yml for a pull request from this repository are accepted: a fork's pull
request runs workflows too (its own copy of preview.yml included) and could upload an artifact of that name.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

PREVIEW_WORKFLOW = ".github/workflows/preview.yml"
ALLOW_LABEL = "allow-replace"  # ops/preview_guard.py ALLOW_LABEL (a test holds the two together)
PLAN_FILE = "plan.json"
META_FILE = "meta.json"

Api = Callable[[str], Any]  # GET an API path -> parsed JSON (or bytes for a download)


def artifact_name(stack: str, tree: str) -> str:
    return f"plan-{stack}-{tree}"


class NoReviewedPlan(RuntimeError):
    """No plan made by a reviewed preview matches the tree being deployed."""


def github_api(token: str, base: str = "https://api.github.com") -> Api:
    def get(path: str) -> Any:
        req = urllib.request.Request(f"{base}{path}", headers={"Accept": "application/vnd.github+json", "User-Agent": "disagg-deploy"})
        # Not forwarded on the redirect of an artifact download: the signed storage URL refuses a second credential.
        req.add_unredirected_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
            return body if path.endswith("/zip") else json.loads(body)

    return get


@dataclass
class Candidate:
    artifact_id: int
    run_id: int
    created_at: str
    verdict: str = ""


def find(api: Api, repo: str, stack: str, tree: str) -> tuple[Candidate | None, list[Candidate]]:
    """The newest artifact for (stack, tree) from a preview of one of this repository's pull requests."""
    name = artifact_name(stack, tree)
    listing = api(f"/repos/{repo}/actions/artifacts?name={name}&per_page=100")
    found = []
    for a in listing.get("artifacts", []):
        run = a.get("workflow_run") or {}
        c = Candidate(int(a["id"]), int(run.get("id") or 0), a.get("created_at") or "")
        if a.get("expired"):
            c.verdict = "expired"
        found.append(c)
    found.sort(key=lambda c: c.created_at, reverse=True)
    for c in found:
        if c.verdict:
            continue
        run = api(f"/repos/{repo}/actions/runs/{c.run_id}")
        head_repo = (run.get("head_repository") or {}).get("full_name")
        if run.get("path") != PREVIEW_WORKFLOW:
            c.verdict = f"uploaded by {run.get('path')!r}, not {PREVIEW_WORKFLOW}"
        elif run.get("event") != "pull_request":
            c.verdict = f"from a {run.get('event')!r} run, not a pull request's preview"
        elif head_repo != repo:
            c.verdict = f"from a pull request of {head_repo!r}, not of {repo}"
        else:
            c.verdict = "accepted"
            return c, found
    return None, found


def refusal(repo: str, stack: str, tree: str, commit: str, candidates: list[Candidate]) -> str:
    lines = [
        f"Deploy refused: no reviewed update plan for stack {stack} matches this commit.",
        f"  commit {commit or '?'}, tree {tree}",
        f"  looked for the artifact {artifact_name(stack, tree)} from {PREVIEW_WORKFLOW} on a pull request of {repo}",
    ]
    if candidates:
        lines += [f"  - artifact {c.artifact_id} (run {c.run_id}, {c.created_at}): {c.verdict}" for c in candidates]
    else:
        lines.append("  none exists.")
    lines += [
        "A plan applies only to the exact tree that was previewed. This one was not, because either:",
        "  - main moved between the pull request's preview and its merge (another change landed first), so the merged",
        "    tree is one nobody previewed;",
        "  - the change reached main without a preview (a direct push, a fork's pull request, a preview that failed or",
        "    that the guard refused);",
        "  - the plan expired (artifacts are kept 30 days).",
        "What to do: Actions -> Deploy -> Run workflow with plan = fresh-preview. It previews main as it is, saves",
        "that plan, shows it in the run, and applies exactly it after the environment's approval (prod: read the",
        "preview before approving). Next time, update the branch with main before merging, so its preview is of",
        "the tree that lands (branch protection: require branches to be up to date).",
    ]
    return "\n".join(lines)


def fetch(api: Api, repo: str, stack: str, tree: str, out: Path, *, commit: str = "") -> dict[str, Any]:
    """Download the reviewed plan for (stack, tree) into `out`; NoReviewedPlan when there is none."""
    chosen, candidates = find(api, repo, stack, tree)
    if chosen is None:
        raise NoReviewedPlan(refusal(repo, stack, tree, commit, candidates))
    data = api(f"/repos/{repo}/actions/artifacts/{chosen.artifact_id}/zip")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        if not {PLAN_FILE, META_FILE} <= names:
            raise NoReviewedPlan(f"artifact {chosen.artifact_id} lacks {PLAN_FILE} or {META_FILE} (has {sorted(names)})")
        out.mkdir(parents=True, exist_ok=True)
        plan, meta_bytes = z.read(PLAN_FILE), z.read(META_FILE)
    meta = json.loads(meta_bytes)
    if meta.get("stack") != stack or meta.get("tree") != tree:
        raise NoReviewedPlan(f"artifact {chosen.artifact_id} describes stack {meta.get('stack')} tree {meta.get('tree')}, not {stack} {tree}")
    json.loads(plan)  # a plan is JSON; anything else is not what the preview wrote
    if meta.get("allow_replace"):
        # The label may have been removed since this plan was made (that re-runs the preview, whose guard then
        # fails and uploads nothing, leaving this older plan of the same tree): the label counts only if the pull
        # request still carries it.
        pr = api(f"/repos/{repo}/pulls/{meta.get('pr')}") if meta.get("pr") else {}
        labels = {lb.get("name") for lb in pr.get("labels") or []}
        meta["allow_replace"] = ALLOW_LABEL in labels
    (out / PLAN_FILE).write_bytes(plan)
    (out / META_FILE).write_bytes(meta_bytes)
    meta["artifact_id"], meta["artifact_run_id"] = chosen.artifact_id, chosen.run_id
    return meta


def metadata(*, stack: str, tree: str, commit: str, pr: str, head_sha: str, base_sha: str, run_url: str, allow_replace: bool) -> dict[str, Any]:
    return {
        "stack": stack, "tree": tree, "commit": commit, "pr": int(pr) if str(pr).isdigit() else None,
        "head_sha": head_sha, "base_sha": base_sha, "run_url": run_url, "allow_replace": bool(allow_replace),
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _github_output(pairs: dict[str, str]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            for k, v in pairs.items():
                f.write(f"{k}={v}\n")


def main(argv: list[str] | None = None, *, api: Api | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.reviewed_plan", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("meta", help="print the metadata the preview stores beside its plan")
    for flag in ("--stack", "--tree", "--commit"):
        m.add_argument(flag, required=True)
    for flag in ("--pr", "--head-sha", "--base-sha", "--run-url"):
        m.add_argument(flag, default="")
    m.add_argument("--allow-replace", default="false", help="true when the PR carries the allow-replace label")
    f = sub.add_parser("fetch", help="download the reviewed plan for a stack and tree, or refuse")
    f.add_argument("--repo", required=True)
    f.add_argument("--stack", required=True)
    f.add_argument("--tree", required=True)
    f.add_argument("--commit", default="")
    f.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    if args.command == "meta":
        print(json.dumps(metadata(
            stack=args.stack, tree=args.tree, commit=args.commit, pr=args.pr, head_sha=args.head_sha,
            base_sha=args.base_sha, run_url=args.run_url, allow_replace=args.allow_replace == "true",
        ), indent=2, sort_keys=True))
        return 0
    if api is None:
        token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
        if not token:
            print("error: set GH_TOKEN (a token that may read this repository's actions artifacts)", file=sys.stderr)
            return 2
        api = github_api(token, os.environ.get("GITHUB_API_URL", "https://api.github.com"))
    try:
        meta = fetch(api, args.repo, args.stack, args.tree, args.out, commit=args.commit)
    except NoReviewedPlan as exc:
        print(f"::error title=No reviewed plan for {args.stack}::{str(exc).splitlines()[0]}")
        print(exc)
        return 1
    print(
        f"reviewed plan for {args.stack}: artifact {meta['artifact_id']} from PR #{meta.get('pr')} "
        f"(head {str(meta.get('head_sha'))[:12]}, previewed {meta.get('created_at')}, {meta.get('run_url')})"
    )
    _github_output({"allow-replace": "true" if meta.get("allow_replace") else "false", "pr": str(meta.get("pr") or "")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
