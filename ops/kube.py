"""The small Kubernetes surface teardown needs, behind an interface so tests can fake it.

The real client shells out to `kubectl` with a kubeconfig written by `aws eks update-kubeconfig` for the stack's
cluster: no Python Kubernetes client to install, and the credentials are whatever the CI job assumed (OIDC).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any, Protocol

SERVICES = "services"
INGRESSES = "ingresses"
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"


class KubeError(RuntimeError):
    """The cluster could not be reached or a kubectl call failed."""


class KubeClient(Protocol):
    def list(self, kind: str) -> list[dict[str, Any]]:
        """Every object of `kind` in all namespaces (cluster-scoped kinds: all objects)."""
        ...

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Ask for deletion without waiting (finalizers, e.g. the Load Balancer Controller's, finish it)."""
        ...


class Kubectl:
    """KubeClient over the kubectl CLI."""

    def __init__(self, kubeconfig: str, *, kubectl: str = "kubectl", timeout: int = 120, run=subprocess.run):
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl
        self.timeout = timeout
        self._run = run

    @classmethod
    def for_eks(cls, cluster: str, region: str, *, run=subprocess.run, **kwargs: Any) -> "Kubectl":
        """Write a kubeconfig for an EKS cluster with the ambient AWS credentials (`aws eks update-kubeconfig`)."""
        fd, path = tempfile.mkstemp(prefix=f"kubeconfig-{cluster}-")
        os.close(fd)
        proc = run(
            ["aws", "eks", "update-kubeconfig", "--name", cluster, "--region", region, "--kubeconfig", path],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            raise KubeError(f"cannot get a kubeconfig for cluster {cluster} in {region}: {proc.stderr.strip()}")
        return cls(path, run=run, **kwargs)

    def _kubectl(self, *args: str) -> str:
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig, "--request-timeout=60s", *args]
        try:
            proc = self._run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise KubeError(f"kubectl {' '.join(args)} timed out") from exc
        if proc.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def list(self, kind: str) -> list[dict[str, Any]]:
        scope = [] if kind == PVS else ["--all-namespaces"]
        return json.loads(self._kubectl("get", kind, *scope, "-o", "json")).get("items", [])

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        ns = ["--namespace", namespace] if namespace else []
        self._kubectl("delete", kind, name, *ns, "--wait=false", "--ignore-not-found")
