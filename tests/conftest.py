"""Shared test helpers: a valid base config to break one rule at a time, and render runs of whole stacks."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "configs"

# A p5 layout that passes every check; tests change one thing and expect exactly that to be reported.
BASE = {
    "region": "us-east-1",
    "availabilityZones": ["us-east-1a", "us-east-1b"],
    "cluster": {"publicAccessCidrs": ["198.51.100.0/24"]},
    "gpuPools": [
        {"name": "prefill", "role": "prefill", "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]},
        {"name": "decode", "role": "decode", "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]},
    ],
    "serving": {
        "model": {"id": "nvidia/Llama-3.3-70B-Instruct-FP8", "parametersBillions": 70.6, "weightDtype": "fp8"},
        "engine": {"efaImage": "210987654321.dkr.ecr.us-east-1.amazonaws.com/disagg/vllm-efa@sha256:4f0c1ab3a9a4d1f7f6e2b8f0c3d5e7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1"},
        "prefill": {"tensorParallel": 4, "replicas": 2},
        "decode": {"tensorParallel": 2, "replicas": 4},
    },
}


@pytest.fixture
def base() -> dict:
    return copy.deepcopy(BASE)


def stack_file(path: Path, values: dict, secrets: dict | None = None) -> Path:
    """Write values as a Pulumi.<stack>.yaml (all keys under disagg:)."""
    config = {f"disagg:{k}": v for k, v in values.items()}
    for k, v in (secrets or {}).items():
        config[f"disagg:{k}"] = {"secure": v}
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=True))
    return path


def render(args: list[str], cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tooling.render", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def leaves(value, path: str = ""):
    """(path, value) of every scalar in nested dicts and lists: `.spec.template[0].name`."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def stack_files() -> list[Path]:
    """Every stack of the repo and every test config: each must render."""
    return sorted(ROOT.glob("Pulumi.*.yaml")) + sorted(CONFIGS.glob("Pulumi.*.yaml"))


# What every `secure:` value of a rendered stack decrypts to (tests/configs/Pulumi.grove.yaml has an hfToken): the
# program receives it as a real Pulumi secret, and no file or log of any render may hold it (test_secrets.py).
CANARY = "hf_CanaryOfTheRender7Qx2ZpK9dL4"


class Rendered:
    def __init__(self, out: Path, log: str = ""):
        self.out = out
        self.log = log  # the render's stdout and stderr
        self.resources = json.loads((out / "resources.json").read_text())
        self.records = self.resources["resources"]
        self.outputs = self.resources["outputs"]
        self.summary = json.loads((out / "summary.json").read_text())
        self.manifests = {p.name: yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").glob("*.yaml"))}
        self.urns = (out / "urns.txt").read_text().splitlines()
        answers = out.parent / "fake-answers.json"
        self.fake_answers = json.loads(answers.read_text()) if answers.is_file() else None

    def of_type(self, type_: str) -> list[dict]:
        return [r for r in self.records if r["type"] == type_]

    def one(self, type_: str) -> dict:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {len(found)}"
        return found[0]

    def by_urn(self, urn: str) -> dict:
        return next(r for r in self.records if r["urn"] == urn)


def _render_every_stack(tmp_path_factory, label: str, *flags: str) -> dict[str, Rendered]:
    out: dict[str, Rendered] = {}
    for path in stack_files():
        name = path.name[len("Pulumi."):-len(".yaml")]
        base = tmp_path_factory.mktemp(f"{label}-{name}")
        target = base / "out"
        args = ["--config", str(path), "--out", str(target), "--secure-value", CANARY, "--fake-answers", str(base / "fake-answers.json")]
        proc = render([*args, *flags])
        assert proc.returncode == 0, f"{label} of {path.name} failed:\n{proc.stderr[-4000:]}"
        out[name] = Rendered(target, proc.stdout + proc.stderr)
    return out


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Render every stack file once per test session (each in its own process, as the mock runtime needs)."""
    return _render_every_stack(tmp_path_factory, "render")


@pytest.fixture(scope="session")
def previewed(tmp_path_factory) -> dict[str, Rendered]:
    """Every stack file rendered as `pulumi preview` of a new stack sees it (`--preview`)."""
    return _render_every_stack(tmp_path_factory, "preview", "--preview")
