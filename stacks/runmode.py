"""Is this program run by the offline render, or by a real `pulumi preview` / `pulumi up`?

The deploy checks (stacks/preflight.py) refuse a real preview or up; the offline render only reports them, so CI can
render the committed prod file with its placeholder CIDR. The difference must not be something a user can switch on
by accident (an environment variable or a config key could leak into a real `pulumi up`), so it is a Python object
the render harness installs in its own process, and it only counts while the runtime's resource monitor *is* the
harness's mock monitor. A program started by the Pulumi CLI talks to the engine over gRPC: its monitor is a gRPC
stub, never that object, so the real program always takes the strict path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OfflineRun:
    """Installed by tooling/harness.py for one run of the program under its mock monitor."""

    monitor: Any  # the harness's RecordingMonitor; the run counts as offline only while it is the runtime's monitor
    answers: Any  # what the deploy checks read instead of AWS (stacks.preflight.Answers)
    # A test can ask for the strict behaviour of a real preview, to prove that a bad answer stops the program
    # before anything is registered; the render itself only warns.
    strict: bool = False
    warnings: list[str] = field(default_factory=list)


_ACTIVE: OfflineRun | None = None


def install(run: OfflineRun | None) -> None:
    global _ACTIVE
    _ACTIVE = run


def offline_run() -> OfflineRun | None:
    """The harness's run, if this program runs under it; None under a real engine."""
    if _ACTIVE is None or _ACTIVE.monitor is None:
        return None
    from pulumi.runtime import settings

    if settings.get_monitor() is not _ACTIVE.monitor:
        return None
    return _ACTIVE
