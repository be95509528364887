"""The fake cloud answers only with properties the real providers have.

The provider packages ship no schema.json (pulumi-eks 4.4.0, pulumi-aws 7.51.1, pulumi-kubernetes 4.34.2 and
pulumi-random 4.21.4 carry only pulumi-plugin.json), but their Python SDKs are generated from it: every output
property of a resource, output type and invoke result is a getter carrying its schema (wire) name. A key the fake
returns that no getter names is one the engine never returns, so a program reading it works offline and fails (or
reads None) under `pulumi up`.

What is checked: every answer of every render of the session (each registration's state and each synthetic child of
a remote component, nested through the output types), and every invoke the fake knows (found in FakeCloud.call).
Types no provider SDK describes are skipped: our own components (disagg:*) and custom resources, whose schema is
their CRD (the conformance tests hold manifests to it). The deploy checks' fake account answers in boto3's shapes:
those are held to botocore's service models.
"""

from __future__ import annotations

import ast
import collections.abc
import importlib
import inspect
import textwrap
import typing
from typing import Any

import pulumi
import pytest
from pulumi import _types

from tooling import fakes
from tooling.fakes import sdk_class
from tooling.harness import shape_of

# Importing a whole SDK module warns about its deprecated resources; none of them is ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Every resource's built-in outputs, not getters.
BUILTIN = {"id", "urn"}


def result_class(token: str) -> type:
    """The SDK's result type of an invoke (`aws:ssm/getParameter:getParameter`) or a resource method
    (`eks:index:Cluster/getKubeconfig`)."""
    pkg, mod, fn = token.split(":")
    if "/" in fn:
        resource, method = fn.split("/")
        cls = sdk_class(f"{pkg}:{mod}:{resource}")
        return getattr(cls, f"{method[0].upper()}{method[1:]}Result")
    area = mod.split("/")[0]
    module = importlib.import_module(f"pulumi_{pkg}" + ("" if area == "index" else f".{area}"))
    return getattr(module, f"{fn[0].upper()}{fn[1:]}Result")


def _unwrap(t: Any) -> Any:
    """Optional[X], Output[X], Input[X] -> X (a union of several concrete types stays as is)."""
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Union:
            args = [a for a in typing.get_args(t) if a is not type(None)]
            if len(args) != 1:
                return t
            t = args[0]
        elif origin is not None and getattr(origin, "__name__", "") in ("Output", "Awaitable"):
            t = typing.get_args(t)[0]
        else:
            return t


def mismatches(shape: Any, t: Any, path: str) -> list[str]:
    """Keys of `shape` that the SDK type `t` does not have, as dotted paths."""
    t = _unwrap(t)
    if shape is None or shape == "$ref":
        return []
    origin = typing.get_origin(t)
    if isinstance(shape, list):
        if origin in (list, collections.abc.Sequence) and shape and typing.get_args(t):
            return mismatches(shape[0], typing.get_args(t)[0], f"{path}[]")
        return []
    if not isinstance(shape, dict):
        return []
    if origin in (dict, collections.abc.Mapping):
        value_type = typing.get_args(t)[1] if typing.get_args(t) else Any
        return [m for k, v in shape.items() for m in mismatches(v, value_type, f"{path}.{k}")]
    if inspect.isclass(t) and _types.is_output_type(t):
        props = _types.output_type_types(t)
        out = []
        for key, sub in shape.items():
            if key not in props:
                out.append(f"{path}.{key}")
            else:
                out.extend(mismatches(sub, props[key], f"{path}.{key}"))
        return out
    return []  # Any, a JSON blob, a primitive: nothing to hold keys to


def resource_mismatches(typ: str, shape: dict[str, Any]) -> list[str] | None:
    cls = sdk_class(typ)
    if cls is None:
        return None
    props = _types.resource_types(cls)
    out = []
    for key, sub in shape.items():
        if key in BUILTIN:
            continue
        if key not in props:
            out.append(key)
        else:
            out.extend(mismatches(sub, props[key], key))
    return out


