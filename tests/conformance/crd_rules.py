"""The CEL rules of an upstream CRD (`x-kubernetes-validations`) evaluated on a manifest, as the API server would.

The JSON-schema check of tests/conformance/test_manifests.py drops these rules, and many of what makes an
EC2NodeClass or NodePool valid is only there (a primary `interface` on card 0 / device 0, one EFA device per card,
exactly one of role/instanceProfile, restricted label domains). cel-python (PyPI) evaluates them; the Kubernetes CEL
string extensions the Karpenter CRDs use (`find`, `split`) are added here. Transition rules (`oldSelf`) need an
update and are skipped.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CRD_ENV = "DISAGG_CRD_DIR"


@lru_cache(maxsize=None)
def raw_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema as published (with its CEL rules)."""
    out = {}
    for path in sorted(Path(os.environ[CRD_ENV]).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for ver in doc["spec"]["versions"]:
                out[(f"{doc['spec']['group']}/{ver['name']}", doc["spec"]["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    return out


def _functions():
    from celpy import celtypes

    def find(value, pattern):
        m = re.search(str(pattern), str(value))
        return celtypes.StringType(m.group(0) if m else "")

    def split(value, sep):
        return celtypes.ListType([celtypes.StringType(x) for x in str(value).split(str(sep))])

    return {"find": find, "split": split}


@lru_cache(maxsize=1)
def _environment():
    import celpy

    return celpy.Environment()


@lru_cache(maxsize=None)
def _program(rule: str):
    env = _environment()
    return env.program(env.compile(rule), functions=_functions())


def _evaluate(rule: str, value: Any) -> Any:
    import celpy

    return _program(rule).evaluate({"self": celpy.json_to_cel(value)})


def violations(schema: dict, value: Any, path: str = "") -> list[str]:
    """Every CEL rule on the way down `value` that does not hold, as `path: message`."""
    out: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        from celpy import celtypes

        try:
            result = _evaluate(rule["rule"], value)
            ok, why = isinstance(result, celtypes.BoolType) and bool(result), f"evaluates to {result!r}"
        except Exception as exc:  # noqa: BLE001 - an evaluation error is a rejection by the API server too
            ok, why = False, f"error: {exc}"
        if not ok:
            out.append(f"{path or '.'}: {rule.get('message') or rule['rule']} ({why})")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                out += violations(props[key], item, f"{path}.{key}")
            elif isinstance(extra, dict):
                out += violations(extra, item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out += violations(schema["items"], item, f"{path}[{i}]")
    return out


def manifest_violations(doc: dict) -> list[str]:
    schema = raw_schemas()[(doc["apiVersion"], doc["kind"])]
    return violations(schema, doc)
