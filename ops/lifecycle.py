"""Ephemeral review stacks (`pr-<number>`) on the Pulumi Automation API.

- `review_up`: create or select `pr-<n>`, copy the cheap profile's config (`Pulumi.dev.yaml`) into it, tag its
  expiry, then `pulumi up`. The config goes through `pulumi config set-all`, so the CLI writes the generated
  `Pulumi.pr-<n>.yaml`; committed stack files are only read.
- `review_destroy`: teardown pre-step, `pulumi state unprotect --all --yes -s <stack>`, `pulumi destroy`, sweep,
  `pulumi stack rm`. If anything is left behind the stack is kept, so the janitor tries again and the leftovers
  stay visible.
- `janitor`: destroy every ephemeral stack whose `disagg:expires-at` tag has passed (Pulumi Cloud TTL stacks
  need Pulumi Deployments; this works with any backend).

The Pulumi CLI is reached only through an injectable `PulumiCommand` (`LocalWorkspace(pulumi_command=...)`), so
unit tests record the exact commands without a CLI; the teardown steps are injectable too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import yaml
from pulumi.automation import (
    CommandError,
    ConcurrentUpdateError,
    ConfigValue,
    LocalWorkspace,
    PulumiCommand,
    Stack,
    StackNotFoundError,
)

PROFILE = "dev"  # the cheap profile review stacks copy (g6e, no p5)
TAG_EXPIRES = "disagg:expires-at"
TAG_CREATED = "disagg:created-at"
TAG_PR = "disagg:pr"
# Where the stack's cluster lives, kept with the stack: teardown must not depend on today's profile config.
TAG_CLUSTER = "disagg:cluster"
TAG_REGION = "disagg:region"
EPHEMERAL = re.compile(r"^(pr|ci)-\d+$")
NAMESPACE = "disagg"
# Dropped from the copy: names (so a review stack's AWS names default to its stack name, `pr-7`, instead of
# colliding with the profile's cluster) and deletion protection (a review stack must always be destroyable).
_NAME_KEYS = ("disagg:name",)
_NESTED_DROPPED = {"disagg:cluster": ("name", "deletionProtection")}

Log = Callable[[str], None]


class TeardownIncomplete(RuntimeError):
    """Resources were left behind; the stack is kept so the next run (or a person) can finish."""


# `pulumi state unprotect --all` on a stack with no state (created, never updated) fails with this
# (pulumi pkg/cmd/pulumi/state/state_unprotect.go, unprotectAllResources): nothing is protected then.
_NOTHING_TO_UNPROTECT = "no resources found to unprotect"


def unprotect_command(stack: str) -> list[str]:
    """The contract for lifting `protect` before a teardown (components set it on the cluster, VPC, subnets, KMS
    key, and on GPU node groups when deletionProtection is on): every resource of the stack, no prompt."""
    return ["state", "unprotect", "--all", "--yes", "-s", stack]


def review_stack_name(pr_number: int | str) -> str:
    number = int(str(pr_number).lstrip("#"))
    if number <= 0:
        raise ValueError(f"not a pull request number: {pr_number!r}")
    return f"pr-{number}"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# ---- the cheap profile's config --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileConfig:
    values: dict[str, Any]  # plain config, keys fully qualified (`disagg:gpuPools`, `aws:region`)
    secret_keys: tuple[str, ...]  # `secure:` values: encrypted for the profile's stack, set again from CI


def _has_secure(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def load_profile(work_dir: Path, profile: str = PROFILE) -> ProfileConfig:
    path = Path(work_dir) / f"Pulumi.{profile}.yaml"
    doc = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    secrets: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if _has_secure(value):
            secrets.append(full)
        else:
            values[full] = value
    return ProfileConfig(values, tuple(secrets))


def review_config(profile: ProfileConfig) -> dict[str, Any]:
    """The profile's plain config without deployment names and deletion protection."""
    values = {k: v for k, v in profile.values.items() if k not in _NAME_KEYS}
    for key, subs in _NESTED_DROPPED.items():
        if isinstance(values.get(key), Mapping):
            values[key] = {k: v for k, v in values[key].items() if k not in subs}
    return values


