"""Reading the `disagg:` config: from the Pulumi runtime (as `pulumi up` passes it) or from a stack file.

Pulumi hands a program every config value as a string, with structured values JSON-encoded. `decode` turns
those strings back into data, `parse` validates the data into a `StackConfig` and runs every rule of the registry
(stacks/rules.py) on what parsed, and every problem found is raised together in one `ConfigError`.
"""

from __future__ import annotations

import difflib
import functools
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from stacks.config.base import MISSING, NAMESPACE, UNPARSED, ConfigError, FixableError, Issue, key_path
from stacks.config.stack import StackConfig

SECRET_PLACEHOLDER = "[secret]"
# Config keys (paths under `disagg:`) that must be Pulumi secrets. A nested one is set with `--path`, and Pulumi then
# marks its whole top-level key secret (`disagg:serving`), which is what the engine reports for it.
SECRET_KEYS = ("hfToken", "serving.router.apiKey")


def plaintext_secrets(values: Mapping[str, Any], is_secret) -> tuple[str, ...]:
    """The SECRET_KEYS set in decoded `values` whose top-level key is not a secret (`is_secret("disagg:<key>")`)."""
    out = []
    for path in SECRET_KEYS:
        top, *rest = path.split(".")
        v: Any = values.get(top)
        for part in rest:
            v = v.get(part) if isinstance(v, dict) else None
        if v is not None and not is_secret(f"{NAMESPACE}:{top}"):
            out.append(path)
    return tuple(out)

# Top-level keys whose value is a plain string: kept as given, never JSON-decoded ("1.33" stays a string).
_STRING_KEYS = {"name", "region", "hfToken"}

_FIXES = {
    "missing": "set it (see the config reference in the README)",
    "int_type": "write a whole number, without quotes",
    "int_from_float": "write a whole number",
    "float_type": "write a number, without quotes",
    "bool_type": "write true or false, without quotes",
    "string_type": "write a string (quote it in YAML)",
    "list_type": "write a list",
    "dict_type": "write a mapping of keys to values",
    "model_type": "write a mapping of keys to values",
    "model_attributes_type": "write a mapping of keys to values",
    "literal_error": "use one of the values listed",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "too_short": "add entries",
    "too_long": "remove entries",
}


def decode(raw: Mapping[str, str]) -> dict[str, Any]:
    """Engine config (`{"disagg:key": "<string>"}`) -> `{"key": value}` for the `disagg:` namespace only."""
    out: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for full, value in raw.items():
        if not full.startswith(prefix):
            continue
        key = full[len(prefix):]
        if key in _STRING_KEYS or not isinstance(value, str):
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value  # a bare word; the model reports it if a string is not what the key takes
    return out


def parse(
    values: Mapping[str, Any], *, stack: str, plaintext_secrets: tuple[str, ...] = (), aws_region: str | None = None
) -> StackConfig:
    """Validate decoded values into a `StackConfig`, or raise `ConfigError` with every problem found.

    pydantic checks types, enums and formats; then every rule of the registry (stacks/rules.py) runs on whatever
    parsed, so a file with several independent mistakes reports them all in one run.

    `aws_region` is the stack's `aws:region` (outside the `disagg:` namespace, so not among `values`).
    """
    from stacks.rules import check  # late: the rules need the catalog, the plan and the builders' constants

    data = dict(values)
    data.setdefault("name", stack)
    try:
        cfg = StackConfig.model_validate(data)
        issues: list[Issue] = []
        partial = False
    except ValidationError as exc:
        issues = _issues_from(exc, data)
        cfg = _salvage(StackConfig, data, _failed_locs(exc))
        partial = True
    issues += check(cfg, partial=partial, plaintext_secrets=plaintext_secrets, aws_region=aws_region)
    if issues:
        raise ConfigError(issues)
    return cfg


