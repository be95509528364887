"""Run the real `__main__.py` under Pulumi's mock runtime and record every resource it registers.

No cloud, no Pulumi CLI: the program talks to an in-process mock monitor. Two fixes make it deterministic
(pulumi/pulumi#7663, measured in the project's offline notes): an inline executor, so nothing runs on the
SDK's worker threads, and inputs decoded without rehydrating resource references.

Each record holds what the engine would receive: type, name, URN (by the engine's rule), parent, provider(s),
dependencies, inputs (secrets masked) and every resource option of the request. Where the stock mock monitor is
more lenient than the engine, this one does what the engine does: it refuses a duplicate URN and resource
transforms it cannot run, and returns the outputs a provider declares secret as secrets. `preview=True` runs the
program as `pulumi preview` of a new stack (the fake cloud answers computed outputs as unknown).
"""

from __future__ import annotations

import concurrent.futures
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from stacks import runmode
from tooling import fakes
from stacks.config.loader import SECRET_PLACEHOLDER

PROJECT = "disagg"
SECRET = SECRET_PLACEHOLDER
UNKNOWN = "[unknown]"  # how the render writes a value a preview does not know
_SIG = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig
_RESOURCE_SIG = rpc._special_resource_sig
_UNKNOWN = rpc.UNKNOWN


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs submitted work on the calling thread (what Pulumi's own mock tests do).

    asyncio only accepts a ThreadPoolExecutor as default executor; this one never starts a thread.
    """

    def submit(self, fn, /, *args, **kwargs):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
            fut.set_exception(exc)
        return fut


def plain(value: Any) -> Any:
    """Wire value -> plain data: secrets masked, resource references as {"$ref": urn}, whole floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return _masked(value.get("value"))
        if sig == _RESOURCE_SIG:
            return {"$ref": value.get("urn")}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return UNKNOWN
    return value


def engine_urn(stack: str, project: str, parent: str | None, type_: str, name: str) -> str:
    """A resource's URN by the engine's rule: the parent's whole qualified type chain before the type, and no
    root-stack type for a top-level resource (pulumi/pulumi : pkg/resource/deploy/deployment.go `generateURN`).

    Aliases name old URNs by this rule, so the render's URNs must follow it to be checked against a deployed stack.
    """
    if parent:
        qualified = parent.split("::")[2]
        if qualified != "pulumi:pulumi:Stack":
            type_ = f"{qualified}${type_}"
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def _masked(value: Any) -> Any:
    """A secret with its structure kept and every value masked: a Secret's `stringData` (which pulumi-kubernetes
    makes secret as a whole) renders as `{token: "[secret]"}`, a valid object, not a string in its place."""
    if isinstance(value, dict) and value.get(_SIG) == _SECRET_SIG:
        return _masked(value.get("value"))
    if isinstance(value, dict) and value.get(_SIG) is None:
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return SECRET


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor, recording each registration and never rehydrating inputs."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.records: list[dict[str, Any]] = []
        self._urns: set[str] = set()
        # The shape (keys, nested) of what the fake cloud answered, per resource type and per invoke token: tests
        # diff them against the provider SDKs' output properties (tests/program/test_fakes_schema.py).
        self.answered: dict[str, Any] = {}
        self.invoked: dict[str, Any] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives (the stock mock keeps only the parent's last type, and the stack's type)."""
        return engine_urn(pulumi.get_stack(), pulumi.get_project(), parent, type_, name)

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        if urn in self._urns:
            # The engine refuses a second registration of one URN (pulumi/pulumi : sdk/go/common/diag/errors.go
            # GetDuplicateResourceURNError, error 2001); the stock mock monitor records both, and the render would
            # show a stack `pulumi up` cannot create.
            raise RuntimeError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self._urns.add(urn)
        if request.transforms:
            # The engine calls a resource's transforms back before registering it; this monitor does not, so the
            # render would show inputs and options the engine never sees. Refuse rather than record them.
            raise RuntimeError(f"{request.type} {request.name}: resource transforms are not run by the offline harness")
        raw = json_format.MessageToDict(request.object)
        args = pulumi_mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=raw,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        # An aliased resource keeps the physical name and id it had under its old URN (the provider reuses old
        # auto-names, pulumi-terraform-bridge pkg/tfbridge/schema.go "use the old value"), so the fake cloud names it
        # after the alias, as the deployed resource was.
        aliases = [a.urn for a in request.aliases if a.urn] + list(request.aliasURNs)
        identity = aliases[0].rsplit("::", 1)[-1] if aliases else request.name
        id_, state = self.mocks.new_resource(args, identity=identity) if isinstance(self.mocks, fakes.FakeCloud) else self.mocks.new_resource(args)
        # The engine marks these outputs secret whatever the provider returns (the SDKs list a provider's secret
        # outputs here, e.g. pulumi-random's `result`); the mock must too, or a program reading one would render it
        # in plain text though `pulumi up` keeps it secret.
        state = {k: _secret(v) if k in request.additionalSecretOutputs else v for k, v in state.items()}
        # Inputs come back as the engine passes them through (the SDK named them from the same schema); what the
        # fake cloud adds or changes is its answer.
        answer = {k: v for k, v in state.items() if k not in raw or raw[k] != v}
        self.answered[request.type] = merge_shapes(self.answered.get(request.type), shape_of(answer))
        obj = _struct(state)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        self.records.append(
            {
                "type": request.type,
                "name": request.name,
                "urn": urn,
                # The id the fake cloud gave it: lets readers of resources.json join references (vpcId, subnetIds)
                # to the resources they point at, as they would in real state.
                "id": id_ or None,
                "parent": request.parent or None,
                "provider": request.provider or None,
                # Remote components (pulumi-eks) get a provider map instead of one provider.
                "providers": dict(sorted(request.providers.items())),
                "custom": bool(request.custom),
                "remote": bool(request.remote),
                "dependencies": sorted(set(request.dependencies)),
                "options": options_of(request),
                "inputs": plain(raw),
            }
        )
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj)

    def Invoke(self, request):  # noqa: N802 - invokes, decoded and answered without pumping the event loop
        args = json_format.MessageToDict(request.args)
        if request.tok == "pulumi:pulumi:getResource":
            reg = self.resources.get(args["urn"])
            if reg is None:
                raise Exception(f"unknown resource {args['urn']}")
            return resource_pb2.ResourceInvokeResponse(**{"return": _struct(reg._asdict())})
        return resource_pb2.ResourceInvokeResponse(**{"return": _struct(self._call(request))})

    def Call(self, request):  # noqa: N802 - method calls of remote components (e.g. Cluster.get_kubeconfig)
        return resource_pb2.CallResponse(**{"return": _struct(self._call(request))})

    def _call(self, request) -> dict[str, Any]:
        args = json_format.MessageToDict(request.args)
        ret = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        ret = ret[0] if isinstance(ret, tuple) else ret
        self.invoked[request.tok] = merge_shapes(self.invoked.get(request.tok), shape_of(ret))
        return ret

    def synthetic(self) -> dict[str, Any]:
        """Shapes of the resources the fake cloud registered itself (the children remote components return as
        references), per type: they are answers too."""
        recorded = {r["urn"] for r in self.records}
        out: dict[str, Any] = {}
        for urn, reg in sorted(self.resources.items()):
            if urn not in recorded:
                typ = urn.split("::")[2].split("$")[-1]
                out[typ] = merge_shapes(out.get(typ), shape_of(dict(reg.state)))
        return out


def _secret(value: Any) -> Any:
    if isinstance(value, dict) and value.get(_SIG) == _SECRET_SIG:
        return value
    return {_SIG: _SECRET_SIG, "value": value}


def shape_of(value: Any) -> Any:
    """The keys of a wire value, nested, without the values: secrets unwrapped, resource references as "$ref",
    lists as the merged shape of their items."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return shape_of(value.get("value"))
        if sig == _RESOURCE_SIG:
            return "$ref"
        return {k: shape_of(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        merged = None
        for item in value:
            merged = merge_shapes(merged, shape_of(item))
        return [merged] if merged is not None else []
    return None


def merge_shapes(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge_shapes(a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
    if isinstance(a, list) and isinstance(b, list):
        merged = merge_shapes(a[0] if a else None, b[0] if b else None)
        return [merged] if merged is not None else []
    return a if a is not None else b


def options_of(request: resource_pb2.RegisterResourceRequest) -> dict[str, Any]:
    """Every resource option a registration carries, as the engine receives it (pulumi 3.272.0 resource.proto).

    `dependsOn` is what the request's `dependencies` holds beyond the dependencies of its inputs
    (`propertyDependencies`): the explicit `depends_on` (a resource that is both an input and a `depends_on` target
    shows only under the input). Aliases keep their wire form: `{"urn": ...}` or `{"spec": {name, type, parentUrn,
    ...}}`. `version` and `pluginDownloadURL` pick the provider plugin the engine runs. Left out: the SDK's
    capability flags (acceptSecrets, acceptResources, supportsPartialValues, supportsResultReporting, aliasSpecs),
    source positions and stack traces (paths of this checkout), and transforms (refused by the monitor). Lists are
    sorted and absent values are None or empty, so the render stays byte-identical.
    """
    from_inputs = {u for deps in request.propertyDependencies.values() for u in deps.urns}
    ct = request.customTimeouts
    aliases = [plain(json_format.MessageToDict(a)) for a in request.aliases] + [{"urn": u} for u in request.aliasURNs]
    hooks = request.hooks
    return {
        "protect": bool(request.protect),
        "retainOnDelete": bool(request.retainOnDelete),
        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
        "ignoreChanges": sorted(request.ignoreChanges),
        "replaceOnChanges": sorted(request.replaceOnChanges),
        "aliases": sorted(aliases, key=lambda a: json.dumps(a, sort_keys=True)),
        "customTimeouts": {k: getattr(ct, k) for k in ("create", "update", "delete", "read") if getattr(ct, k)},
        "dependsOn": sorted(set(request.dependencies) - from_inputs),
        "additionalSecretOutputs": sorted(request.additionalSecretOutputs),
        "hideDiffs": sorted(request.hideDiffs),
        "deletedWith": request.deletedWith or None,
        "replaceWith": sorted(request.replace_with),
        "replacementTrigger": plain(json_format.MessageToDict(request.replacement_trigger))
        if request.HasField("replacement_trigger")
        else None,
        "importId": request.importId or None,
        "version": request.version or None,
        "pluginDownloadURL": request.pluginDownloadURL or None,
        "hooks": {
            f.name: sorted(getattr(hooks, f.name)) for f in hooks.DESCRIPTOR.fields if getattr(hooks, f.name)
        },
        "envVarMappings": dict(sorted(request.envVarMappings.items())),
    }


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    """Plain data -> the protobuf Struct the SDK decodes, built synchronously.

    The stock monitor awaits the SDK's serializer with `_sync_await`, which pumps the event loop from inside a
    registration; with the inline executor that nests one registration inside another, and a stack of a few
    hundred resources (32 GPU pools) hit Python's recursion limit in about one run in six. The fake cloud only
    returns plain data (resource references and secrets are already in their wire form), so no serializer is needed.
    """
    out = struct_pb2.Struct()
    out.update(data)
    return out


@dataclass
class Run:
    stack: str
    records: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    # What the deploy checks (stacks/preflight.py) found; a real preview would have stopped on each of them.
    warnings: list[str] = field(default_factory=list)
    # The shapes of the fake cloud's answers: {"resources": {type: shape}, "invokes": {token: shape}}.
    fake_answers: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == type_]


def run_program(
    project_dir: str | Path,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    *,
    answers: Any = None,
    strict: bool = False,
    preview: bool = False,
) -> Run:
    """Run `<project_dir>/__main__.py` once in this process, as `pulumi up` would, and return what it registered.

    `preview`: run it as `pulumi preview` of a new stack does instead: the fake cloud answers every computed output
    as unknown (tooling/fakes.py), so applies on them do not run. The URNs registered must be the same as up's.

    The deploy checks read `answers` (default: the fake cloud's, `fakes.FakeAnswers`) instead of AWS and only warn,
    unless `strict`: then they stop the program as a real preview does (tests use it with recorded bad answers).
    Call at most once per process: the mock runtime keeps global state.
    """
    project_dir = Path(project_dir).resolve()
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    _ensure_event_loop().set_default_executor(_InlineExecutor())
    mocks = fakes.FakeCloud(stack=stack, config=config, preview=preview)
    monitor = RecordingMonitor(mocks)
    mocks.monitor = monitor
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    offline = runmode.OfflineRun(monitor=monitor, answers=answers or fakes.FakeAnswers(config), strict=strict)
    runmode.install(offline)
    main = str(project_dir / "__main__.py")
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
    finally:
        runmode.install(None)
    run = Run(stack=stack, records=monitor.records, warnings=list(offline.warnings))
    resources = dict(monitor.answered)
    for typ, shape in monitor.synthetic().items():
        resources[typ] = merge_shapes(resources.get(typ), shape)
    run.fake_answers = {"resources": dict(sorted(resources.items())), "invokes": dict(sorted(monitor.invoked.items()))}
    root = pulumi.runtime.get_root_resource()
    for key, value in sorted((root.outputs or {}).items()):
        out = pulumi.Output.from_input(value)
        resolved = _sync_await(out.future(with_unknowns=True))
        secret = _sync_await(out.is_secret())
        if secret:
            run.secret_outputs.add(key)
        run.outputs[key] = SECRET if secret else plain(_to_plain(resolved))
    return run


def _to_plain(value: Any) -> Any:
    if isinstance(value, pulumi.output.Unknown):  # a preview's output the engine does not know yet
        return _UNKNOWN
    if isinstance(value, pulumi.Resource):
        return {"$ref": getattr(value, "_name", None)}
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value
