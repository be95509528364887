"""Test doubles for the delivery tooling: a Pulumi CLI that records argv, a Kubernetes client, teardown steps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pulumi.automation import CommandResult, PulumiCommand
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

HISTORY = json.dumps(
    [
        {
            "kind": "update",
            "startTime": "2026-01-01T00:00:00.000000Z",
            "endTime": "2026-01-01T00:10:00.000000Z",
            "message": "",
            "environment": {},
            "config": {},
            "result": "succeeded",
            "version": 1,
            "resourceChanges": {"create": 3},
        }
    ]
)


class FakePulumi(PulumiCommand):
    """Answers like the Pulumi CLI and records every argv; `events` is shared with the fake teardown steps so
    tests can check the order of CLI commands and teardown steps together."""

    def __init__(
        self, events: list | None = None, *, stacks: dict[str, dict[str, str]] | None = None, stack_ls: list | None = None,
        protected: dict[str, list[str]] | None = None, empty: set[str] | None = None,
    ):
        # Never call super().__init__: it runs `pulumi version`, and there is no CLI here.
        self.command = "pulumi"
        self.version = VersionInfo.parse("3.272.0")
        self.events: list = events if events is not None else []
        self.stacks = stacks if stacks is not None else {}  # existing stacks -> their tags
        self.stack_ls = stack_ls
        # Stack -> URNs of resources with `protect` in its state: destroy refuses them, as the engine does.
        self.protected = protected if protected is not None else {}
        self.empty = empty or set()  # stacks without state (created, never updated)
        self.fail: dict[str, Callable[[list[str]], str | None]] = {}  # first argv word -> stderr to fail with

    @property
    def calls(self) -> list[list[str]]:
        return [e[1] for e in self.events if e[0] == "pulumi"]

    def run(self, args, cwd, additional_env, on_output=None, on_error=None) -> CommandResult:
        args = list(args)
        self.events.append(("pulumi", args))
        stderr = self.fail.get(args[0], lambda a: None)(args)
        if stderr:
            raise create_command_error(CommandResult(stdout="", stderr=stderr, code=255))
        stack = args[args.index("--stack") + 1] if "--stack" in args else (args[args.index("-s") + 1] if "-s" in args else None)
        out = ""
        if args[:2] == ["state", "unprotect"]:
            if stack in self.empty:  # pkg/cmd/pulumi/state/state_unprotect.go on a nil snapshot
                raise create_command_error(CommandResult(stdout="", stderr="error: no resources found to unprotect", code=255))
            if "--all" in args:
                self.protected.pop(stack, None)
            return CommandResult(stdout="All resources unprotected", stderr="", code=0)
        if args[0] == "destroy" and self.protected.get(stack):
            # The engine's message (pkg/engine/lifecycletest/testdata/output/TestDestroyV2ProtectedWithProviderDependencies).
            urn = self.protected[stack][0]
            raise create_command_error(CommandResult(stdout="", stderr=(
                f'error: resource "{urn}" cannot be deleted\nbecause it is protected. To unprotect the resource, either '
                "remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`, or use the "
                f"command:\n`pulumi state unprotect '{urn}'`"
            ), code=255))
        if args[:2] == ["stack", "select"]:
            if stack not in self.stacks:
                raise create_command_error(CommandResult(stdout="", stderr=f"error: no stack named '{stack}' found", code=255))
        elif args[:2] == ["stack", "init"]:
            self.stacks.setdefault(args[2], {})
        elif args[:3] == ["stack", "tag", "set"]:
            self.stacks.setdefault(stack, {})[args[3]] = args[4]
        elif args[:3] == ["stack", "tag", "ls"]:
            out = json.dumps(self.stacks.get(stack, {}))
        elif args[:2] == ["stack", "ls"]:
            out = json.dumps(self.stack_ls if self.stack_ls is not None else [{"name": n, "current": False} for n in self.stacks])
        elif args[:2] == ["stack", "rm"]:
            self.stacks.pop(args[-1], None)
        elif args[:2] == ["stack", "output"]:
            out = "{}"
        elif args[:2] == ["stack", "history"]:
            out = HISTORY
        return CommandResult(stdout=out, stderr="", code=0)


@dataclass
class Report:
    ok: bool = True
    remaining: list[str] = field(default_factory=list)

    def render(self) -> str:
        return "ok" if self.ok else "left: " + ", ".join(self.remaining)


class FakeTeardown:
    def __init__(self, events: list, sweeps: list[Report] | None = None):
        self.events = events
        self.sweeps = list(sweeps or [])

    def before_destroy(self, target) -> Report:
        self.events.append(("pre-destroy", target))
        return Report()

    def after_destroy(self, target) -> Report:
        self.events.append(("sweep", target))
        return self.sweeps.pop(0) if self.sweeps else Report()


class FakeKube:
    """A cluster as lists of objects; deleting a Service or Ingress removes its AWS load balancer (as the
    Load Balancer Controller would), deleting a PVC with no pod using it deletes its volume."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]], on_delete: Callable[[str, str | None, str], None] | None = None):
        self.objects = {k: list(v) for k, v in objects.items()}
        self.deleted: list[tuple[str, str | None, str]] = []
        self.on_delete = on_delete

    def list(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, []))

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.deleted.append((kind, namespace, name))
        self.objects[kind] = [
            o for o in self.objects.get(kind, []) if not (o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace)
        ]
        if self.on_delete:
            self.on_delete(kind, namespace, name)