def from_pulumi() -> StackConfig:
    """The config of the running Pulumi program, exactly as `pulumi up` (or the offline render) passes it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values = decode(raw)
    plaintext = plaintext_secrets(values, runtime_config.is_config_secret)
    return parse(values, stack=pulumi.get_stack(), plaintext_secrets=plaintext, aws_region=raw.get("aws:region"))



class StackFileSyntaxError(ConfigError):
    """The stack file is not valid YAML: where (file, line, column), the line itself, and how to fix it."""

    def __init__(self, path: str | Path, line: int, column: int, problem: str, fix: str, excerpt: str):
        self.path, self.line, self.column = Path(path), line, column
        super().__init__([Issue(f"{Path(path).name}:{line}:{column}", MISSING, f"YAML syntax error: {problem}", fix)])
        # The file name is prefixed by the caller (render prints `<file>: <error>`), as for every ConfigError.
        self.args = (f"line {line}, column {column}: YAML syntax error: {problem}\n{excerpt}\nFix: {fix}",)

    def __str__(self) -> str:
        return self.args[0]


class _StackFileLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping.

    PyYAML keeps the last value silently; the Pulumi CLI reads stack files with gopkg.in/yaml.v3, which refuses
    them (`mapping key "..." already defined at line N`), so `pulumi up` would fail on a file the render accepted.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base constructor reports it
                    break
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is written twice (first at line {first.start_mark.line + 1})", key_node.start_mark
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _syntax_fix(problem: str) -> str:
    if "\\t" in problem or "tab" in problem:
        return "indent with spaces: YAML does not allow tabs"
    if "written twice" in problem:
        return "keep one of the two entries (Pulumi refuses a stack file with a duplicated key)"
    if "flow mapping" in problem or "flow sequence" in problem:
        return "close the { or [ opened here, or quote the value if the bracket is part of a string"
    if "quoted scalar" in problem:
        return "close the quote opened here"
    return (
        "check the indentation of this line against the line above (keys of one mapping line up, list items start "
        "with '- ' at one indentation), and quote a value that contains ': ' or starts with {, [, *, &, !, % or @"
    )


def load_stack_file(path: str | Path) -> Any:
    """Parse a stack file; a YAML error becomes a `StackFileSyntaxError` naming the line and column."""
    path = Path(path)
    text = path.read_text()
    try:
        return yaml.load(text, Loader=_StackFileLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise StackFileSyntaxError(path, 1, 1, str(exc), _syntax_fix(str(exc)), "") from None
        problem = exc.problem or str(exc)
        lines = text.splitlines()
        if mark.line >= len(lines) and exc.context_mark is not None:
            # The file ended inside something left open (a `{`, `[` or quote): point at where it was opened.
            mark = exc.context_mark
            problem += f" ({exc.context}: it is never closed)"
        elif exc.context and exc.context_mark is not None:
            problem += f" ({exc.context}, line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        shown = [n for n in (mark.line - 1, mark.line) if 0 <= n < len(lines)]
        width = len(str(mark.line + 1))
        excerpt = [f"  {n + 1:>{width}} | {lines[n]}" for n in shown]
        excerpt.append(f"  {'':>{width}} | {' ' * mark.column}^")
        raise StackFileSyntaxError(path, mark.line + 1, mark.column + 1, problem, _syntax_fix(problem), "\n".join(excerpt)) from None


def engine_config_from_file(path: str | Path, secure_value: str | None = None) -> tuple[dict[str, str], list[str]]:
    """A `Pulumi.<stack>.yaml` as the engine would pass it: string values, `secure:` values as placeholders.

    Returns the config map and the keys that are secret. Keys without a namespace belong to the project. A YAML
    syntax error raises `StackFileSyntaxError` (a `ConfigError`) with the line and column.

    `secure_value`: what every `secure:` value decrypts to. Offline nothing can decrypt them, so by default they
    read as `[secret]`; a test gives a canary instead, which the program then receives as a real secret, as the CLI
    passes a decrypted value, so a leak of it anywhere in the render can be found.
    """
    doc = load_stack_file(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError([Issue(str(path), type(doc).__name__, "a stack file must be a mapping", "start the file with `config:`")])
    config = doc.get("config") or {}
    plaintext = SECRET_PLACEHOLDER if secure_value is None else secure_value
    out: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in config.items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        value, secret = _strip_secure(value, plaintext)
        if secret:
            secrets.append(full)
        out[full] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out, secrets


def _strip_secure(value: Any, plaintext: str) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return plaintext, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], s = _strip_secure(v, plaintext)
            found = found or s
        return out, found
    if isinstance(value, list):
        items = [_strip_secure(v, plaintext) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _issues_from(exc: ValidationError, data: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for err in exc.errors():
        loc = list(err["loc"])
        etype = err["type"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FixableError):
            if cause.field:
                loc.append(cause.field)
            value = cause.value if cause.value is not None else _lookup(data, loc)
            issues.append(Issue(key_path(*loc), value, cause.problem, cause.fix))
            continue
        if etype == "extra_forbidden":
            known = _known_keys(StackConfig, loc[:-1])
            guess = _did_you_mean(str(loc[-1]), known)
            issues.append(
                Issue(
                    key_path(*loc),
                    err.get("input"),
                    f"unknown key (did you mean {guess}?)" if guess else "unknown key",
                    f"remove it or fix its spelling; keys allowed here: {', '.join(known)}" if known else "remove it",
                )
            )
            continue
        value = MISSING if etype == "missing" else err.get("input")
        problem = "required key is not set" if etype == "missing" else err["msg"][0].lower() + err["msg"][1:]
        issues.append(Issue(key_path(*loc), value, problem, _FIXES.get(etype, "see the config reference in the README")))
    return issues


def _did_you_mean(key: str, known: list[str]) -> str | None:
    """The allowed key nearest to a misspelt one: case, `_` and `-` ignored (`instance_type`, `reservationID`)."""
    plain = {k.lower().replace("_", "").replace("-", ""): k for k in known}
    found = difflib.get_close_matches(key.lower().replace("_", "").replace("-", ""), list(plain), n=1, cutoff=0.75)
    return plain[found[0]] if found else None


# ---- a partly parsed config for the rules ---------------------------------------------------------------------------


def _failed_locs(exc: ValidationError) -> list[tuple]:
    """Where the values that failed to parse are. An unknown key ends in `_EXTRA`: it is dropped (and reported),
    and the object around it parses without it."""
    return [tuple(e["loc"]) + ((_EXTRA,) if e["type"] == "extra_forbidden" else ()) for e in exc.errors()]


_EXTRA = object()


def _salvage(annotation: Any, raw: Any, failed: list[tuple]) -> Any:
    """`raw` parsed as `annotation` where it parses, `UNPARSED` in the place of each value that does not.

    `failed` are the locations (relative to `raw`) of the values pydantic refused. A model or a list of models is
    rebuilt field by field and item by item around them; a value that failed as a whole, or a scalar, becomes
    `UNPARSED`, which any rule reading it skips on (stacks/rules.py).
    """
    if not failed:
        return _adapter(annotation).validate_python(raw)
    if any(not loc for loc in failed):
        return UNPARSED  # the value itself: a wrong type, a missing required key, a format
    if any(loc == (_EXTRA,) for loc in failed):
        return UNPARSED  # an unknown key where no model is (cannot happen: only models forbid extra keys)
    base = _unwrap(annotation)
    if typing.get_origin(base) is list:
        if not isinstance(raw, list):
            return UNPARSED
        (item,) = typing.get_args(base)
        return [_salvage(item, v, [loc[1:] for loc in failed if loc[0] == i]) for i, v in enumerate(raw)]
    if not (isinstance(base, type) and issubclass(base, BaseModel) and isinstance(raw, dict)):
        return UNPARSED
    model = base
    if any(d.info.mode != "after" for d in model.__pydantic_decorators__.model_validators.values()):
        return UNPARSED  # a model that rewrites its input before validation cannot be rebuilt field by field
    # An unknown key of this model ((key, _EXTRA)) matches no field below, so it is left out.
    values = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        given = alias if alias in raw else name if name in raw else None  # populate_by_name: either spelling
        below = [loc[1:] for loc in failed if loc[0] in (alias, name)]
        if given is not None:
            values[name] = _salvage(_field_type(model, name), raw[given], below)
        elif below:
            values[name] = UNPARSED  # required and not set
    return model.model_construct(**values)


def _unwrap(annotation: Any) -> Any:
    """`Annotated[T, ...]` and `T | None` -> T."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


@functools.cache
def _field_type(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    # A model carries its own (strict) config; anything else is validated as strictly as a model field is.
    own = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return TypeAdapter(annotation) if own else TypeAdapter(annotation, config=ConfigDict(strict=True))


def _lookup(data: Any, loc: list) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return data


def _known_keys(model: type[BaseModel], loc: list) -> list[str]:
    """Keys a model accepts at `loc` (walking nested models and lists of models)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        current = _model_in(field.annotation, typing)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _model_in(annotation: Any, typing) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg, typing)
        if found is not None:
            return found
    return None
