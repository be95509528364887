"""Offline render: run the real program under Pulumi's mock runtime and write what it would create.

    python -m tooling.render --stack dev            # reads Pulumi.dev.yaml, writes build/dev/
    python -m tooling.render --config my.yaml --out /tmp/x
    python -m tooling.render --stack dev --preview  # as `pulumi preview` of a new stack sees it: build/dev-preview/

Writes resources.json (every registered resource with its inputs and options), urns.txt (the stack's URNs, one
per line, sorted: what tests/golden/urns/<stack>.txt holds), manifests/ (every Kubernetes object the stack
creates), summary.json and summary.md. Needs no cloud credentials and no Pulumi CLI. Exit 0 on success, 2 on invalid
config (the problems on stderr; a YAML syntax error names its line and column), 1 on anything else. The same
input gives byte-identical output. A failed render removes what an earlier run wrote to the output directory, so
no one reads (or CI diffs) a stale summary as if it described the broken config.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from stacks.config import ConfigError, decode, engine_config_from_file, parse
from stacks.config.loader import plaintext_secrets

ROOT = Path(__file__).resolve().parent.parent
NOT_MANIFESTS = ("kubernetes:helm.sh/", "pulumi:providers:")
OUTPUTS = ("resources.json", "urns.txt", "summary.json", "summary.md", "manifests")  # everything a render writes
GOLDEN_URNS = ROOT / "tests" / "golden" / "urns"


def clear_outputs(out: Path) -> None:
    """Remove what a render writes into `out`, and nothing else (`--out` may name a directory holding other files)."""
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def stack_name_of(path: Path) -> str:
    m = re.match(r"^Pulumi\.(.+)\.ya?ml$", path.name)
    return m.group(1) if m else path.stem


def load(path: Path, stack: str, secure_value: str | None = None):
    """Config file -> (engine config, secret keys, validated StackConfig); raises ConfigError."""
    config, secrets = engine_config_from_file(path, secure_value)
    values = decode(config)
    plaintext = plaintext_secrets(values, lambda key: key in secrets)
    cfg = parse(values, stack=stack, plaintext_secrets=plaintext, aws_region=config.get("aws:region"))
    return config, secrets, cfg


def manifests_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Kubernetes objects among the records, as kubectl would apply them, keyed by a stable file name."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        t = r["type"]
        if not t.startswith("kubernetes:") or t.startswith(NOT_MANIFESTS):
            continue
        doc = {k: v for k, v in r["inputs"].items() if v is not None}
        meta = dict(doc.get("metadata") or {})
        meta.setdefault("name", r["name"])
        doc["metadata"] = meta
        ns = meta.get("namespace") or "cluster"
        fname = f"{doc.get('kind', 'object')}-{ns}-{meta['name']}.yaml".lower()
        out[fname] = doc
    return dict(sorted(out.items()))


def golden_urns_of(stack: str) -> Path:
    return GOLDEN_URNS / f"{stack}.txt"


def _alias_urn(record: dict[str, Any], alias: dict[str, Any]) -> str:
    """The URN an alias names: its own, or the record's with the spec's name, type, parent, stack or project."""
    from tooling.harness import engine_urn

    if "urn" in alias:
        return alias["urn"]
    spec = alias.get("spec") or {}
    stack, project = record["urn"].split("::")[0].split(":")[-1], record["urn"].split("::")[1]
    parent = None if spec.get("noParent") else (spec.get("parentUrn") or record["parent"])
    return engine_urn(spec.get("stack") or stack, spec.get("project") or project, parent, spec.get("type") or record["type"], spec.get("name") or record["name"])


def urn_drift(stack: str, golden: list[str], records: list[dict[str, Any]]) -> str | None:
    """None when the render registers exactly the golden URNs; otherwise what changed, for a person to judge.

    A URN in the golden list and not in the render is a resource `pulumi up` deletes from a deployed stack, unless a
    new resource names it as an alias (then it moves and nothing is replaced).
    """
    by_urn = {r["urn"]: r for r in records}
    added = sorted(set(by_urn) - set(golden))
    removed = sorted(set(golden) - set(by_urn))
    if not added and not removed:
        return None
    aliased = {_alias_urn(r, a): r["urn"] for r in records for a in r["options"]["aliases"]}
    moved = [u for u in removed if u in aliased]
    lost = [u for u in removed if u not in aliased]
    created = [u for u in added if u not in {aliased[m] for m in moved}]
    lines = [
        f"{stack}: the render's URNs differ from {golden_urns_of(stack).relative_to(ROOT)} "
        f"({len(added)} added, {len(removed)} removed).",
        "A rename replaces resources: add an alias (or update the golden list if the change is meant: `make urns`)."
        if lost
        else "Nothing is replaced: update the golden list if the change is meant: `make urns`.",
    ]
    if lost:
        lines.append("removed, and no alias names them (`pulumi up` deletes these; a renamed copy is created anew):")
        lines += [f"  - {u}" for u in lost]
    if moved:
        lines.append("moved: removed, and aliased by a new URN (nothing is replaced):")
        lines += [f"  - {u}\n    -> {aliased[u]}" for u in moved]
    if created:
        lines.append("added (`pulumi up` creates these):")
        lines += [f"  + {u}" for u in created]
    return "\n".join(lines)


def write(out: Path, run, cfg, stack: str) -> dict[str, Any]:
    from tooling.summary import summary_json, summary_md

    clear_outputs(out)
    (out / "manifests").mkdir(parents=True)
    records = sorted(run.records, key=lambda r: r["urn"])
    resources = {"project": "disagg", "stack": stack, "resources": records, "outputs": run.outputs}
    (out / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
    (out / "urns.txt").write_text("".join(f"{r['urn']}\n" for r in records))
    manifests = manifests_of(records)
    for fname, doc in manifests.items():
        (out / "manifests" / fname).write_text(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False))
    summary = summary_json(cfg, records, manifests, deploy_warnings=getattr(run, "warnings", []))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "summary.md").write_text(summary_md(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tooling.render", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml from the project root")
    src.add_argument("--config", type=Path, help="any file in the Pulumi.<stack>.yaml format")
    ap.add_argument("--out", type=Path, help="output directory (default build/<stack>, or build/<stack>-preview)")
    ap.add_argument(
        "--preview",
        action="store_true",
        help="run as `pulumi preview` of a new stack: values the cloud computes on create are unknown ([unknown])",
    )
    ap.add_argument(
        "--secure-value",
        metavar="TEXT",
        help="what every `secure:` value decrypts to (default `[secret]`): tests pass a canary and look for it",
    )
    ap.add_argument("--fake-answers", type=Path, metavar="FILE", help="write the shapes of the fake cloud's answers to FILE (tests)")
    args = ap.parse_args(argv)

    path = ROOT / f"Pulumi.{args.stack}.yaml" if args.stack else args.config
    if not path.is_file():
        print(f"error: no such stack file: {path}", file=sys.stderr)
        return 2
    stack = args.stack or stack_name_of(path)
    out = args.out or ROOT / "build" / (f"{stack}-preview" if args.preview else stack)
    try:
        return _render(path, stack, out, preview=args.preview, secure_value=args.secure_value, fake_answers=args.fake_answers)
    except BaseException:
        clear_outputs(out)  # an unexpected failure (exit 1, with its traceback): nothing stale stays behind either
        raise


def _render(path: Path, stack: str, out: Path, *, preview: bool, secure_value: str | None, fake_answers: Path | None) -> int:
    try:
        config, secrets, cfg = load(path, stack, secure_value)
    except ConfigError as err:
        clear_outputs(out)
        print(f"{path.name}: {err}", file=sys.stderr)
        return 2

    import pulumi

    from tooling.harness import run_program

    try:
        run = run_program(ROOT, stack, config, secrets, preview=preview)
    except pulumi.RunError as err:
        clear_outputs(out)
        print(f"{path.name}: {err}", file=sys.stderr)
        return 2
    summary = write(out, run, cfg, stack)
    if fake_answers:
        fake_answers.write_text(json.dumps(run.fake_answers, indent=2, sort_keys=True) + "\n")
    print(
        f"{'previewed' if preview else 'rendered'} {stack}: {summary['resource_count']} resources, {len(list((out / 'manifests').iterdir()))} manifests, "
        f"{summary['gpus_provisioned']} GPUs, ${summary['hourly_cost_usd']:.2f}/h -> {out}"
    )
    return 0


def _exit(code: int) -> None:
    """Exit without tearing down the interpreter.

    Every output file is written and closed by now; what remains is Python freeing the SDK's module graph (tens
    of thousands of generated classes), measured at ~0.5 s of a ~2.8 s render. A CLI has nothing to gain from it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