def fake_invoke_tokens() -> list[str]:
    """Every token FakeCloud.call answers (the string constants it compares `tok` with)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fakes.FakeCloud.call)))
    tokens = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "tok":
            for comp in node.comparators:
                for const in ast.walk(comp):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        tokens.add(const.value)
    return sorted(tokens)


def test_every_answer_of_every_render_is_a_provider_output(rendered):
    checked, skipped, problems = set(), set(), []
    for stack, r in rendered.items():
        assert r.fake_answers, f"{stack}: the render wrote no fake answers"
        for typ, shape in r.fake_answers["resources"].items():
            found = resource_mismatches(typ, shape)
            if found is None:
                skipped.add(typ)
                continue
            checked.add(typ)
            problems.extend(f"{stack}: {typ}: {m}" for m in found)
        for token, shape in r.fake_answers["invokes"].items():
            problems.extend(f"{stack}: invoke {token}: {m}" for m in mismatches(shape, result_class(token), "result"))
    assert not problems, "the fake cloud answers with properties the provider does not have:\n" + "\n".join(sorted(set(problems)))
    # The check reached the types that matter: the remote components, their synthetic children, Helm releases.
    for typ in ("eks:index:Cluster", "aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "kubernetes:helm.sh/v3:Release", "aws:ec2/eip:Eip"):
        assert typ in checked, f"{typ} was not checked"
    # Skipped: our components and custom resources (their CRD is their schema), never a provider's own type.
    assert all(t.startswith("disagg:") or (t.startswith("kubernetes:") and sdk_class(t) is None) for t in skipped), skipped


def test_every_invoke_the_fake_knows_is_answered_with_the_functions_result_properties():
    tokens = fake_invoke_tokens()
    assert "aws:index/getAvailabilityZones:getAvailabilityZones" in tokens and "eks:index:Cluster/getKubeconfig" in tokens
    cloud = fakes.FakeCloud(stack="schema", config={})
    problems = []
    for token in tokens:
        answer = cloud.call(pulumi.runtime.MockCallArgs(token=token, args={"name": "/aws/service/x"}, provider=""))
        problems.extend(f"{token}: {m}" for m in mismatches(shape_of(answer), result_class(token), "result"))
    assert not problems, "the fake cloud answers invokes with properties the function does not return:\n" + "\n".join(problems)


def test_the_check_finds_a_key_the_provider_does_not_have():
    """The checker itself: a made-up key at the top, in an output type and in a list of output types is found."""
    assert resource_mismatches("aws:ec2/eip:Eip", {"allocationId": None, "allocationID": None}) == ["allocationID"]
    assert resource_mismatches("kubernetes:helm.sh/v3:Release", {"status": {"status": None, "phase": None}}) == ["status.phase"]
    assert resource_mismatches("aws:eks/cluster:Cluster", {"identities": [{"oidcs": [{"issuer": None, "issuerUrl": None}]}]}) == [
        "identities[].oidcs[].issuerUrl"
    ]
    assert resource_mismatches("eks:index:Cluster", {"core": {"cluster": "$ref", "endpointUrl": None}}) == ["core.endpointUrl"]
    assert mismatches({"names": None, "zoneNames": None}, result_class("aws:index/getAvailabilityZones:getAvailabilityZones"), "result") == [
        "result.zoneNames"
    ]


# --- the deploy checks' answers (stacks/preflight.py reads them in boto3's shapes) -------------------------------------

# Where each recorded operation lives, and how its answers are keyed in a recording (FakeCloud's RecordedAnswers).
OPERATIONS = {
    "DescribeInstanceTypeOfferings": ("ec2", "pages"),
    "DescribeCapacityReservations": ("ec2", "by id"),
    "GetServiceQuota": ("service-quotas", "by quota code"),
    "GetCallerIdentity": ("sts", "one"),
    "DescribeCluster": ("eks", "by cluster name"),
}


def boto_mismatches(shape: Any, value: Any, path: str) -> list[str]:
    """Keys botocore's output shape does not have, and strings outside the shape's enum."""
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        out = []
        for key, sub in value.items():
            if key not in shape.members:
                out.append(f"{path}.{key}")
            else:
                out.extend(boto_mismatches(shape.members[key], sub, f"{path}.{key}"))
        return out
    if shape.type_name == "list":
        return [m for item in value for m in boto_mismatches(shape.member, item, f"{path}[]")]
    if shape.type_name == "string" and getattr(shape, "enum", None) and value not in shape.enum:
        return [f"{path}: {value!r} is not one of {shape.enum}"]
    return []


def recording_mismatches(recorded: dict[str, Any]) -> list[str]:
    import botocore.session

    session = botocore.session.get_session()
    out = []
    for op, (service, keyed) in OPERATIONS.items():
        if op not in recorded:
            continue
        shape = session.get_service_model(service).operation_model(op).output_shape
        answers = recorded[op] if keyed == "pages" else [recorded[op]] if keyed == "one" else list(recorded[op].values())
        out += [m for answer in answers for m in boto_mismatches(shape, answer, op)]
    known = set(OPERATIONS) | {"region", "now", "errors", "_comment"}
    out += [f"{key}: not an operation the deploy checks record" for key in recorded if key not in known]
    out += [f"errors.{op}: not an operation the deploy checks call" for op in recorded.get("errors") or {} if op not in OPERATIONS]
    return out


def test_the_fake_accounts_answers_are_what_boto3_returns():
    """The answers the offline render gives the deploy checks (one fake account per stack file), and the recorded
    answers the tests replay, hold only keys and enum values of botocore's service models."""
    import json as _json

    from stacks.config import engine_config_from_file
    from tests.conftest import ROOT, stack_files

    problems = []
    for path in stack_files():
        config, _ = engine_config_from_file(path)
        problems += [f"fake account of {path.name}: {m}" for m in recording_mismatches(fakes.recorded_for(config))]
    for fixture in sorted((ROOT / "tests" / "fixtures" / "preflight").glob("*.json")):
        problems += [f"{fixture.name}: {m}" for m in recording_mismatches(_json.loads(fixture.read_text()))]
    assert not problems, "\n".join(problems)


def test_the_boto_check_finds_a_key_or_value_aws_never_returns():
    bad = {"GetServiceQuota": {"L-1": {"Quota": {"QuotaCode": "L-1", "Valu": 1.0}}},
           "DescribeCapacityReservations": {"cr-1": {"CapacityReservations": [{"State": "running"}]}}}  # fmt: skip
    found = recording_mismatches({**bad, "errors": {"DescribeInstances": {"Code": "UnauthorizedOperation"}}})
    assert "GetServiceQuota.Quota.Valu" in found and "errors.DescribeInstances: not an operation the deploy checks call" in found
    assert any(m.startswith("DescribeCapacityReservations.CapacityReservations[].State: 'running' is not one of") for m in found)
