"""Pulumi.yaml's typed `config:` block, held to the typed config models so the two cannot drift.

Pulumi's rules, read from pulumi/pulumi (sdk/go/common/workspace/project.json and project.go, `Validate`,
`ValidateConfigValue`; pkg/workspace/config.go, `mergeConfig`): a project key declares `type` (string, integer,
boolean, array with `items`, or object since v3.187.0), `description`, `default`, `secret`; keys of other
namespaces carry only a `value`; a declared key without `default` must be set in every stack; a default is
merged into the stack's config when the stack does not set the key; stack values are type-checked before the
program starts.
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from stacks.config import decode, engine_config_from_file, parse
from stacks.config.base import NAMESPACE
from stacks.config.stack import StackConfig
from tests.conftest import ROOT, stack_file, stack_files

# Keys of the model that Pulumi.yaml leaves undeclared, and why (declaring them would break stacks).
UNDECLARED = {
    "name": "its default is the stack name, which a project default cannot express",
    "hfToken": "an optional secret: Pulumi requires a declared secret key to be set in every stack",
}
SIMPLE_TYPES = {"string", "integer", "boolean", "array", "object"}  # project.json $defs.simpleConfigType


def project() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def declared() -> dict[str, dict]:
    return {k: v for k, v in (project().get("config") or {}).items() if k.startswith(f"{NAMESPACE}:")}


def pulumi_type(annotation: Any) -> dict:
    """The Pulumi config type of a model field's annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return pulumi_type(args[0])
    if origin is list:
        return {"type": "array", "items": pulumi_type(args[0])}
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {"type": "object"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is str or (origin is typing.Literal and all(isinstance(a, str) for a in args)):
        return {"type": "string"}  # Pulumi has no enum type; the model refuses a value outside the Literal
    raise AssertionError(f"no Pulumi config type for {annotation!r}: declare it by hand and teach this test")


def expected() -> dict[str, dict]:
    out = {}
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        if key in UNDECLARED:
            continue
        spec = pulumi_type(field.annotation)
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            # Pulumi merges the default into the stack's config: it must mean exactly what "not set" means.
            if isinstance(default, BaseModel):
                assert type(default).model_validate({}) == default, key
                spec["default"] = {}
            else:
                spec["default"] = default
        spec["description"] = field.description
        out[f"{NAMESPACE}:{key}"] = spec
    return out


def test_every_model_key_is_declared_with_its_type_default_and_description():
    got, want = declared(), expected()
    assert set(got) == set(want), f"declare in Pulumi.yaml: {sorted(set(want) - set(got))}; remove: {sorted(set(got) - set(want))}"
    for key, spec in want.items():
        assert {k: v for k, v in got[key].items() if k != "description"} == {k: v for k, v in spec.items() if k != "description"}, key
        assert got[key]["description"].startswith(spec["description"]), f"{key}: use the model's description"
    assert set(UNDECLARED) <= {(f.alias or n) for n, f in StackConfig.model_fields.items()}, "UNDECLARED names a key the model no longer has"


def validate_config_value(spec: dict, value: Any) -> bool:
    """pulumi ValidateConfigValue (project.go), for values as YAML parses them."""
    t = spec["type"]
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value == math.trunc(value)):
            return True
        return isinstance(value, str) and value.lstrip("-").isdigit()
    if t == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if t == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and "items" in spec and all(validate_config_value(spec["items"], v) for v in value)


def test_the_block_obeys_pulumis_project_rules():
    for key, spec in (project().get("config") or {}).items():
        ours = ":" not in key or key.startswith(f"{NAMESPACE}:")
        if not ours:
            assert set(spec) == {"value"}, f"{key}: a key of another namespace may only carry a value"
            continue
        assert set(spec) <= {"type", "items", "description", "secret", "default", "value"}, key
        assert spec["type"] in SIMPLE_TYPES, key
        assert not ("default" in spec and "value" in spec), key
        if spec["type"] == "array":
            assert "items" in spec and spec["items"]["type"] in SIMPLE_TYPES, f"{key}: an array needs `items`"
        if "default" in spec:
            assert validate_config_value(spec, spec["default"]), f"{key}: the default is not a {spec['type']}"


@pytest.mark.parametrize("path", stack_files(), ids=lambda p: p.name)
def test_every_stack_file_passes_the_clis_check(path):
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    for key, spec in declared().items():
        if key not in config:
            assert "default" in spec, f"{path.name} does not set {key}, which Pulumi.yaml declares without a default"
            continue
        assert validate_config_value(spec, config[key]), f"{path.name}: {key} is not a {spec['type']}"


def merged_like_pulumi(config: dict[str, str]) -> dict[str, str]:
    merged = dict(config)
    for key, spec in declared().items():
        if key not in merged and "default" in spec:
            # pkg/workspace/config.go createConfigValue: a non-primitive default becomes a JSON object value.
            merged[key] = json.dumps(spec["default"])
    return merged


@pytest.mark.parametrize("path", stack_files(), ids=lambda p: p.name)
def test_the_defaults_pulumi_merges_in_change_nothing(path):
    config, _ = engine_config_from_file(path)
    stack = path.name[len("Pulumi."):-len(".yaml")]
    assert parse(decode(merged_like_pulumi(config)), stack=stack) == parse(decode(config), stack=stack)


def test_a_minimal_stack_gets_every_default_and_means_the_same(tmp_path, base):
    path = stack_file(tmp_path / "Pulumi.min.yaml", base)  # no network, systemPool, platform, tags
    config, _ = engine_config_from_file(path)
    merged = merged_like_pulumi(config)
    assert {"disagg:network", "disagg:systemPool", "disagg:platform", "disagg:tags"} <= set(merged) - set(config)
    assert parse(decode(merged), stack="min") == parse(decode(config), stack="min")
