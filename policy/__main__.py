"""The disagg policy pack: `pulumi preview --policy-pack policy` (see docs/ci.md for the virtualenv).

Only this file imports pulumi_policy and builds the PolicyPack: constructing it starts the analyzer's gRPC
server and blocks. The rules themselves are plain functions in rules.py, shared with the offline check
(`python -m ops policy`) and the tests. This file only turns the engine's arguments into records.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the pack runs with its own folder as cwd

import rules  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError  # noqa: E402

UNKNOWN = "[unknown]"


def plain(value: Any) -> Any:
    """Engine props -> plain data. Values unknown during preview become "[unknown]" instead of raising, so one
    unknown field does not skip a whole stack policy."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _provider_ref(provider: Any) -> str | None:
    return getattr(provider, "urn", None) if provider is not None else None


def record_of(resource: Any) -> dict[str, Any]:
    """A PolicyResource (stack validation) as a record of the shape resources.json uses."""
    return {
        "type": resource.resource_type,
        "name": resource.name,
        "urn": resource.urn,
        "parent": getattr(resource.parent, "urn", None),
        "provider": _provider_ref(resource.provider),
        "dependencies": [d.urn for d in resource.dependencies or []],
        "propertyDependencies": {k: [d.urn for d in v] for k, v in (resource.property_dependencies or {}).items()},
        "inputs": plain(resource.props),
    }


def provider_record(provider: Any) -> dict[str, Any]:
    return {
        "type": provider.resource_type,
        "name": provider.name,
        "urn": provider.urn,
        "parent": None,
        "provider": None,
        "dependencies": [],
        "inputs": plain(provider.props),
    }


def resource_policy(policy: rules.Policy) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        stack = rules.stack_of(args.urn)
        inputs = plain(args.props)
        if policy.resource_rule is rules.required_tags:
            provider = args.provider
            default = None
            if provider is not None and provider.resource_type == rules.AWS_PROVIDER:
                default = rules.default_tags_of(plain(provider.props))
            messages = rules.required_tags(args.resource_type, inputs, stack, default_tags=default)
        else:
            assert policy.resource_rule is not None
            messages = policy.resource_rule(args.resource_type, inputs, stack)
        for message in messages:
            report(message, None)

    return ResourceValidationPolicy(name=policy.name, description=policy.description, validate=validate)


def stack_policy(policy: rules.Policy) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        records = [record_of(r) for r in args.resources]
        seen = {r["urn"] for r in records}
        for r in args.resources:
            if r.provider is not None and r.provider.urn not in seen:
                records.append(provider_record(r.provider))
                seen.add(r.provider.urn)
        stack = next((rules.stack_of(r["urn"]) for r in records if r.get("urn")), "")
        assert policy.stack_rule is not None
        for violation in policy.stack_rule(rules.Graph(records), stack):
            report(violation.message, violation.urn)

    return StackValidationPolicy(name=policy.name, description=policy.description, validate=validate)


def policies() -> list:
    return [resource_policy(p) if p.resource_rule is not None else stack_policy(p) for p in rules.POLICIES]


if __name__ == "__main__":
    PolicyPack(name="disagg", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
