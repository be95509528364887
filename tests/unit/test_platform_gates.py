"""Webhook-readiness gates: the probe program's decisions (against a fake API server) and the gate objects."""

from __future__ import annotations

import copy
import json

import pytest

from components.builders import webhook_probe as probe
from components.builders.addons import addon_namespaces, addon_specs
from components.builders.platform_objects import platform_objects
from components.builders.webhook_gates import DEADLINE_SECONDS, gate_manifests, gates
from stacks.config import parse
from stacks.platform_args import platform_args
from tests.conftest import BASE

PROBE = {"path": "/apis/scheduling.run.ai/v2/queues", "object": {"kind": "Queue"}, "webhookConfigurations": ["/apis/x/vwc/kai-queue-validation-v2"]}


class FakeApi:
    """Answers in sequence per (method, path); the last answer repeats."""

    def __init__(self, answers):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls = []

    def __call__(self, method, path, body=None):
        self.calls.append((method, path))
        key = (method, path.split("?")[0])
        seq = self.answers[key]
        return seq.pop(0) if len(seq) > 1 else seq[0]


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s


def run(api, deadline=300):
    clock = Clock()
    code = probe.run({"deadlineSeconds": deadline, "probes": [PROBE]}, request=api, sleep=clock.sleep, now=clock.now)
    return code, clock.t


def test_waits_for_the_webhook_configuration_then_the_webhook():
    api = FakeApi({
        ("GET", "/apis/x/vwc/kai-queue-validation-v2"): [(404, "not found"), (404, "not found"), (200, "{}")],
        ("POST", "/apis/scheduling.run.ai/v2/queues"): [(500, 'failed calling webhook "queue...": connect: connection refused'), (201, "{}")],
    })
    code, waited = run(api)
    assert code == 0
    # Two rounds without the configuration, one with a refused connection, then accepted.
    assert waited == 3 * probe.RETRY_SECONDS
    assert ("POST", "/apis/scheduling.run.ai/v2/queues?dryRun=All") in api.calls
    assert not any(m == "POST" and "dryRun=All" not in p for m, p in api.calls), "a probe must never store anything"


def test_an_existing_object_counts_as_admitted():
    api = FakeApi({("GET", "/apis/x/vwc/kai-queue-validation-v2"): [(200, "{}")], ("POST", "/apis/scheduling.run.ai/v2/queues"): [(409, "AlreadyExists")]})
    assert run(api) == (0, 0.0)


def test_a_denial_fails_at_once():
    api = FakeApi({
        ("GET", "/apis/x/vwc/kai-queue-validation-v2"): [(200, "{}")],
        ("POST", "/apis/scheduling.run.ai/v2/queues"): [(400, 'admission webhook "queue.kai" denied the request: resources must be specified')],
    })
    assert run(api) == (1, 0.0)


def test_gives_up_at_its_deadline():
    api = FakeApi({("GET", "/apis/x/vwc/kai-queue-validation-v2"): [(404, "")], ("POST", "/apis/scheduling.run.ai/v2/queues"): [(201, "")]})
    code, waited = run(api, deadline=20)
    assert code == 1 and waited >= 20


def test_the_job_runs_this_program_with_its_probes():
    spec = {"deadlineSeconds": 1, "probes": [PROBE]}
    cmd = probe.command(spec)
    assert cmd[:3] == ["python3", "-u", "-c"] and "def probe_ready" in cmd[3]
    assert json.loads(cmd[4]) == spec


@pytest.fixture
def grove_args():
    v = copy.deepcopy(BASE)
    v["platform"] = {"workloadApi": "grove", "lws": {"enabled": True}}
    return platform_args(parse(v, stack="t"), stack="t")


def test_one_gate_per_operator_probing_its_own_objects(grove_args):
    enabled = {s.key for s in addon_specs(grove_args)}
    ns = addon_namespaces()
    objects = platform_objects(grove_args, enabled, ns)
    by_key = {g.key: g for g in gates(enabled, objects, ns)}
    assert set(by_key) == {"kai-scheduler", "grove", "lws"}
    kai = by_key["kai-scheduler"]
    assert {o["kind"] for _, o in kai.probes} == {"Queue", "Topology"}
    # The leaf queue's webhook looks its parent up: it is created after the gate, not probed.
    assert {o["metadata"]["name"] for _, o in kai.probes if o["kind"] == "Queue"} == {"disagg"}
    assert kai.namespace == "kai-scheduler"
    assert {o["kind"] for _, o in by_key["grove"].probes} == {"ClusterTopologyBinding"}
    assert by_key["lws"].probes[0][0] == "/apis/leaderworkerset.x-k8s.io/v1/namespaces/lws-system/leaderworkersets"
    for obj in objects:
        if obj.manifest["kind"] in ("Queue", "Topology", "ClusterTopologyBinding"):
            assert obj.gate in by_key


def test_gate_job_is_least_privileged_and_bounded(grove_args):
    enabled = {s.key for s in addon_specs(grove_args)}
    ns = addon_namespaces()
    gate = next(g for g in gates(enabled, platform_objects(grove_args, enabled, ns), ns) if g.key == "kai-scheduler")
    sa, role, binding, job = gate_manifests(gate)
    assert [m["kind"] for m in (sa, role, binding, job)] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"]
    verbs = {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]}
    assert verbs == {(("validatingwebhookconfigurations",), ("get",)), (("queues",), ("create",)), (("topologies",), ("create",))}
    names = next(r["resourceNames"] for r in role["rules"] if r["resources"] == ["validatingwebhookconfigurations"])
    assert sorted(names) == ["kai-queue-validation-v2", "validating-kai-admission"]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == DEADLINE_SECONDS
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["nodeSelector"] == {"disagg.io/pool": "system"}
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert json.loads(c["command"][-1])["deadlineSeconds"] < DEADLINE_SECONDS
