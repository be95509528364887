"""Webhook-readiness gates: one Job per operator whose fail-closed admission webhooks admit our objects.

Every custom resource an operator's webhook admits waits for that operator's gate (`PlatformObject.gate`), and the
gate completes only once the webhooks accept a server-side dry run of the objects themselves
(components/builders/webhook_probe.py says how and why). Gated:

- `kai-scheduler`: the Queue webhook (queue-controller, ValidatingWebhookConfiguration kai-queue-validation-v2) and
  the Topology webhook (admission, validating-kai-admission); both are created by the KAI operator after Helm's wait
  returns (KAI v0.17.0 pkg/operator/operands/queue_controller/resources.go, operands/admission/resources.go;
  config names pkg/apis/kai/v1/{queue_controller,admission}/*.go defaults).
- `grove`: clustertopology-validating-webhook (chart-rendered; Grove's readiness probe, now on, already waits for
  it: the gate also covers the Service endpoints catching up).
- `lws`: the LeaderWorkerSet webhooks, whose readiness probe is a plain ping (lws v0.10.0 cmd/main.go
  AddReadyzCheck healthz.Ping), so Helm can return before they serve the serving layer's LeaderWorkerSets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facts.conventions import POOL_LABEL, SYSTEM_POOL
from components.builders.webhook_probe import command
from facts.versions import pin

VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
# The Job's own deadline; Pulumi's create timeout of the Job is set above it (components/platform.py).
DEADLINE_SECONDS = 900
RUN_AS = 65534


@dataclass(frozen=True)
class Gate:
    key: str  # add-on key; objects name it in PlatformObject.gate
    namespace: str
    webhook_configurations: tuple[str, ...]
    probes: tuple[tuple[str, dict[str, Any]], ...]  # (API collection path, object to dry-run)
    rules: tuple[dict[str, Any], ...]  # RBAC: get the webhook configurations, create (dry run) the probe kinds


def _path(obj: dict[str, Any], plural: str) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    ns = obj["metadata"].get("namespace")
    return f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"


def _lws_probe(namespace: str) -> dict[str, Any]:
    container = {"name": "probe", "image": pin("platform-python").image_ref}
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "disagg-webhook-probe", "namespace": namespace},
        "spec": {"replicas": 0, "leaderWorkerTemplate": {"size": 1, "workerTemplate": {"spec": {"containers": [container]}}}},
    }


def gates(enabled: set[str], objects: list, namespaces: dict[str, str]) -> list[Gate]:
    """The gates of the enabled add-ons; probes are the gated objects that need nothing else to exist first."""
    out: list[Gate] = []
    plurals = {"Queue": "queues", "Topology": "topologies", "ClusterTopologyBinding": "clustertopologybindings"}

    def probes_of(key: str) -> tuple[tuple[str, dict[str, Any]], ...]:
        return tuple(
            (_path(o.manifest, plurals[o.manifest["kind"]]), o.manifest) for o in objects if o.gate == key and not o.after
        )

    if "kai-scheduler" in enabled:
        out.append(
            Gate(
                "kai-scheduler",
                namespaces["kai-scheduler"],
                (VWC + "kai-queue-validation-v2", VWC + "validating-kai-admission"),
                probes_of("kai-scheduler"),
                (
                    {"apiGroups": ["scheduling.run.ai"], "resources": ["queues"], "verbs": ["create"]},
                    {"apiGroups": ["kai.scheduler"], "resources": ["topologies"], "verbs": ["create"]},
                ),
            )
        )
    if "grove" in enabled and any(o.gate == "grove" for o in objects):
        # The bindings come after their KAI Topology: probe them as they are (Grove's webhook checks only the
        # levels and the scheduler backends, validation.go validateClusterTopology).
        bindings = tuple((_path(o.manifest, plurals["ClusterTopologyBinding"]), o.manifest) for o in objects if o.gate == "grove")
        out.append(
            Gate(
                "grove",
                namespaces["grove"],
                (VWC + "clustertopology-validating-webhook",),
                bindings,
                ({"apiGroups": ["grove.io"], "resources": ["clustertopologybindings"], "verbs": ["create"]},),
            )
        )
    if "lws" in enabled:
        ns = namespaces["lws"]
        probe = _lws_probe(ns)
        out.append(
            Gate(
                "lws",
                ns,
                (VWC + "lws-validating-webhook-configuration", MWC + "lws-mutating-webhook-configuration"),
                ((_path(probe, "leaderworkersets"), probe),),
                ({"apiGroups": ["leaderworkerset.x-k8s.io"], "resources": ["leaderworkersets"], "verbs": ["create"]},),
            )
        )
    return out


def gate_name(gate: Gate) -> str:
    return f"{gate.key}-webhook-gate"


def gate_manifests(gate: Gate) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and binding, and the Job of one gate, in creation order."""
    name = gate_name(gate)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "disagg", "app.kubernetes.io/managed-by": "pulumi"}
    meta = {"name": name, "namespace": gate.namespace, "labels": labels}
    get_configs = [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": [kind],
            "resourceNames": [c.rsplit("/", 1)[1] for c in gate.webhook_configurations if f"/{kind}/" in c],
            "verbs": ["get"],
        }
        for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
        if any(f"/{kind}/" in c for c in gate.webhook_configurations)
    ]
    spec = {
        "deadlineSeconds": DEADLINE_SECONDS - 60,
        "probes": [
            {"path": path, "object": obj, "webhookConfigurations": list(gate.webhook_configurations)} for path, obj in gate.probes
        ],
    }
    security = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            **meta,
            "annotations": {
                "checkov.io/skip1": (
                    "CKV_K8S_38=the gate dry-runs objects through the Kubernetes API with its own ServiceAccount, "
                    "whose ClusterRole allows only get on the named webhook configurations and create on the probed kinds"
                ),
                "checkov.io/skip2": "CKV_K8S_43=images are pinned by tag in facts/versions.py; digests cannot be resolved in the offline render",
                "checkov.io/skip3": "CKV_K8S_15=IfNotPresent with a pinned tag: re-pulling on every start only adds registry round trips and rate-limit hits",
            },
        },
        "spec": {
            # One attempt: a refusal is final, and waiting is the program's own loop.
            "backoffLimit": 0,
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": True,
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "nodeSelector": {POOL_LABEL: SYSTEM_POOL},
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "probe",
                            "image": pin("platform-python").image_ref,
                            "imagePullPolicy": "IfNotPresent",
                            "command": command(spec),
                            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                            "securityContext": security,
                        }
                    ],
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": [*get_configs, *gate.rules]},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": gate.namespace}],
        },
        job,
    ]
