"""`make help` lists every target of the Makefile with its one-line description."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def targets() -> list[str]:
    return [m.group(1) for m in re.finditer(r"^([a-zA-Z][a-zA-Z0-9_-]*):", (ROOT / "Makefile").read_text(), re.M)]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_with_its_description():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    listed = dict(re.findall(r"^  make (\S+)\s+(.+)$", out, re.M))
    assert targets(), "no targets found in the Makefile"
    missing = [t for t in targets() if t not in listed]
    assert not missing, f"targets without a `## description` line above them: {missing}"
    assert all(len(d) > 10 for d in listed.values())
    assert "$$" not in out, "make's $$ escapes are shown as $"
