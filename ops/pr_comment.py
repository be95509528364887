"""The pull-request comment of the offline render: each stack's summary, policy result and diff against base.

CI renders every stack twice, at the PR head and at the base commit (`python -m stacks.render --stack S --out
DIR`), into `<head>/<stack>/` and `<base>/<stack>/`. This module turns those directories into one Markdown
comment. It only reads files: the comment is posted by a separate workflow that never runs PR code.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- disagg-render -->"
# GitHub rejects comments over 65,536 characters; keep room for the marker and the posting workflow.
MAX_CHARS = 60_000
RENDER_LOG = "render.log"  # what CI saves of a render's output, shown when the render failed


@dataclass
class ResourceChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def counts(self) -> str:
        return f"+{len(self.added)} -{len(self.removed)} ~{len(self.changed)}"


@dataclass
class ManifestDiff:
    files_changed: list[str]
    text: str


def _fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _manifest_files(render_dir: Path | None) -> dict[str, Path]:
    if render_dir is None or not (render_dir / "manifests").is_dir():
        return {}
    root = render_dir / "manifests"
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.yaml"))}


def manifest_diff(base_dir: Path | None, head_dir: Path) -> ManifestDiff:
    """Unified diff of every manifest between two render directories (a missing base diffs against nothing)."""
    base, head = _manifest_files(base_dir), _manifest_files(head_dir)
    changed: list[str] = []
    chunks: list[str] = []
    for name in sorted(set(base) | set(head)):
        old = base[name].read_text().splitlines(keepends=True) if name in base else []
        new = head[name].read_text().splitlines(keepends=True) if name in head else []
        if old == new:
            continue
        changed.append(name)
        diff = difflib.unified_diff(
            old, new, fromfile=f"a/manifests/{name}" if name in base else "/dev/null",
            tofile=f"b/manifests/{name}" if name in head else "/dev/null", n=3,
        )
        chunks.append("".join(line if line.endswith("\n") else line + "\n" for line in diff))
    return ManifestDiff(changed, "".join(chunks))


def _resources(render_dir: Path | None) -> dict[str, dict[str, Any]] | None:
    if render_dir is None:
        return None
    path = render_dir / "resources.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return {r["urn"]: r for r in doc.get("resources", [])}


def _label(record: dict[str, Any]) -> str:
    return f"`{record['type']}` {record['name']}"


def resource_changes(base_dir: Path | None, head_dir: Path) -> ResourceChanges | None:
    head = _resources(head_dir)
    if head is None:
        return None
    base = _resources(base_dir) or {}
    out = ResourceChanges()
    for urn in sorted(set(head) - set(base)):
        out.added.append(_label(head[urn]))
    for urn in sorted(set(base) - set(head)):
        out.removed.append(_label(base[urn]))
    for urn in sorted(set(head) & set(base)):
        old, new = base[urn].get("inputs") or {}, head[urn].get("inputs") or {}
        if old != new:
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            out.changed.append(f"{_label(head[urn])} ({', '.join(keys)})")
    return out


def policy_result(head_dir: Path) -> list[str] | None:
    """Violations of the policy pack's rules over the head render (None when there is no render)."""
    path = head_dir / "resources.json"
    if not path.is_file():
        return None
    from policy import rules

    doc = json.loads(path.read_text())
    return [str(v) for v in rules.evaluate(doc.get("resources", []), doc.get("stack"))]


@dataclass
class StackSection:
    stack: str
    head: str  # mandatory part: summary, policy, resource changes
    diff: ManifestDiff | None
    status_row: str