def config_json(values: Mapping[str, Any]) -> str:
    """`pulumi config set-all --json` input: the format of `pulumi config --json`."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in sorted(values.items()):
        if isinstance(value, str):
            out[key] = {"value": value, "secret": False}
        else:
            out[key] = {"value": json.dumps(value, sort_keys=True), "objectValue": value, "secret": False}
    return json.dumps(out, sort_keys=True)


@dataclass(frozen=True)
class StackTarget:
    """What teardown needs to know about a stack: its name, its cluster and region."""

    stack: str
    cluster: str
    region: str


def target_of(stack: str, values: Mapping[str, Any]) -> StackTarget:
    cluster_cfg = values.get("disagg:cluster") if isinstance(values.get("disagg:cluster"), Mapping) else {}
    name = values.get("disagg:name") or stack
    cluster = (cluster_cfg or {}).get("name") or name
    region = values.get("disagg:region") or values.get("aws:region") or "us-east-1"
    return StackTarget(stack, str(cluster), str(region))


# ---- teardown steps (injectable) -----------------------------------------------------------------------------


class Teardown(Protocol):
    def before_destroy(self, target: StackTarget) -> Any:
        """Clean what Kubernetes created in AWS; returns a report with `.ok` and `.render()`."""
        ...

    def after_destroy(self, target: StackTarget) -> Any:
        """Sweep leftovers by tag; returns a report with `.ok`, `.remaining` and `.render()`."""
        ...


class AwsTeardown:
    """The real teardown: kubectl against the cluster, boto3 against the region (ops.teardown)."""

    def __init__(self, *, timeout: float = 900, sweep_attempts: int = 5, log: Log = print):
        self.timeout = timeout
        self.sweep_attempts = sweep_attempts
        self.log = log

    def before_destroy(self, target: StackTarget) -> Any:
        from ops import teardown
        from ops.kube import KubeError, Kubectl

        try:
            kube = Kubectl.for_eks(target.cluster, target.region)
        except KubeError as exc:
            self.log(f"warning: {exc}; skipping the in-cluster cleanup (the sweep still runs)")
            kube = None
        aws = teardown.AwsClients.for_region(target.region)
        return teardown.pre_destroy(kube, aws, target.cluster, timeout=self.timeout, log=self.log)

    def after_destroy(self, target: StackTarget) -> Any:
        from ops import teardown

        aws = teardown.AwsClients.for_region(target.region)
        return teardown.sweep(aws, target.cluster, target.stack, attempts=self.sweep_attempts, log=self.log)


# ---- the lifecycle -------------------------------------------------------------------------------------------


@dataclass
class JanitorEntry:
    stack: str
    action: str  # kept | destroyed | skipped | failed
    detail: str = ""


@dataclass
class Lifecycle:
    work_dir: Path
    pulumi_command: PulumiCommand | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    profile: str = PROFILE
    teardown: Teardown | None = None
    policy_packs: tuple[str, ...] = ()
    org: str = ""  # Pulumi Cloud organization of the stacks (`<org>/pr-7`); empty: the backend's default
    # For new review stacks (`pulumi stack init --secrets-provider`): on a self-managed backend, a cloud KMS key
    # (`awskms://alias/...`) decrypted through the job's AWS role, so no passphrase reaches a job running PR code.
    # Empty: the backend's default (Pulumi Cloud's own).
    secrets_provider: str = ""
    log: Log = print

    def qualified(self, short: str) -> str:
        return f"{self.org}/{short}" if self.org else short

    def workspace(self) -> LocalWorkspace:
        # No project_settings: the workspace reads the committed Pulumi.yaml and never rewrites it.
        return LocalWorkspace(
            work_dir=str(self.work_dir), pulumi_command=self.pulumi_command, env_vars=dict(self.env),
            secrets_provider=self.secrets_provider or None,
        )

    def _teardown(self) -> Teardown:
        if self.teardown is None:
            self.teardown = AwsTeardown(log=self.log)
        return self.teardown

    def _configure(self, stack: Stack, secrets: Mapping[str, str]) -> StackTarget:
        profile = load_profile(self.work_dir, self.profile)
        values = review_config(profile)
        stack.set_all_config_json(config_json(values))
        for key, value in sorted(secrets.items()):
            stack.set_config(key, ConfigValue(value=value, secret=True))
        missing = [k for k in profile.secret_keys if k not in secrets]
        if missing:
            self.log(f"note: {', '.join(missing)} are secrets of Pulumi.{self.profile}.yaml and were not copied; pass them with --secret-env")
        return target_of(stack.name.rsplit("/", 1)[-1], values)

    def review_up(
        self, pr_number: int | str, *, now: datetime, ttl_hours: float = 24, secrets: Mapping[str, str] | None = None
    ) -> Any:
        """Create (or update) the review stack of a pull request from the cheap profile and `pulumi up` it."""
        name = self.qualified(review_stack_name(pr_number))
        ws = self.workspace()
        try:
            stack = Stack.select(name, ws)
            created = False
        except StackNotFoundError:
            stack = Stack.create(name, ws)
            created = True
        target = self._configure(stack, secrets or {})
        # The TTL runs from creation (as Pulumi Cloud's TTL stacks do): pushes to the PR do not extend it.
        tags = {} if created else ws.list_tags(name)
        if TAG_EXPIRES not in tags:
            ws.set_tag(name, TAG_EXPIRES, iso(now + timedelta(hours=ttl_hours)))
            ws.set_tag(name, TAG_CREATED, iso(now))
            ws.set_tag(name, TAG_PR, str(int(str(pr_number).lstrip("#"))))
            ws.set_tag(name, TAG_CLUSTER, target.cluster)
            ws.set_tag(name, TAG_REGION, target.region)
        # No --refresh (as in CI's deploys): the update applies the program as it is; a refresh is a separate,
        # deliberate step (docs/runbook.md).
        # show_secrets=False: the Automation API otherwise reads the update summary with `stack history
        # --show-secrets`, which puts the decrypted HF token into the returned summary's config (and, on Pulumi
        # Cloud, logs a secrets-decryption event). Nothing here needs secrets back.
        return stack.up(
            message=f"review stack of PR #{int(str(pr_number).lstrip('#'))}",
            on_output=self.log,
            policy_packs=list(self.policy_packs) or None,
            show_secrets=False,
        )

    def target(self, name: str, tags: Mapping[str, str]) -> StackTarget:
        """The stack's cluster and region: from its tags, else as the profile would name them."""
        short = name.rsplit("/", 1)[-1]
        fallback = target_of(short, review_config(load_profile(self.work_dir, self.profile)))
        return StackTarget(short, tags.get(TAG_CLUSTER) or fallback.cluster, tags.get(TAG_REGION) or fallback.region)

    def unprotect(self, ws: LocalWorkspace, name: str, *, ephemeral_only: bool = True) -> None:
        """`pulumi state unprotect --all --yes -s <stack>`: lift `protect` from every resource in the state.

        Only for stacks about to be destroyed on purpose; by default only ephemeral ones (`pr-<n>`, `ci-<n>`),
        so a wrong name can never strip prod's protection. `pulumi destroy` reads `protect` from the state (it does
        not run the program), so after this it deletes what the program protects.
        """
        short = name.rsplit("/", 1)[-1]
        if ephemeral_only and not EPHEMERAL.match(short):
            raise ValueError(f"refusing to unprotect {name}: not an ephemeral stack (pr-<n> or ci-<n>)")
        env = dict(ws.env_vars)
        if ws.pulumi_home:
            env["PULUMI_HOME"] = ws.pulumi_home
        try:
            ws.pulumi_command.run(unprotect_command(name), str(self.work_dir), env, self.log)
        except CommandError as exc:
            if _NOTHING_TO_UNPROTECT not in str(exc):
                raise
            self.log(f"{name}: no resources in the state, nothing to unprotect")

    def destroy_stack(self, name: str, *, tags: Mapping[str, str] | None = None, remove: bool = True) -> Any:
        """Teardown pre-step, unprotect, destroy, sweep (retrying destroy once after a sweep), then remove the stack.

        Destroy runs from state alone: the generated config file of the stack is not needed (nor rewritten). Only
        ephemeral stacks: the refusal comes before the in-cluster cleanup, which already deletes load balancers.
        """
        if not EPHEMERAL.match(name.rsplit("/", 1)[-1]):
            raise ValueError(f"refusing to destroy {name}: not an ephemeral stack (pr-<n> or ci-<n>); see docs/runbook.md")
        ws = self.workspace()
        try:
            stack = Stack.select(name, ws)
        except StackNotFoundError:
            self.log(f"stack {name} does not exist: nothing to destroy")
            return None
        target = self.target(name, ws.list_tags(name) if tags is None else tags)
        steps = self._teardown()
        pre = steps.before_destroy(target)
        self.log(pre.render())
        # The cluster, VPC, subnets and KMS key are `protect`ed (and GPU node groups with deletionProtection):
        # destroy refuses a protected resource, so lift it first. A locked stack raises ConcurrentUpdateError here,
        # like destroy would.
        self.unprotect(ws, name)
        try:
            stack.destroy(message=f"teardown of {name}", on_output=self.log, show_secrets=False)
            first_error = None
        except ConcurrentUpdateError:
            raise  # someone else is updating the stack: never sweep under a running update
        except CommandError as exc:
            # Typically a DependencyViolation on a subnet or security group held by something Kubernetes
            # made (pulumi-eks#1226): sweep it, then destroy again.
            first_error = exc
            self.log(f"destroy failed, sweeping leftovers and retrying: {str(exc).strip()[-2000:]}")
        report = steps.after_destroy(target)
        if first_error is not None:
            stack.destroy(message=f"teardown of {name} (after sweep)", on_output=self.log, show_secrets=False)
            report = steps.after_destroy(target)
        self.log(report.render())
        if not report.ok:
            raise TeardownIncomplete(f"{name}: resources left behind, stack kept:\n{report.render()}")
        if remove:
            ws.remove_stack(name)
        return report

    def review_destroy(self, pr_number: int | str) -> Any:
        return self.destroy_stack(self.qualified(review_stack_name(pr_number)))

    def janitor(self, now: datetime, ttl_hours: float = 24, *, dry_run: bool = False) -> list[JanitorEntry]:
        """Destroy every ephemeral stack past its expiry (tag `disagg:expires-at`, else last update + TTL)."""
        ws = self.workspace()
        entries: list[JanitorEntry] = []
        for summary in ws.list_stacks():
            # `pulumi stack ls` names a stack `<stack>` in the default organization, `<owner>/<stack>` in
            # another one (pkg/backend/httpstate/stack.go, cloudBackendReference.String), and lists every
            # organization the token can see. The listed name is the reference that resolves to that stack;
            # re-qualifying its short name with our org would point at a different stack.
            parts = summary.name.split("/")
            short, owner = parts[-1], (parts[0] if len(parts) > 1 else "")
            if not EPHEMERAL.match(short):
                continue
            if self.org and owner and owner != self.org:
                continue  # another organization's stack: never ours to destroy
            name = summary.name if owner else self.qualified(short)
            if summary.update_in_progress:
                entries.append(JanitorEntry(name, "skipped", "an update is in progress"))
                continue
            tags = ws.list_tags(name)
            expires = parse_iso(tags.get(TAG_EXPIRES))
            if expires is None and summary.last_update is not None:
                last = summary.last_update if summary.last_update.tzinfo else summary.last_update.replace(tzinfo=timezone.utc)
                expires = last + timedelta(hours=ttl_hours)
            if expires is not None and now < expires:
                entries.append(JanitorEntry(name, "kept", f"expires {iso(expires)}"))
                continue
            why = f"expired {iso(expires)}" if expires else "no expiry tag and never updated"
            if dry_run:
                entries.append(JanitorEntry(name, "expired", why + " (dry run)"))
                continue
            try:
                self.destroy_stack(name, tags=tags)
                entries.append(JanitorEntry(name, "destroyed", why))
            except ConcurrentUpdateError:
                entries.append(JanitorEntry(name, "skipped", "locked by another update"))
            except (CommandError, TeardownIncomplete) as exc:
                entries.append(JanitorEntry(name, "failed", str(exc).strip()[-1500:]))
        return entries
