"""Run the real `__main__.py` under Pulumi's mock runtime and record every resource it registers.

No cloud, no Pulumi CLI: the program talks to an in-process mock monitor. Two fixes make it deterministic
(pulumi/pulumi#7663, measured in the project's offline notes): an inline executor, so nothing runs on the
SDK's worker threads, and inputs decoded without rehydrating resource references.
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

from stacks import fakes, runmode
from stacks.config.loader import SECRET_PLACEHOLDER

PROJECT = "disagg"
SECRET = SECRET_PLACEHOLDER
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
            return SECRET
        if sig == _RESOURCE_SIG:
            return {"$ref": value.get("urn")}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return "[unknown]"
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor, recording each registration and never rehydrating inputs."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.records: list[dict[str, Any]] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the engine gives: the parent's whole qualified type chain, without the root stack's type.

        The stock mock keeps only the parent's last type and keeps the stack's, so aliases (which name an old URN)
        could not be checked against what a deployed stack holds.
        """
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
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
        ret = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        ret = ret[0] if isinstance(ret, tuple) else ret
        return resource_pb2.ResourceInvokeResponse(**{"return": _struct(ret)})

    def Call(self, request):  # noqa: N802 - method calls of remote components (e.g. Cluster.get_kubeconfig)
        args = json_format.MessageToDict(request.args)
        ret = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        ret = ret[0] if isinstance(ret, tuple) else ret
        return resource_pb2.CallResponse(**{"return": _struct(ret)})


def options_of(request: resource_pb2.RegisterResourceRequest) -> dict[str, Any]:
    """The resource options a registration carries, as the engine would receive them.

    `dependsOn` is what the request's `dependencies` holds beyond the dependencies of its inputs
    (`propertyDependencies`): the explicit `depends_on` (a resource that is both an input and a `depends_on` target
    shows only under the input). Aliases keep their wire form: `{"urn": ...}` or `{"spec": {name, type, parentUrn,
    ...}}`. Lists are sorted, so the render stays byte-identical.
    """
    from_inputs = {u for deps in request.propertyDependencies.values() for u in deps.urns}
    ct = request.customTimeouts
    aliases = [plain(json_format.MessageToDict(a)) for a in request.aliases] + [{"urn": u} for u in request.aliasURNs]
    return {
        "protect": bool(request.protect),
        "retainOnDelete": bool(request.retainOnDelete),
        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
        "ignoreChanges": sorted(request.ignoreChanges),
        "replaceOnChanges": sorted(request.replaceOnChanges),
        "aliases": sorted(aliases, key=lambda a: json.dumps(a, sort_keys=True)),
        "customTimeouts": {k: v for k, v in (("create", ct.create), ("update", ct.update), ("delete", ct.delete)) if v},
        "dependsOn": sorted(set(request.dependencies) - from_inputs),
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
) -> Run:
    """Run `<project_dir>/__main__.py` once in this process, as `pulumi up` would, and return what it registered.

    The deploy checks read `answers` (default: the fake cloud's, `fakes.FakeAnswers`) instead of AWS and only warn,
    unless `strict`: then they stop the program as a real preview does (tests use it with recorded bad answers).
    Call at most once per process: the mock runtime keeps global state.
    """
    project_dir = Path(project_dir).resolve()
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    _ensure_event_loop().set_default_executor(_InlineExecutor())
    mocks = fakes.FakeCloud(stack=stack, config=config)
    monitor = RecordingMonitor(mocks)
    mocks.monitor = monitor
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    offline = runmode.OfflineRun(monitor=monitor, answers=answers or fakes.FakeAnswers(config), strict=strict)
    runmode.install(offline)
    main = str(project_dir / "__main__.py")
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__")))
    finally:
        runmode.install(None)
    run = Run(stack=stack, records=monitor.records, warnings=list(offline.warnings))
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
    if isinstance(value, pulumi.Resource):
        return {"$ref": getattr(value, "_name", None)}
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value
