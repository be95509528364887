"""Program of the webhook-readiness gate Jobs: wait until an operator's admission webhooks accept our objects.

Why: Helm's wait returns when a chart's own workloads are Ready. KAI's queue and topology webhooks are served by
Deployments the KAI operator creates afterwards from kai-config (KAI v0.17.0 pkg/operator/operands/queue_controller,
operands/admission: failurePolicy Fail), so a Queue or Topology applied right after the release is refused on a
first `pulumi up` (pulumi-kubernetes#3137, by design). The gate Job runs this file (`python -c`, no image to
build) and completes only when, for every probe:
  1. each named (Validating|Mutating)WebhookConfiguration exists: before it does, a create passes without being
     validated, which proves nothing about the next one;
  2. a server-side dry-run create of the probe object (`?dryRun=All`: admission runs, nothing is stored) is
     accepted, or answered 409 AlreadyExists (storage is reached only after admission has passed).
A webhook that answers "denied the request" is a real rejection of our object: the gate fails at once with the
message instead of waiting out its deadline. Pulumi waits for a Job until it is Complete and fails the update when
it is Failed (pulumi-kubernetes provider/pkg/await/job.go), so every object behind the gate waits for it.

The probes come as JSON in argv[1]: {"deadlineSeconds": n, "probes": [{"path": ..., "object": {...},
"webhookConfigurations": ["/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/<name>", ...]}]}.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://kubernetes.default.svc"
RETRY_SECONDS = 5


class Denied(Exception):
    """The webhook answered and refused the object: waiting cannot fix it."""


def _request(method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    with open(f"{SA_DIR}/token") as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


def probe_ready(probe: dict, request=_request) -> tuple[bool, str]:
    """(accepted, why not). Raises Denied when a webhook refuses the object."""
    for config in probe.get("webhookConfigurations", []):
        status, body = request("GET", config)
        if status != 200:
            return False, f"{config}: HTTP {status} (the operator has not created it yet)"
    status, body = request("POST", probe["path"] + "?dryRun=All", probe["object"])
    if status in (200, 201, 409):
        return True, ""
    if "denied the request" in body:
        raise Denied(f"{probe['path']}: {body}")
    return False, f"{probe['path']}: HTTP {status}: {body[:300]}"


def run(spec: dict, request=_request, sleep=time.sleep, now=time.monotonic) -> int:
    deadline = now() + spec["deadlineSeconds"]
    pending = list(spec["probes"])
    while True:
        still = []
        for probe in pending:
            try:
                ok, why = probe_ready(probe, request)
            except Denied as err:
                print(f"refused: {err}", flush=True)
                return 1
            if not ok:
                still.append(probe)
                print(f"waiting: {why}", flush=True)
        if not still:
            print("every webhook accepts its probe", flush=True)
            return 0
        if now() >= deadline:
            print(f"gave up after {spec['deadlineSeconds']} s", flush=True)
            return 1
        pending = still
        sleep(RETRY_SECONDS)


def command(spec: dict) -> list[str]:
    """Container command running this file's own source with `spec`."""
    with open(__file__) as f:
        source = f.read()
    return ["python3", "-u", "-c", source, json.dumps(spec, sort_keys=True, separators=(",", ":"))]


if __name__ == "__main__":
    sys.exit(run(json.loads(sys.argv[1])))
