"""`python -m ops <command>`: the entry point CI workflows (and people, see docs/runbook.md) call.

  comment        build the PR comment from head and base render directories
  guard          fail an update plan (`pulumi preview --save-plan`) or `pulumi preview --json` that replaces or
                 deletes the cluster, a GPU node group, a subnet, the VPC, a KMS key or the Kubernetes provider
  policy         run the policy pack's rules over rendered resources.json files (offline)
  review-up      create/update the review stack pr-<n> from the cheap profile and `pulumi up` it
  review-destroy tear down pr-<n>: pre-destroy cleanup, destroy, sweep, stack rm
  janitor        destroy ephemeral stacks past their expiry
  teardown       the cleanup steps alone, for any stack: --phase pre before destroy, --phase unprotect (lift
                 `protect`), --phase sweep after
  target         print a stack's cluster name and region (from its Pulumi.<stack>.yaml)
  verify         prove on a deployed stack that KV moves from prefill to decode over EFA (docs/runbook.md)
  preflight      the deploy checks of `pulumi preview` (offerings, quotas, reservations, CIDRs) against the account
  taggable-types regenerate policy/taggable-aws-types.txt from the installed pulumi-aws
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _secret_env(pairs: list[str]) -> dict[str, str]:
    """`disagg:hfToken=HF_TOKEN` -> {"disagg:hfToken": os.environ["HF_TOKEN"]} (unset variables are skipped)."""
    out = {}
    for pair in pairs:
        key, _, var = pair.partition("=")
        if not key or not var:
            raise SystemExit(f"--secret-env expects KEY=ENV_VAR, got {pair!r}")
        value = os.environ.get(var)
        if value:
            out[key] = value
    return out


def cmd_comment(args: argparse.Namespace) -> int:
    from ops import pr_comment

    body = pr_comment.build(
        Path(args.head), Path(args.base) if args.base else None, sha=args.sha, base_sha=args.base_sha, run_url=args.run_url
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(body)
    print(f"wrote {args.out} ({len(body)} characters)")
    return 0


def cmd_guard(args: argparse.Namespace) -> int:
    from ops import preview_guard

    text = sys.stdin.read() if args.preview == "-" else Path(args.preview).read_text()
    code, report = preview_guard.check(text, stack=args.stack, allow=args.allow_replace)
    print(report)
    return code


def cmd_policy(args: argparse.Namespace) -> int:
    from policy import rules

    failed = 0
    for path in args.resources:
        doc = json.loads(Path(path).read_text())
        stack = doc.get("stack") or ""
        violations = rules.evaluate(doc.get("resources", []), stack or None)
        print(f"{path} (stack {stack or '?'}): {len(violations)} violation(s)")
        for v in violations:
            print(f"  - {v}")
        failed += bool(violations)
    return 1 if failed else 0


def _lifecycle(args: argparse.Namespace):
    from ops.lifecycle import Lifecycle

    return Lifecycle(
        work_dir=Path(args.work_dir), profile=args.profile, policy_packs=tuple(args.policy_pack or ()), org=args.org or "",
        secrets_provider=args.secrets_provider or "",
    )


def cmd_review_up(args: argparse.Namespace) -> int:
    lc = _lifecycle(args)
    result = lc.review_up(args.pr, now=datetime.now(timezone.utc), ttl_hours=args.ttl_hours, secrets=_secret_env(args.secret_env or []))
    print(f"review stack pr-{args.pr}: {result.summary.result}")
    return 0


def cmd_review_destroy(args: argparse.Namespace) -> int:
    from ops.lifecycle import TeardownIncomplete

    try:
        _lifecycle(args).review_destroy(args.pr)
    except TeardownIncomplete as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_janitor(args: argparse.Namespace) -> int:
    entries = _lifecycle(args).janitor(datetime.now(timezone.utc), args.ttl_hours, dry_run=args.dry_run)
    for e in entries:
        print(f"{e.stack}: {e.action} {e.detail}".rstrip())
    if not entries:
        print("no ephemeral stacks")
    return 1 if any(e.action == "failed" for e in entries) else 0


def cmd_teardown(args: argparse.Namespace) -> int:
    from ops import teardown
    from ops.kube import KubeError, Kubectl

    if args.phase == "unprotect":
        from ops.lifecycle import EPHEMERAL, Lifecycle

        if not args.stack:
            raise SystemExit("--phase unprotect needs --stack")
        short = args.stack.rsplit("/", 1)[-1]
        if not EPHEMERAL.match(short) and args.confirm_stack != args.stack:
            raise SystemExit(
                f"{args.stack} is not an ephemeral stack: lifting its protection lets `pulumi destroy` delete its cluster, "
                f"VPC and GPU node groups. Repeat the stack name to confirm: --confirm-stack {args.stack}"
            )
        lc = Lifecycle(work_dir=Path(args.work_dir))
        lc.unprotect(lc.workspace(), args.stack, ephemeral_only=False)
        print(f"{args.stack}: every resource unprotected (`pulumi state unprotect --all --yes -s {args.stack}`)")
        return 0
    if not args.cluster or not args.region:
        raise SystemExit(f"--phase {args.phase} needs --cluster and --region")
    aws = teardown.AwsClients.for_region(args.region)
    ok = True
    if args.phase == "pre":
        try:
            kube = Kubectl(args.kubeconfig) if args.kubeconfig else Kubectl.for_eks(args.cluster, args.region)
        except KubeError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            kube = None
        pre = teardown.pre_destroy(kube, aws, args.cluster, timeout=args.timeout)
        print(pre.render())
        ok = ok and pre.ok
    if args.phase == "sweep":
        report = teardown.sweep(aws, args.cluster, args.stack, attempts=args.attempts)
        print(report.render())
        ok = ok and report.ok
    return 0 if ok else 1


def cmd_target(args: argparse.Namespace) -> int:
    from ops.lifecycle import load_profile, target_of

    profile = load_profile(Path(args.work_dir), args.stack)
    t = target_of(args.stack, profile.values)
    print(json.dumps({"stack": t.stack, "cluster": t.cluster, "region": t.region}) if args.json else f"{t.cluster} {t.region}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ops import verify

    return verify.command(args)


def cmd_preflight(args: argparse.Namespace) -> int:
    from ops import preflight

    return preflight.main(args.stack, config=args.config, recorded=args.recorded)


def cmd_taggable(args: argparse.Namespace) -> int:
    from ops import taggable

    text = taggable.render(taggable.scan(), taggable.installed_version())
    if args.write:
        taggable.LIST_PATH.write_text(text)
        print(f"wrote {taggable.LIST_PATH}")
    else:
        sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("comment", help="build the PR comment body")
    c.add_argument("--head", required=True, help="directory with one render directory per stack (PR head)")
    c.add_argument("--base", help="the same for the base commit (optional)")
    c.add_argument("--out", required=True)
    c.add_argument("--sha", default="")
    c.add_argument("--base-sha", default="")
    c.add_argument("--run-url", default="")
    c.set_defaults(fn=cmd_comment)

    g = sub.add_parser("guard", help="check an update plan or `pulumi preview --json` output for replacements and deletions")
    g.add_argument("preview", help="the plan file of `pulumi preview --save-plan`, or `pulumi preview --json` output; - for stdin")
    g.add_argument("--stack", default="")
    g.add_argument("--allow-replace", action="store_true", help="report but do not fail (the PR has the allow-replace label)")
    g.set_defaults(fn=cmd_guard)

    pol = sub.add_parser("policy", help="run the policy rules over rendered resources.json files")
    pol.add_argument("resources", nargs="+")
    pol.set_defaults(fn=cmd_policy)

    def lifecycle_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--work-dir", default=str(ROOT), help="the project directory (Pulumi.yaml)")
        sp.add_argument("--profile", default="dev", help="stack file whose config review stacks copy (default dev)")
        sp.add_argument("--policy-pack", action="append", help="policy pack directory to enforce on `up` (repeatable)")
        sp.add_argument("--org", default=os.environ.get("PULUMI_ORG", ""), help="Pulumi Cloud organization of the stacks (default $PULUMI_ORG)")
        sp.add_argument(
            "--secrets-provider", default=os.environ.get("PULUMI_SECRETS_PROVIDER", ""),
            help="secrets provider of new review stacks, e.g. awskms://alias/disagg-review (default $PULUMI_SECRETS_PROVIDER)",
        )

    up = sub.add_parser("review-up", help="create/update and deploy the review stack of a PR")
    up.add_argument("--pr", required=True, type=int)
    up.add_argument("--ttl-hours", type=float, default=24)
    up.add_argument("--secret-env", action="append", help="KEY=ENV_VAR: set config KEY as a secret from ENV_VAR")
    lifecycle_args(up)
    up.set_defaults(fn=cmd_review_up)

    down = sub.add_parser("review-destroy", help="tear down the review stack of a PR")
    down.add_argument("--pr", required=True, type=int)
    lifecycle_args(down)
    down.set_defaults(fn=cmd_review_destroy)

    j = sub.add_parser("janitor", help="destroy ephemeral stacks past their expiry")
    j.add_argument("--ttl-hours", type=float, default=24, help="expiry of stacks without a disagg:expires-at tag, from their last update")
    j.add_argument("--dry-run", action="store_true")
    lifecycle_args(j)
    j.set_defaults(fn=cmd_janitor)

    t = sub.add_parser("teardown", help="pre-destroy cleanup, unprotect, and post-destroy sweep for one stack")
    t.add_argument("--cluster", help="the stack's EKS cluster (pre, sweep)")
    t.add_argument("--region", help="the stack's region (pre, sweep)")
    t.add_argument("--stack", help="sweep: also resources tagged disagg.io/stack=<stack>; unprotect: the stack")
    t.add_argument(
        "--phase", choices=("pre", "unprotect", "sweep"), required=True,
        help="pre: before `pulumi destroy` (in-cluster cleanup); unprotect: `pulumi state unprotect --all --yes -s "
        "<stack>`, so destroy may delete the protected cluster, VPC, subnets, KMS key and node groups; sweep: after "
        "destroy (deletes what is still tagged for the stack)",
    )
    t.add_argument("--confirm-stack", help="unprotect of a stack that is not pr-<n>/ci-<n>: the stack name again")
    t.add_argument("--work-dir", default=str(ROOT), help="the project directory (Pulumi.yaml)")
    t.add_argument("--kubeconfig", help="use this kubeconfig instead of `aws eks update-kubeconfig`")
    t.add_argument("--timeout", type=float, default=900)
    t.add_argument("--attempts", type=int, default=5)
    t.set_defaults(fn=cmd_teardown)

    tg = sub.add_parser("target", help="print the cluster and region of a stack file")
    tg.add_argument("--stack", required=True)
    tg.add_argument("--work-dir", default=str(ROOT))
    tg.add_argument("--json", action="store_true")
    tg.set_defaults(fn=cmd_target)

    v = sub.add_parser("verify", help="prove on a deployed stack that KV moves over EFA; print TTFT/ITL of a short load run")
    v.add_argument("--stack", required=True, help="the stack (reads Pulumi.<stack>.yaml for names and expectations)")
    v.add_argument("--work-dir", default=str(ROOT), help="the project directory (Pulumi.yaml)")
    v.add_argument("--kubeconfig", help="use this kubeconfig instead of `aws eks update-kubeconfig` for the stack's cluster")
    v.add_argument("--router-url", help="reach the router here (e.g. the internal NLB hostname) instead of a kubectl port-forward")
    v.add_argument("--prompt-tokens", type=int, default=4000, help="approximate length of the long prompt (default 4000)")
    v.add_argument("--max-tokens", type=int, default=32, help="tokens generated for the long prompt (default 32)")
    v.add_argument("--load-requests", type=int, default=16, help="requests of the load run, 0 to skip it (default 16)")
    v.add_argument("--concurrency", type=int, default=4, help="concurrent streams in the load run (default 4)")
    v.add_argument("--load-prompt-tokens", type=int, default=1000, help="approximate prompt length in the load run (default 1000)")
    v.add_argument("--load-max-tokens", type=int, default=64, help="tokens generated per load-run request (default 64)")
    v.add_argument("--settle-seconds", type=float, default=30, help="how long to wait for the metrics to show the transfers (default 30)")
    v.add_argument("--request-timeout", type=float, default=600, help="seconds without data before a request is abandoned (default 600)")
    v.set_defaults(fn=cmd_verify)
    pf = sub.add_parser("preflight", help="run the deploy checks of `pulumi preview` against the account (read-only)")
    src = pf.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml from the project root")
    src.add_argument("--config", help="any file in the Pulumi.<stack>.yaml format")
    pf.add_argument("--recorded", help="answer from recorded API responses (JSON, as tests/fixtures/preflight/*.json) instead of AWS")
    pf.set_defaults(fn=cmd_preflight)

    tt = sub.add_parser("taggable-types", help="regenerate the taggable AWS types list")
    tt.add_argument("--write", action="store_true")
    tt.set_defaults(fn=cmd_taggable)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
