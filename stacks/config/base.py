"""Shared pieces of the typed stack config: the model base, reusable field types, and the error type.

Every model is frozen, forbids unknown keys and uses camelCase aliases, so that what a user writes in
`Pulumi.<stack>.yaml` under `disagg:` is exactly what the models accept. Models are strict: Pulumi passes
structured config as JSON, so a count written as `"3"` or a flag written as `"yes"` is a type error, not a
silent coercion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

NAMESPACE = "disagg"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_AZ = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class Model(BaseModel):
    """Base of every config model: frozen, strict, unknown keys rejected, camelCase on the wire."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


class FixableError(ValueError):
    """A validator's complaint carrying the fix, so the message can say what to do."""

    def __init__(self, problem: str, fix: str, *, field: str | None = None, value: Any = None):
        super().__init__(f"{problem}. Fix: {fix}")
        self.problem = problem
        self.fix = fix
        # A model-level check names the exact key it is about, so the message points at it, not the whole object.
        self.field = field
        self.value = value


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise FixableError(
            "not a DNS-1123 label",
            "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        )
    return value


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise FixableError("not an AWS region name", "use a region such as us-east-1 or us-west-2")
    return value


def _az(value: str) -> str:
    if not _AZ.match(value):
        raise FixableError(
            "not an availability zone name", "use a zone name such as us-east-1a (not a zone id like use1-az1)"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Region = Annotated[str, AfterValidator(_region)]
AvailabilityZone = Annotated[str, AfterValidator(_az)]


@dataclass(frozen=True)
class Issue:
    """One thing wrong with the config: where (the `disagg:` key path), what was there, what is wrong, the fix.

    `rule`: the id of the rule that found it (stacks/rules.py); None for what the parser itself refuses (a type, an
    enum, a format, an unknown key).
    """

    key: str
    value: Any
    problem: str
    fix: str
    rule: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.key} = {_show(self.value)}: {self.problem}. Fix: {self.fix}"


class ConfigError(Exception):
    """The stack config is invalid. Carries every issue found, so a user fixes them all in one round."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        lines = "\n".join(f"  - {i}" for i in self.issues)
        super().__init__(f"invalid {NAMESPACE} config ({len(self.issues)} problem(s)):\n{lines}")


def key_path(*parts: str | int) -> str:
    """`key_path("gpuPools", 0, "instanceType")` -> `disagg:gpuPools[0].instanceType`."""
    out = f"{NAMESPACE}:"
    first = True
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += p if first else f".{p}"
        first = False
    return out


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


_MISSING = _Missing()
MISSING = _MISSING


class Skip(Exception):
    """A rule cannot be judged here: it read a value that did not parse (`UNPARSED`), or a precondition that another
    rule reports does not hold. The rule reports nothing for that call; every other rule still runs."""


def _skip(self, *args, **kwargs):
    raise Skip("the value did not parse")


class _Unparsed:
    """Stands, in a partly parsed config, for a value that failed to parse (its problem is already reported).

    Whatever a rule does with it (read an attribute, compare, hash, iterate, format, compute) raises `Skip`, so a
    rule that needs the value is skipped instead of judging a default the user never meant.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unparsed>"

    def __getattr__(self, name: str):
        raise Skip(name)


for _name in (
    "__bool__", "__len__", "__iter__", "__contains__", "__getitem__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__str__", "__format__", "__int__", "__float__", "__index__", "__add__", "__radd__", "__sub__",
    "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
    "__rmod__", "__pow__", "__rpow__", "__neg__", "__abs__",
):
    setattr(_Unparsed, _name, _skip)
del _name

UNPARSED = _Unparsed()
