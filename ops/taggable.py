"""Which pulumi-aws resource types take `tags`: the list the required-tags policy checks against.

The policy pack runs in its own virtualenv without pulumi-aws, so it reads a plain list
(`policy/taggable-aws-types.txt`). This module regenerates that list from the installed pulumi-aws by reading
its generated sources (no import: importing all of pulumi-aws takes minutes). A test compares the committed
list with the installed package, so bumping pulumi-aws without regenerating fails loudly.
"""

from __future__ import annotations

import re
from pathlib import Path

LIST_PATH = Path(__file__).resolve().parent.parent / "policy" / "taggable-aws-types.txt"

# Every generated resource module calls `super(<Class>, __self__).__init__('<type token>', ...)` once and, when
# the resource has a `tags` input, assigns `__props__.__dict__["tags"] = tags`.
_TYPE_RE = re.compile(r"super\(\w+, __self__\)\.__init__\(\s*'(aws:[^']+)'")
_TAGS_RE = re.compile(r'__props__\.__dict__\["tags"\] = tags\b')

HEADER = (
    "# AWS resource types (pulumi-aws {version}) that take a `tags` input: the required-tags policy checks these.\n"
    "# Generated from the installed pulumi-aws; regenerate after bumping it: python -m ops taggable-types --write\n"
)


def scan(package_dir: Path | None = None) -> list[str]:
    """Sorted type tokens of every taggable resource in the installed (or given) pulumi-aws."""
    if package_dir is None:
        import importlib.util

        spec = importlib.util.find_spec("pulumi_aws")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("pulumi-aws is not installed; install requirements.txt first")
        package_dir = Path(next(iter(spec.submodule_search_locations)))
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        types = _TYPE_RE.findall(text)
        if types and _TAGS_RE.search(text):
            found.update(types)
    return sorted(found)


def installed_version() -> str:
    from importlib.metadata import version

    return version("pulumi-aws")


def render(types: list[str], version: str) -> str:
    return HEADER.format(version=version) + "".join(f"{t}\n" for t in types)


def read_list(path: Path = LIST_PATH) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
