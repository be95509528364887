"""Every command a rendered serving pod runs, as data: what the real-tool checks feed to shellcheck, to Python's
compiler, to vLLM's own argument parser (`make check-engine`) and to vllm-router's.

Reads rendered manifests (`build/<stack>/manifests`, or the test session's renders), finds the pod templates inside
LeaderWorkerSets, PodCliqueSets and Deployments, and returns one record per container:

  stack, where (object/template/container), role, part, interpreter + script (for `<shell> -c <script>`
  containers), args, and for engine containers `engine_argv`: the argv after `vllm serve` as the wrapper execs it,
  with the per-pod flags of a multi-node group filled in with sample values.

`python -m tests.tools.serving_commands --out engine-commands.json build/*/manifests` writes the records as JSON for
the checker that runs inside the vLLM virtualenv (tests/tools/vllm_argv_check.py), which imports nothing of ours.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from components.builders.serving import trtllm
from components.builders.serving.vllm import EXEC_GROUP, EXEC_SINGLE

ENGINE_CONTAINER = "engine"
ROUTER_CONTAINER = "router"
# What the wrapper appends on a multi-node pod (vllm.EXEC_GROUP), with values a real pod would have.
SAMPLE_LEADER = "t-prefill-0.t-prefill.t"
# What a TensorRT-LLM wrapper appends (trtllm.EXEC_SINGLE / EXEC_GROUP): the pod IP it binds and registers.
SAMPLE_POD_IP = "10.0.0.7"
# The last line of a TensorRT-LLM multi-node worker: it runs no engine of its own, the leader's mpirun starts its ranks.
TRTLLM_WORKER_WAIT = "while true; do sleep 3600 & wait $!; done"
SHELLS = {"/bin/bash": "bash", "bash": "bash", "/bin/sh": "sh", "sh": "sh"}


@dataclass
class Command:
    stack: str
    where: str
    role: str
    part: str
    container: str
    shell: str | None = None
    script: str | None = None
    args: list[str] = field(default_factory=list)
    engine_argv: list[str] | None = None
    engine: str | None = None  # vllm | tensorrt-llm, for engine containers
    command: list[str] = field(default_factory=list)


def pod_templates(doc: dict) -> list[tuple[str, dict, dict]]:
    """(where, labels, pod spec) of every pod template inside one manifest."""
    kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "?")
    out = []
    if kind == "LeaderWorkerSet":
        t = doc["spec"]["leaderWorkerTemplate"]
        for part in ("leaderTemplate", "workerTemplate"):
            if t.get(part):
                out.append((f"{kind}/{name}/{part}", t[part]["metadata"].get("labels", {}), t[part]["spec"]))
    elif kind == "PodCliqueSet":
        for c in doc["spec"]["template"]["cliques"]:
            out.append((f"{kind}/{name}/{c['name']}", c.get("labels", {}), c["spec"]["podSpec"]))
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        tpl = doc["spec"]["template"]
        out.append((f"{kind}/{name}", tpl["metadata"].get("labels", {}), tpl["spec"]))
    return out


def engine_argv(script: str, args: list[str], part: str) -> tuple[str, list[str] | None]:
    """(engine, the argv after `vllm serve` / `trtllm-serve` that the wrapper execs): its last line must be one of the
    known exec lines. A TensorRT-LLM multi-node worker execs no engine (None)."""
    last = script.strip().splitlines()[-1]
    if last == EXEC_SINGLE:
        return "vllm", list(args)
    if last == EXEC_GROUP:
        return "vllm", [*args, "--node-rank", "0" if part == "leader" else "1", "--master-addr", SAMPLE_LEADER]
    if last in (trtllm.EXEC_SINGLE, trtllm.EXEC_GROUP):
        return "tensorrt-llm", [*args, "--host", SAMPLE_POD_IP]
    if last == TRTLLM_WORKER_WAIT and part == "worker":
        return "tensorrt-llm", None
    raise ValueError(f"the engine wrapper does not end with a known exec line: {last!r}")


def commands(stack: str, docs: list[dict]) -> list[Command]:
    out = []
    for doc in docs:
        for where, labels, spec in pod_templates(doc):
            role = labels.get("disagg.io/role", "")
            part = labels.get("disagg.io/part", "single")
            for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                command = c.get("command") or []
                cmd = Command(stack=stack, where=f"{where}/{c['name']}", role=role, part=part, container=c["name"], args=list(c.get("args", [])), command=list(command))
                if len(command) >= 3 and command[0] in SHELLS and command[1] == "-c":
                    cmd.shell, cmd.script = SHELLS[command[0]], command[2]
                if c["name"] == ENGINE_CONTAINER and role in ("prefill", "decode"):
                    if cmd.script is None:
                        raise ValueError(f"{stack}: {where}: the engine container runs no wrapper script")
                    cmd.engine, cmd.engine_argv = engine_argv(cmd.script, cmd.args, part)
                out.append(cmd)
    return out


def from_dir(stack: str, manifests: Path) -> list[Command]:
    return commands(stack, [yaml.safe_load(p.read_text()) for p in sorted(manifests.glob("*.yaml"))])


def python_snippets(script: str) -> list[str]:
    """The code of every `python -c CODE` / `python3 -c CODE` in a shell script (the script split as the shell
    splits words, so quoted code spanning lines stays one word)."""
    words = shlex.split(script, comments=True)
    return [words[i + 2] for i, w in enumerate(words[:-2]) if w.rsplit("/", 1)[-1] in ("python", "python3") and words[i + 1] == "-c"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifests", nargs="+", type=Path, help="rendered manifests dirs (build/<stack>/manifests)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    records = []
    for d in a.manifests:
        # vLLM's parser and vllm-router's take only their own engine's and router's command lines.
        records += [
            asdict(c) for c in from_dir(d.parent.name, d)
            if (c.engine == "vllm" and c.engine_argv is not None) or (c.container == ROUTER_CONTAINER and c.command[:1] != ["trtllm-serve"])
        ]
    a.out.write_text(json.dumps(records, indent=1))
    sys.stdout.write(f"{len(records)} engine and router containers from {len(a.manifests)} stacks -> {a.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
