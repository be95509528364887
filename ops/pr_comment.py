"""The pull-request comment of the offline render: what the change costs, then each stack's policy result and diff.

CI renders every stack twice, at the PR head and at the base commit (`python -m tooling.render --stack S --out
DIR`), into `<head>/<stack>/` and `<base>/<stack>/`. This module turns those directories into one Markdown
comment. It only reads files: the comment is posted by a separate workflow that never runs PR code.

The comment leads with the figures a reviewer approves money on, read from each render's `summary.json`:
per stack, base -> head of $/h and $/day (On-Demand list prices from the instance catalog), GPUs, nodes and
GPU packing, with a warning line when the cost rises or the packing drops below 95%. Stacks the change does
not touch collapse to one line each. The resource and manifest diffs follow, cut to fit GitHub's comment limit.
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


# ---- what the change costs --------------------------------------------------------------------------------------

PACKING_WARN = 0.95  # below this share of provisioned GPUs requested, the stack pays for idle GPUs
HOURS_PER_DAY = 24
_EPS = 0.005  # half a cent: figures are rounded to cents in summary.json


@dataclass(frozen=True)
class RoleFigures:
    requested: int
    provisioned: int
    packing: float
    usd_per_gpu_hour: float  # of the role's pools (their node price / GPUs per node), for the idle-GPU cost


@dataclass(frozen=True)
class Figures:
    """The headline figures of one render, from its summary.json."""

    hourly: float
    hourly_at_max: float | None  # every GPU pool at its maxNodes (None in renders older than the field)
    gpus: int
    gpus_requested: int
    nodes: int  # GPU pool nodes plus system nodes
    packing: float
    roles: dict[str, RoleFigures]
    reserved_pools: tuple[str, ...]  # pools on a reservation or Capacity Block: billed at the reservation's rate

    @property
    def daily(self) -> float:
        return self.hourly * HOURS_PER_DAY

    def key(self) -> tuple:
        return (round(self.hourly, 2), round(self.hourly_at_max or 0, 2), self.gpus, self.gpus_requested, self.nodes, round(self.packing, 4))


def figures(render_dir: Path | None) -> Figures | None:
    """The render's figures, or None when it has no (readable) summary.json."""
    if render_dir is None or not (render_dir / "summary.json").is_file():
        return None
    try:
        s = json.loads((render_dir / "summary.json").read_text())
        pools = s.get("gpu_pools") or []
        price = {p["name"]: p["usd_per_node_hour"] / max(p["gpus_per_node"], 1) for p in pools}
        roles = {}
        for name, r in (s.get("roles") or {}).items():
            prices = [price[p] for p in r.get("pools", []) if p in price]
            roles[name] = RoleFigures(
                int(r["gpus_requested"]), int(r["gpus_provisioned"]), float(r["gpu_packing"]),
                sum(prices) / len(prices) if prices else 0.0,
            )
        return Figures(
            hourly=float(s["hourly_cost_usd"]),
            hourly_at_max=float(s["hourly_cost_at_max_usd"]) if "hourly_cost_at_max_usd" in s else None,
            gpus=int(s["gpus_provisioned"]),
            gpus_requested=int(s["gpus_requested"]),
            nodes=sum(int(p["nodes"]) for p in pools) + int((s.get("system_pool") or {}).get("nodes", 0)),
            packing=float(s["gpu_packing"]),
            roles=roles,
            reserved_pools=tuple(p["name"] for p in pools if p.get("capacity", "onDemand") != "onDemand"),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a summary of another shape (a much older base): the comment says the figures are missing


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _signed_usd(d: float) -> str:
    return f"{'+' if d >= 0 else '-'}${abs(d):,.2f}"


def _signed(d: float) -> str:
    return f"{d:+d}"


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _moved(old: str, new: str, delta: str) -> str:
    return new if old == new else f"{old} → **{new}** ({delta})"


def cost_row(stack: str, base: Figures | None, head: Figures) -> str:
    """One row of the cost table: base -> head with the delta, or the head figures of a new stack."""
    if base is None:
        cells = [f"**{_usd(head.hourly)}** (new)", f"**{_usd(head.daily)}**", f"**{head.gpus}**", f"**{head.nodes}**", f"**{_pct(head.packing)}**"]
    else:
        dp = round((head.packing - base.packing) * 100)
        cells = [
            _moved(_usd(base.hourly), _usd(head.hourly), _signed_usd(head.hourly - base.hourly)),
            _moved(_usd(base.daily), _usd(head.daily), _signed_usd(head.daily - base.daily)),
            _moved(str(base.gpus), str(head.gpus), _signed(head.gpus - base.gpus)),
            _moved(str(base.nodes), str(head.nodes), _signed(head.nodes - base.nodes)),
            _moved(_pct(base.packing), _pct(head.packing), f"{dp:+d} pts"),
        ]
    return f"| `{stack}` | " + " | ".join(cells) + " |"


def warnings(stack: str, base: Figures | None, head: Figures) -> list[str]:
    """What a reviewer must not miss: the stack costs more, or pays for GPUs nothing requests."""
    out = []
    was = base.hourly if base is not None else 0.0
    if head.hourly > was + _EPS:
        d = head.hourly - was
        since = f"{_usd(base.hourly)}/h → {_usd(head.hourly)}/h" if base is not None else f"a new stack at {_usd(head.hourly)}/h"
        out.append(f"⚠️ `{stack}` cost rises by **{_signed_usd(d)}/h** ({_signed_usd(d * HOURS_PER_DAY)}/day): {since}.")
    if head.hourly_at_max is not None:
        was_max = (base.hourly_at_max if base is not None and base.hourly_at_max is not None else was)
        rise, rise_now = head.hourly_at_max - was_max, head.hourly - was
        if rise > _EPS and abs(rise - rise_now) > _EPS:
            out.append(
                f"⚠️ `{stack}` cost at full scale-out (every GPU pool at maxNodes) rises by **{_signed_usd(rise)}/h**: "
                f"up to {_usd(head.hourly_at_max)}/h."
            )
    dropped = base is None or head.packing < base.packing - 1e-9
    if head.packing < PACKING_WARN and dropped:
        idle = head.gpus - head.gpus_requested
        idle_usd = sum((r.provisioned - r.requested) * r.usd_per_gpu_hour for r in head.roles.values())
        detail = [
            f"{name} uses {r.requested} of {r.provisioned} GPUs ({_pct(r.packing)})"
            for name, r in sorted(head.roles.items())
            if r.packing < PACKING_WARN
        ]
        frm = f"from {_pct(base.packing)} " if base is not None else ""
        out.append(
            f"⚠️ `{stack}` GPU packing drops {frm}to **{_pct(head.packing)}**, below {_pct(PACKING_WARN)}: "
            f"{idle} of {head.gpus} GPUs idle (about {_usd(idle_usd)}/h)" + (f"; {', '.join(detail)}" if detail else "") + ". "
            "Fill the nodes (replicas, tensorParallel) or provision fewer."
        )
    if head.reserved_pools and (head.hourly > was + _EPS):
        out.append(
            f"ℹ️ `{stack}` pools {', '.join(head.reserved_pools)} run on reserved capacity: the figures are On-Demand list "
            "prices; the reservation bills its own rate for its whole term."
        )
    return out


# ---- one stack --------------------------------------------------------------------------------------------------


@dataclass
class StackSection:
    stack: str
    status: str  # render | failed | removed
    base: Figures | None
    head: Figures | None
    unchanged: bool  # nothing differs from base: collapsed to one line
    line: str  # one line on what changed (all there is of a collapsed stack)
    parts: list[str]  # the detail: policy, resource changes (always shown for stacks that are not collapsed)
    summary: str  # the head's summary.md, in a collapsed block (left out first when the comment is too long)
    diff: ManifestDiff | None


def _brief(f: Figures | None) -> str:
    if f is None:
        return "no figures in summary.json"
    return f"{_usd(f.hourly)}/h, {f.gpus} GPUs on {f.nodes} nodes, {_pct(f.packing)} packing"


def _stack_section(stack: str, head_dir: Path | None, base_dir: Path | None) -> StackSection:
    base_rendered = base_dir is not None and (base_dir / "resources.json").is_file()
    base_fig = figures(base_dir) if base_rendered else None
    if head_dir is None:  # the PR removes the stack file
        return StackSection(stack, "removed", base_fig, None, False, f"removed by this change (was {_brief(base_fig)}).", [], "", None)
    if not (head_dir / "resources.json").is_file():
        log = head_dir / RENDER_LOG
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.is_file() else "(no output saved)"
        parts = ["**The render failed.** Last lines of its output:", _fence(tail)]
        return StackSection(stack, "failed", base_fig, None, False, "❌ the render failed.", parts, "", None)

    head_fig = figures(head_dir)
    violations = policy_result(head_dir) or []
    changes = resource_changes(base_dir if base_rendered else None, head_dir)
    diff = manifest_diff(base_dir if base_rendered else None, head_dir)
    changed = bool(changes and (changes.added or changes.removed or changes.changed)) or bool(diff.files_changed)
    same_figures = base_fig is not None and head_fig is not None and base_fig.key() == head_fig.key()
    unchanged = base_rendered and same_figures and not changed and not violations

    policy = "policy ✅" if not violations else f"policy ❌ {len(violations)}"
    if unchanged:
        line = f"no change against base ({_brief(head_fig)}, {policy})."
    else:
        what = []
        if not base_rendered:
            what.append("no base render: everything is new")
        elif same_figures:
            what.append(f"cost unchanged ({_brief(head_fig)})")
        if changes:
            what.append(f"resources {changes.counts()}")
        what.append(f"{len(diff.files_changed)} manifest(s) changed")
        line = f"{', '.join(what)}, {policy}."

    parts = []
    if violations:
        shown = violations[:30]
        more = f"\n… and {len(violations) - len(shown)} more" if len(violations) > len(shown) else ""
        parts.append(f"**Policy: {len(violations)} violation(s)**\n\n" + "\n".join(f"- {v}" for v in shown) + more)
    if changes and (changes.added or changes.removed or changes.changed):
        lines = [f"- added {x}" for x in changes.added] + [f"- removed {x}" for x in changes.removed]
        lines += [f"- changed {x}" for x in changes.changed]
        if len(lines) > 60:
            lines = lines[:60] + [f"- … {len(lines) - 60} more"]
        parts.append(f"<details><summary>Resources {changes.counts()} against base</summary>\n\n" + "\n".join(lines) + "\n\n</details>")
    summary_md = head_dir / "summary.md"
    summary = ""
    if summary_md.is_file():
        summary = "<details><summary>Summary of the head render</summary>\n\n" + summary_md.read_text().strip() + "\n\n</details>"
    return StackSection(stack, "rendered", base_fig, head_fig, unchanged, line, parts, summary, diff)


def _diff_block(diff: ManifestDiff, budget: int) -> str:
    """The manifest diff in a collapsed block of at most `budget` characters (the diff cut at a line end)."""
    if not diff.files_changed:
        return "Manifests: no change against base."
    files = ", ".join(f"`{f}`" for f in diff.files_changed[:20]) + (" …" if len(diff.files_changed) > 20 else "")
    head = f"<details><summary>Manifest diff against base: {len(diff.files_changed)} file(s) ({files})</summary>\n\n"
    tail = "\n\n</details>"
    text, note = diff.text, ""
    if len(head) + len(_fence(text, "diff")) + len(tail) > budget:
        note = "\n\n_Diff truncated ({left:,} characters left out): the full render is in the workflow artifact._"
        room = budget - len(head) - len(tail) - len(note) - len(_fence("", "diff")) - 20
        cut = text[: max(0, room)]
        cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else ""
        note = note.format(left=len(text) - len(cut))
        text = cut
    body = _fence(text, "diff") if text else "_(left out: too long for a comment)_"
    return f"{head}{body}{note}{tail}"


# ---- the whole comment ------------------------------------------------------------------------------------------

COST_HEADER = [
    "| stack | $/h | $/day | GPUs | nodes | GPU packing |",
    "|---|---|---|---|---|---|",
]


def cost_block(sections: list[StackSection]) -> list[str]:
    """The cost table (stacks whose figures moved), the warning lines and one line per untouched stack."""
    rows, warns, quiet = [], [], []
    for s in sections:
        if s.status == "failed":
            rows.append(f"| `{s.stack}` | ❌ render failed | – | – | – | – |")
        elif s.status == "removed":
            if s.base is not None:
                rows.append(
                    f"| `{s.stack}` | {_usd(s.base.hourly)} → **removed** ({_signed_usd(-s.base.hourly)}) | "
                    f"{_usd(s.base.daily)} → **0** | {s.base.gpus} → **0** | {s.base.nodes} → **0** | – |"
                )
            else:
                quiet.append(f"- `{s.stack}`: {s.line}")
        elif s.head is None:
            quiet.append(f"- `{s.stack}`: rendered, but its summary.json has no figures.")
        elif s.unchanged or (s.base is not None and s.base.key() == s.head.key()):
            quiet.append(f"- `{s.stack}`: {s.line}")
        else:
            rows.append(cost_row(s.stack, s.base, s.head))
            warns.extend(warnings(s.stack, s.base, s.head))
    out = []
    if rows:
        out.append("### What it costs\n\nOn-Demand list prices of the instance catalog (`facts/catalog.py`), base → head.\n\n" + "\n".join(COST_HEADER + rows))
    if warns:
        out.append("> [!WARNING]\n" + "\n>\n".join(f"> {w}" for w in warns))
    if quiet:
        out.append("\n".join(quiet))
    return out


def build(head_root: Path, base_root: Path | None, *, sha: str = "", base_sha: str = "", run_url: str = "", max_chars: int = MAX_CHARS) -> str:
    """The whole comment for every stack rendered under `head_root` and `base_root` (one directory per stack)."""
    head_root = Path(head_root)
    base_root = Path(base_root) if base_root is not None else None

    def dirs(root: Path | None) -> set[str]:
        return {p.name for p in root.iterdir() if p.is_dir()} if root is not None and root.is_dir() else set()

    head_stacks, base_stacks = dirs(head_root), dirs(base_root)
    sections = [
        _stack_section(
            s,
            head_root / s if s in head_stacks else None,
            base_root / s if base_root is not None and s in base_stacks else None,
        )
        for s in sorted(head_stacks | base_stacks)
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
    if not head_stacks:
        intro.append("No stack was rendered (no `Pulumi.<stack>.yaml` found, or the render step did not run).")
        return "\n\n".join(intro) + "\n"

    top = intro + cost_block(sections)
    detailed = [s for s in sections if not s.unchanged]

    def assemble(with_summaries: bool, diff_budget: int | None) -> str:
        chunks = list(top)
        for s in detailed:
            chunk = [f"### `{s.stack}`", s.line[:1].upper() + s.line[1:], *s.parts]
            if with_summaries and s.summary:
                chunk.append(s.summary)
            if s.diff is not None and diff_budget is not None:
                chunk.append(_diff_block(s.diff, diff_budget))
            chunks.append("\n\n".join(chunk))
        return "\n\n".join(chunks)

    # What goes first when the comment is too long: the summaries (the cost table already carries their headline
    # figures), then the diffs are cut to share what is left. The cost table, warnings and resource lists stay.
    with_diffs = [s for s in detailed if s.diff is not None]
    note_room = 200  # the note on left-out summaries
    diff_total = sum(len(_diff_block(s.diff, 10**9)) for s in with_diffs if s.diff is not None)
    room_left = max_chars - len(assemble(True, None)) - note_room
    summaries = room_left >= min(diff_total, max_chars // 3)  # keep them unless the diffs would get under a third
    fixed = len(assemble(summaries, None)) + note_room
    share = (max_chars - fixed) // max(1, len(with_diffs))
    body = assemble(summaries, share)
    if not summaries and any(s.summary for s in detailed):
        body += "\n\n_Stack summaries left out to stay under GitHub's comment limit: see `summary.md` in the render artifact._"
    if len(body) > max_chars:  # the fixed part alone exceeds the limit: cut at the end, the cost table stays
        body = body[: max_chars - 120].rsplit("\n", 1)[0] + "\n\n_Comment truncated: see the workflow artifact._"
    return body + "\n"
