"""Every rendered Kubernetes object against real schemas.

Built-in kinds: kubernetes-validate, strict (unknown fields are errors), at the Kubernetes version the stack
pins. Custom resources: the upstream CRDs' openAPIV3Schema, read from the directory in $DISAGG_CRD_DIR
(CI points it at the shared reference CRDs; the project does not copy them in), made strict the same way.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from facts.versions import pin

CRD_ENV = "DISAGG_CRD_DIR"


# The oldest Kubernetes the manifests must stay valid for (users may run an older EKS minor than the pin),
# and the pinned one.
OLDEST_SUPPORTED = "1.33.0"


def k8s_schema_versions() -> list[str]:
    """kubernetes-validate wants full versions; the stack pins major.minor."""
    v = pin("kubernetes").version
    pinned = v if v.count(".") == 2 else f"{v}.0"
    return sorted({OLDEST_SUPPORTED, pinned})


def _strict(schema):
    """OpenAPI v3 (as in CRDs) -> JSON Schema draft 4, with unknown properties refused where the CRD lists them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        out.pop("nullable", None)
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict]:
    directory = os.environ.get(CRD_ENV)
    out = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for ver in doc["spec"]["versions"]:
                schema = _strict(ver["schema"]["openAPIV3Schema"])
                # The API server fills these; a manifest has them as plain strings.
                props = schema.setdefault("properties", {})
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{ver['name']}"]}
                props["kind"] = {"type": "string", "enum": [kind]}
                props["metadata"] = {"type": "object"}
                out[(f"{group}/{ver['name']}", kind)] = schema
    return out


def all_manifests(rendered) -> list[tuple[str, str, dict]]:
    return [(stack, name, doc) for stack, r in sorted(rendered.items()) for name, doc in r.manifests.items()]


def is_builtin(doc: dict) -> bool:
    """Core and *.k8s.io groups ship with Kubernetes; anything else (x-k8s.io, grove.io, ...) is a CRD."""
    group = doc["apiVersion"].rsplit("/", 1)[0] if "/" in doc["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io")


def test_there_are_manifests_to_check(rendered):
    assert all_manifests(rendered), "the render produced no Kubernetes objects"


def test_builtin_kinds_validate_strictly(rendered):
    failures = []
    checked = 0
    for stack, name, doc in all_manifests(rendered):
        if not is_builtin(doc):
            continue
        checked += 1
        for version in k8s_schema_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{stack}/{name} (Kubernetes {version}): {'.'.join(map(str, exc.path))}: {exc.message}")
    assert checked, "no built-in objects were rendered"
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not os.environ.get(CRD_ENV), reason=f"set {CRD_ENV} to the directory of upstream CRDs (.ci/run does) to check custom resources")
def test_custom_resources_validate_against_upstream_crds(rendered):
    schemas = crd_schemas()
    assert schemas, f"no CRDs found in {os.environ[CRD_ENV]}"
    failures, unknown, checked = [], [], 0
    for stack, name, doc in all_manifests(rendered):
        if is_builtin(doc):
            continue
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            unknown.append(f"{stack}/{name} ({doc['apiVersion']} {doc['kind']})")
            continue
        checked += 1
        for err in jsonschema.Draft4Validator(schema).iter_errors(doc):
            failures.append(f"{stack}/{name}: {'.'.join(map(str, err.absolute_path))}: {err.message}")
    assert not failures, "\n".join(failures)
    # Kinds of charts we install whose CRDs are not among the reference set (e.g. KEDA, Prometheus Operator)
    # are listed so a reader sees they were not schema-checked here.
    print(f"checked {checked} custom resources; without a reference CRD: {unknown}")
