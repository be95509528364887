"""The rule registry: every semantic check of the stack config, each with a stable id and the keys it is about.

pydantic checks types, enums and formats (stacks/config); everything that relates values to each other, to the
catalog or to what the stack builds is a rule registered here with `@rule`. A rule is a function that returns (or
yields) `Issue`s; it is called once per stack (`scope="stack"`: `f(cfg)`), once per GPU pool (`"pool"`:
`f(cfg, i, pool)`) or once per serving role (`"role"`: `f(cfg, role)`).

Every rule runs on whatever parsed, so one run reports every problem of a file: the loader hands the rules a
partly parsed config in which a value that failed to parse is `UNPARSED`, and a rule that reads it raises `Skip`.
A rule also raises `Skip` when a precondition that another rule reports does not hold (the serving layout of a
role cannot be judged while the role has no pool). A skipped call reports nothing; the others still run, so a
per-pool or per-role rule is skipped for that pool or role only.

Stages: `config` rules run in `stacks.config.parse` (an issue is an error, before anything is built); `deploy`
rules run with the deploy checks (stacks/preflight.py: errors in a real preview, warnings in the offline render).

The registry test (tests/unit/test_rules.py) requires a breaking fixture for every rule id.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from facts.conventions import ROLES
from stacks.config.base import UNPARSED, Issue, Skip

__all__ = ["UNPARSED", "Rule", "Skip", "check", "need", "registry", "rule"]

Scope = Literal["stack", "pool", "role"]
Stage = Literal["config", "deploy"]

# The modules that register rules, in the order their rules run (and their issues are listed).
RULE_MODULES = ("stacks.validation_sections", "stacks.validation", "stacks.validation_nodes", "stacks.validation_trtllm", "stacks.preflight")

_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Rule:
    id: str  # `<section>.<what-must-hold>`, kebab case; stable (tests and docs name rules by it)
    keys: tuple[str, ...]  # the `disagg:` keys it is about (`gpuPools[].efa`: the key of every pool)
    summary: str  # first line of the check's docstring
    check: Callable[..., Iterable[Issue]]
    scope: Scope = "stack"
    stage: Stage = "config"
    context: tuple[str, ...] = ()  # inputs beside the config the check takes as keyword arguments


_RULES: dict[str, Rule] = {}


def rule(rule_id: str, *keys: str, scope: Scope = "stack", stage: Stage = "config", context: tuple[str, ...] = ()):
    """Register the decorated check under `rule_id`."""

    def register(fn: Callable[..., Iterable[Issue]]) -> Callable[..., Iterable[Issue]]:
        if not _ID.match(rule_id):
            raise ValueError(f"rule id {rule_id!r}: use <section>.<kebab-name>")
        if rule_id in _RULES and _RULES[rule_id].check is not fn:
            raise ValueError(f"rule id {rule_id!r} is registered twice")
        if not keys:
            raise ValueError(f"rule {rule_id!r} names no config key")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        if not summary:
            raise ValueError(f"rule {rule_id!r} has no docstring saying what must hold")
        _RULES[rule_id] = Rule(rule_id, tuple(keys), summary, fn, scope, stage, tuple(context))
        return fn

    return register


def need(condition: object) -> None:
    """Skip the rule unless `condition` holds (a precondition another rule reports when it does not)."""
    if not condition:
        raise Skip("precondition")


def registry() -> dict[str, Rule]:
    """Every registered rule, by id, in the order they run: by module of RULE_MODULES, then as written."""
    for module in RULE_MODULES:
        importlib.import_module(module)
    seq = {rid: n for n, rid in enumerate(_RULES)}
    ordered = sorted(_RULES.values(), key=lambda r: (RULE_MODULES.index(r.check.__module__), seq[r.id]))
    return {r.id: r for r in ordered}


def _calls(cfg, scope: Scope) -> list[tuple]:
    if scope == "pool":
        return [(i, p) for i, p in enumerate(cfg.gpu_pools)]
    if scope == "role":
        return [(r,) for r in ROLES]
    return [()]


# What a rule's own code raises when it hands an `UNPARSED` value to a builtin (`"a".startswith(UNPARSED)`).
_FROM_UNPARSED = (TypeError, AttributeError, KeyError, IndexError, ValueError)


def check(
    cfg, *, stage: Stage = "config", ids: Iterable[str] | None = None, partial: bool = False, **context
) -> list[Issue]:
    """Run the rules of `stage` (or only `ids`) on a config; every issue, each naming its rule.

    `partial`: the config holds `UNPARSED` values (stacks/config/loader.py), so a rule that fails on one is skipped;
    on a complete config such a failure is a bug of the rule and propagates.
    """
    wanted = set(ids) if ids is not None else None
    issues: list[Issue] = []
    for r in registry().values():
        if r.stage != stage or (wanted is not None and r.id not in wanted):
            continue
        kwargs = {k: context.get(k) for k in r.context}
        try:
            calls = _calls(cfg, r.scope)
        except Skip:
            continue  # the list of pools itself did not parse
        for args in calls:
            try:
                found = list(r.check(cfg, *args, **kwargs))
            except Skip:
                continue
            except _FROM_UNPARSED:
                if not partial:
                    raise
                continue
            issues.extend(dataclasses.replace(i, rule=r.id) for i in found)
    return issues
