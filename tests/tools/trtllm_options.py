"""Derive what TensorRT-LLM's `trtllm-serve` accepts from its source, with Python's `ast` (nothing is imported).

    python -m tests.tools.trtllm_options --src <TensorRT-LLM checkout or unpacked wheel> [--commit <sha>] \
        --out tests/tools/trtllm_options.json

Reads, relative to --src:
- tensorrt_llm/commands/serve.py: the click options of the `serve` and `disaggregated` commands (every spelling of
  each option, and whether it is a flag), and the keys `serve` pops off the merged LLM API options before building
  the LLM (`llm_args.pop("<key>", ...)`, e.g. `disagg_cluster`);
- tensorrt_llm/llmapi/llm_args.py: the fields (name and annotation) of TorchLlmArgs with its bases, and of the
  nested models the stack renders (KvCacheConfig, CudaGraphConfig, CacheTransceiverConfig);
- tensorrt_llm/llmapi/disagg_utils.py: the keys of the orchestrator's config file (the parameters of
  `extract_disagg_cfg`, of `extract_ctx_gen_cfgs`, the `router` of `extract_router_config`) and the fields of the
  DisaggClusterConfig and MinimalInstances dataclasses.

The committed JSON is the only thing of TensorRT-LLM in this repository; tests/unit/test_serving_trtllm.py checks every
rendered flag and key against it. PyPI's tensorrt-llm 1.2.1 is a stub, so no parser of the release can run here.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from pathlib import Path

SERVE = "tensorrt_llm/commands/serve.py"
LLM_ARGS = "tensorrt_llm/llmapi/llm_args.py"
DISAGG_UTILS = "tensorrt_llm/llmapi/disagg_utils.py"
COMMANDS = ("serve", "disaggregated")
NESTED = {"kv_cache_config": "KvCacheConfig", "cuda_graph_config": "CudaGraphConfig", "cache_transceiver_config": "CacheTransceiverConfig"}


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(node: ast.AST) -> str:
    f = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(f)


def click_commands(tree: ast.Module) -> dict[str, dict]:
    """{command: {"options": {"--flag": {"names": [...], "is_flag": bool}}, "arguments": [...]}}"""
    out: dict[str, dict] = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        name = None
        options: dict[str, dict] = {}
        arguments: list[str] = []
        for dec in fn.decorator_list:
            if not isinstance(dec, ast.Call):
                continue
            kind = _call_name(dec)
            if kind == "click.command":
                name = _str(dec.args[0]) if dec.args else fn.name
            elif kind == "click.option":
                names = [s for s in (_str(a) for a in dec.args) if s and s.startswith("-")]
                is_flag = any(k.arg == "is_flag" and isinstance(k.value, ast.Constant) and k.value.value for k in dec.keywords)
                for n in names:
                    options[n] = {"names": names, "is_flag": bool(is_flag)}
            elif kind == "click.argument":
                arguments.append(_str(dec.args[0]) or "")
        if name in COMMANDS:
            popped = sorted(
                {
                    _str(c.args[0])
                    for c in ast.walk(fn)
                    if isinstance(c, ast.Call) and _call_name(c) == "llm_args.pop" and c.args and _str(c.args[0])
                }
            )
            out[name] = {"options": dict(sorted(options.items())), "arguments": arguments, "popped_option_keys": popped}
    return out


def model_fields(tree: ast.Module) -> dict[str, dict]:
    """{class: {"bases": [...], "fields": {name: annotation}}} of every class of the module; private names skipped."""
    out: dict[str, dict] = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        fields = {}
        for st in cls.body:
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and not st.target.id.startswith("_"):
                if st.target.id != "model_config":
                    fields[st.target.id] = ast.unparse(st.annotation)
        out[cls.name] = {"bases": [ast.unparse(b) for b in cls.bases], "fields": fields}
    return out


def all_fields(classes: dict[str, dict], name: str) -> dict[str, str]:
    """The fields of a class with those of its bases that the module defines (pydantic inheritance)."""
    c = classes.get(name)
    if c is None:
        return {}
    out: dict[str, str] = {}
    for b in c["bases"]:
        out.update(all_fields(classes, b))
    out.update(c["fields"])
    return out


def function_params(tree: ast.Module, name: str) -> list[str]:
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == name:
            return [a.arg for a in fn.args.args + fn.args.kwonlyargs]
    return []


def extract(src: Path) -> dict:
    serve = ast.parse((src / SERVE).read_text())
    llm = ast.parse((src / LLM_ARGS).read_text())
    disagg = ast.parse((src / DISAGG_UTILS).read_text())
    classes = model_fields(llm)
    dclasses = model_fields(disagg)
    torch_fields = all_fields(classes, "TorchLlmArgs")
    return {
        "trtllm_serve": click_commands(serve),
        "llm_api_options": {
            "TorchLlmArgs": dict(sorted(torch_fields.items())),
            **{key: dict(sorted(all_fields(classes, cls).items())) for key, cls in NESTED.items()},
        },
        "orchestrator_config": {
            "top_level": sorted(p for p in function_params(disagg, "extract_disagg_cfg") if p != "kwargs"),
            "servers": sorted(p for p in function_params(disagg, "extract_ctx_gen_cfgs") if p not in ("type", "kwargs")) + ["router"],
            "router": ["type"],
            "disagg_cluster": sorted(dclasses.get("DisaggClusterConfig", {}).get("fields", {})),
            "minimal_instances": sorted(dclasses.get("MinimalInstances", {}).get("fields", {})),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True, help="a TensorRT-LLM source tree (its tensorrt_llm/ package)")
    ap.add_argument("--commit", default=None, help="the source's commit (default: git rev-parse HEAD in --src)")
    ap.add_argument("--note", default="", help="how the source was obtained")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    commit = a.commit
    if commit is None:
        done = subprocess.run(["git", "-C", str(a.src), "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = done.stdout.strip() if done.returncode == 0 else "unknown"
    data = {
        "source": {"repository": "NVIDIA/TensorRT-LLM", "commit": commit, "files": [SERVE, LLM_ARGS, DISAGG_UTILS], "note": a.note},
        **extract(a.src),
    }
    a.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {a.out}: {len(data['trtllm_serve'].get('serve', {}).get('options', {}))} serve option spellings, "
          f"{len(data['llm_api_options']['TorchLlmArgs'])} TorchLlmArgs fields")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