def _stack_section(stack: str, head_dir: Path, base_dir: Path | None) -> StackSection:
    parts = [f"### `{stack}`"]
    summary = head_dir / "summary.md"
    rendered = (head_dir / "resources.json").is_file()
    if not rendered:
        log = head_dir / RENDER_LOG
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.is_file() else "(no output saved)"
        parts.append("**The render failed.** Last lines of its output:")
        parts.append(_fence(tail))
        return StackSection(stack, "\n\n".join(parts), None, f"| `{stack}` | ❌ failed | – | – | – |")

    if summary.is_file():
        parts.append("<details open><summary>Summary</summary>\n\n" + summary.read_text().strip() + "\n\n</details>")
    violations = policy_result(head_dir) or []
    if violations:
        shown = violations[:30]
        more = f"\n… and {len(violations) - len(shown)} more" if len(violations) > len(shown) else ""
        parts.append(f"**Policy: {len(violations)} violation(s)**\n\n" + "\n".join(f"- {v}" for v in shown) + more)
    changes = resource_changes(base_dir, head_dir)
    if changes and (changes.added or changes.removed or changes.changed):
        lines = [f"- added {x}" for x in changes.added] + [f"- removed {x}" for x in changes.removed]
        lines += [f"- changed {x}" for x in changes.changed]
        if len(lines) > 60:
            lines = lines[:60] + [f"- … {len(lines) - 60} more"]
        parts.append(f"<details><summary>Resources {changes.counts()} against base</summary>\n\n" + "\n".join(lines) + "\n\n</details>")
    diff = manifest_diff(base_dir, head_dir)
    base_note = "" if base_dir is not None and (base_dir / "resources.json").is_file() else " (no base render: everything is new)"
    row = (
        f"| `{stack}` | ✅ | {'✅' if not violations else f'❌ {len(violations)}'} | "
        f"{len(diff.files_changed)}{base_note and ' (no base)'} | {changes.counts() if changes else '–'} |"
    )
    return StackSection(stack, "\n\n".join(parts), diff, row)


def _diff_block(diff: ManifestDiff, budget: int) -> str:
    if not diff.files_changed:
        return "Manifests: no change against base."
    text = diff.text
    note = ""
    if len(text) > budget:
        cut = text[: max(0, budget)]
        cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else ""
        note = f"\n\n_Diff truncated ({len(text) - len(cut):,} characters left out): the full render is in the workflow artifact._"
        text = cut
    files = ", ".join(f"`{f}`" for f in diff.files_changed[:20]) + (" …" if len(diff.files_changed) > 20 else "")
    body = _fence(text, "diff") if text else "_(left out: too long for a comment)_"
    return f"<details><summary>Manifest diff against base: {len(diff.files_changed)} file(s) ({files})</summary>\n\n{body}{note}\n\n</details>"


def build(head_root: Path, base_root: Path | None, *, sha: str = "", base_sha: str = "", run_url: str = "", max_chars: int = MAX_CHARS) -> str:
    """The whole comment for every stack rendered under `head_root` (one directory per stack)."""
    head_root = Path(head_root)
    stacks = sorted(p.name for p in head_root.iterdir() if p.is_dir()) if head_root.is_dir() else []
    sections = [
        _stack_section(s, head_root / s, (Path(base_root) / s) if base_root is not None and (Path(base_root) / s).is_dir() else None)
        for s in stacks
    ]
    intro = [MARKER, "## Offline render"]
    meta = []
    if sha:
        meta.append(f"head `{sha[:12]}`")
    if base_sha:
        meta.append(f"base `{base_sha[:12]}`")
    if run_url:
        meta.append(f"[workflow run]({run_url})")
    intro.append(
        "Rendered under Pulumi mocks, without AWS or secrets" + (f" ({', '.join(meta)})" if meta else "") + ". "
        "A real `pulumi preview` per environment follows for branches of this repository."
    )
    if not sections:
        intro.append("No stack was rendered (no `Pulumi.<stack>.yaml` found, or the render step did not run).")
        return "\n\n".join(intro) + "\n"
    table = ["| stack | render | policy | manifests changed | resources |", "|---|---|---|---|---|"] + [s.status_row for s in sections]
    fixed = "\n\n".join(intro + ["\n".join(table)] + [s.head for s in sections])
    diffs = [s for s in sections if s.diff is not None]
    budget = max_chars - len(fixed) - 400 * max(1, len(diffs))
    share = budget // max(1, len(diffs))
    blocks = {s.stack: _diff_block(s.diff, share) for s in diffs if s.diff is not None}
    body = "\n\n".join(intro + ["\n".join(table)] + [s.head + ("\n\n" + blocks[s.stack] if s.stack in blocks else "") for s in sections])
    if len(body) > max_chars:  # summaries alone exceed the limit: cut at the end, keep the table
        body = body[: max_chars - 120].rsplit("\n", 1)[0] + "\n\n_Comment truncated: see the workflow artifact._"
    return body + "\n"
