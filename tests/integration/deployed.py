"""Where the integration tests find the deployed stack they check, and the marks that skip them without one."""

from __future__ import annotations

import os
import shutil

import pytest

KUBECONFIG = os.environ.get("DISAGG_INTEGRATION_KUBECONFIG")
STACK = os.environ.get("DISAGG_INTEGRATION_STACK")
# Optional: reach the router here (e.g. the internal NLB's hostname) instead of through a kubectl port-forward.
ROUTER_URL = os.environ.get("DISAGG_INTEGRATION_ROUTER_URL")

MARKS = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (KUBECONFIG and STACK and shutil.which("kubectl")),
        reason="needs a deployed stack: set DISAGG_INTEGRATION_KUBECONFIG and DISAGG_INTEGRATION_STACK, with kubectl on PATH",
    ),
]
