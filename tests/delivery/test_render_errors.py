"""The render's answer to a broken stack file: exit 2 with the file, line and column, every problem of a well-formed
file in one run, and no stale outputs."""

from __future__ import annotations

import shutil

import pytest

from stacks.config import ConfigError, decode, parse
from stacks.config.loader import StackFileSyntaxError, engine_config_from_file
from tests.conftest import ROOT, render

# Pulumi.prod.yaml with one line broken: (what to replace, by what, line, column, words of the message).
BREAKS = [
    # A list item's key one space off: the classic indentation slip.
    ("      role: decode\n", "     role: decode\n", "expected <block end>"),
    # A flow mapping never closed.
    ("  disagg:tags:\n    environment: prod\n", "  disagg:tags: {environment: prod\n", "while parsing a flow mapping"),
    # A tab used for indentation.
    ("    natGateways: perAz\n", "\tnatGateways: perAz\n", "tabs"),
    # A key written twice (the Pulumi CLI refuses it; PyYAML alone would keep the last value silently).
    ("  disagg:region: us-east-1\n", "  disagg:region: us-east-1\n  disagg:region: us-west-2\n", "written twice"),
]


def broken_prod(tmp_path, old: str, new: str):
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    assert text.count(old) >= 1, f"the fixture line {old!r} is no longer in Pulumi.prod.yaml"
    text = text.replace(old, new, 1)
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text)
    # Where the error is: the first line that differs from the committed file.
    ours = (ROOT / "Pulumi.prod.yaml").read_text().splitlines()
    line = next(i for i, (a, b) in enumerate(zip(text.splitlines(), ours), 1) if a != b)
    return path, line


@pytest.mark.parametrize("old, new, words", BREAKS, ids=["indent", "unclosed-brace", "tab", "duplicate-key"])
def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path, old, new, words):
    path, line = broken_prod(tmp_path, old, new)
    with pytest.raises(StackFileSyntaxError) as info:
        engine_config_from_file(path)
    err = info.value
    assert isinstance(err, ConfigError), "callers that handle ConfigError (render, __main__) handle it too"
    assert words in str(err)
    assert err.line in (line, line + 1), "the line of the break (or the next one, where the parser notices)"
    assert err.column >= 1
    assert f"line {err.line}, column {err.column}: YAML syntax error" in str(err)
    assert f"{err.line} | " in str(err) and "^" in str(err) and "Fix: " in str(err)

    proc = render(["--config", str(path), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"Pulumi.prod.yaml: line {err.line}, column {err.column}: YAML syntax error")
    assert "Traceback" not in proc.stderr


def test_a_failed_render_removes_the_outputs_of_an_earlier_run(tmp_path, rendered):
    out = tmp_path / "out"
    shutil.copytree(rendered["prod"].out, out)
    (out / "notes.txt").write_text("mine")  # not the render's: stays
    path, _ = broken_prod(tmp_path, *BREAKS[0][:2])
    assert render(["--config", str(path), "--out", str(out)]).returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    # An invalid (but well-formed) config too: exit 2, and nothing of the earlier render is left to be read.
    shutil.copytree(rendered["prod"].out, out, dirs_exist_ok=True)
    bad = tmp_path / "Pulumi.invalid.yaml"
    bad.write_text((ROOT / "Pulumi.prod.yaml").read_text().replace("replicas: 4", "replicas: 40"))
    proc = render(["--config", str(bad), "--out", str(out)])
    assert proc.returncode == 2 and "disagg:" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# tests/fixtures/config/Pulumi.four-mistakes.yaml: Pulumi.dev.yaml with four independent mistakes of four kinds.
FOUR = ROOT / "tests" / "fixtures" / "config" / "Pulumi.four-mistakes.yaml"
MISTAKES = {
    # key of the problem: (words of its message, the line that makes the mistake, the line that fixes it)
    "disagg:serving.decode.tensorParalel": (
        "unknown key (did you mean tensorParallel?)", "      tensorParalel: 1\n", "      tensorParallel: 1\n"
    ),
    "disagg:gpuPools[0].instanceType": ("unknown instance type", "      instanceType: g6e.xlarg\n", "      instanceType: g6e.xlarge\n"),
    "disagg:network.natGateways": ("input should be 'single' or 'perAz'", "    natGateways: perZone\n", "    natGateways: single\n"),
    "disagg:serving.router.serviceType": (
        "needs the AWS Load Balancer Controller", "      serviceType: internalNlb\n", "      serviceType: clusterIP\n"
    ),
}


def _issues(path) -> list:
    engine, _ = engine_config_from_file(path)
    with pytest.raises(ConfigError) as info:
        parse(decode(engine), stack="four-mistakes", aws_region=engine.get("aws:region"))
    return info.value.issues


def test_a_file_with_four_independent_mistakes_reports_all_four_in_one_run(tmp_path):
    found = {i.key: str(i) for i in _issues(FOUR)}
    assert sorted(found) == sorted(MISTAKES), found
    for key, (words, _, _) in MISTAKES.items():
        assert words in found[key] and "Fix: " in found[key], found[key]

    proc = render(["--config", str(FOUR), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Pulumi.four-mistakes.yaml: invalid disagg config (4 problem(s)):\n"), proc.stderr
    problems = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 4, proc.stderr
    for key in MISTAKES:
        assert sum(p.startswith(f"  - {key} ") for p in problems) == 1, (key, proc.stderr)
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fixed", sorted(MISTAKES))
def test_each_mistake_is_independent_of_the_others(tmp_path, fixed):
    """Fixing one mistake leaves exactly the other three: none hides or causes another."""
    _, bad, good = MISTAKES[fixed]
    text = FOUR.read_text()
    assert text.count(bad) == 1, bad
    path = tmp_path / "Pulumi.three-mistakes.yaml"
    path.write_text(text.replace(bad, good))
    assert sorted(i.key for i in _issues(path)) == sorted(k for k in MISTAKES if k != fixed)


def test_fixing_all_four_leaves_a_valid_stack(tmp_path):
    text = FOUR.read_text()
    for _, bad, good in MISTAKES.values():
        text = text.replace(bad, good)
    path = tmp_path / "Pulumi.fixed.yaml"
    path.write_text(text)
    engine, _ = engine_config_from_file(path)
    assert parse(decode(engine), stack="fixed", aws_region=engine.get("aws:region")).name == "fixed"
