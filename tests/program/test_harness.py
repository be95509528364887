"""The mock harness: shallow on large stacks (green every time, not most times), the deploy checks' run mode, the
resource options it records, and the engine rules it keeps (URNs, duplicate URNs, secret outputs)."""

from __future__ import annotations

import copy
import subprocess
import sys

from tests.conftest import BASE, ROOT, stack_file

# With the stock monitor's way of answering (pumping the event loop from inside a registration), registrations
# nest and a 32-pool stack needed ~1000 frames in some runs (1 in 6 hit RecursionError at the default limit).
# At this limit that design fails every time; the harness must not come near it.
SHALLOW_LIMIT = 300


def test_large_stack_renders_within_a_shallow_stack(tmp_path):
    cfg = copy.deepcopy(BASE)
    cfg["gpuPools"] = [
        {"name": f"{role}-{i}", "role": role, "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]}
        for role in ("prefill", "decode")
        for i in range(16)
    ]
    cfg["serving"]["prefill"]["replicas"] = 32
    cfg["serving"]["decode"]["replicas"] = 64
    path = stack_file(tmp_path / "Pulumi.big.yaml", cfg)
    code = (
        f"import sys, runpy; sys.setrecursionlimit({SHALLOW_LIMIT}); "
        f"sys.argv = ['render', '--config', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]; "
        "runpy.run_module('tooling.render', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RecursionError" not in proc.stderr
    assert (tmp_path / "out" / "summary.json").is_file()


# --- resource options and the deploy checks' run mode -------------------------------------------------------------------

_STRICT_RUN = """
import json, sys
from pathlib import Path
from tooling.render import load
from tooling import fakes, harness
import pulumi

path = Path(sys.argv[1])
config, secrets, cfg = load(path, "strict")
recorded = fakes.recorded_for(config)
recorded.update(json.loads(sys.argv[2]))
monitor = {}
try:
    run = harness.run_program(harness.Path("."), "strict", config, secrets, answers=fakes.RecordedAnswers(recorded), strict=True)
    print(json.dumps({"error": None, "records": len(run.records)}))
except pulumi.RunError as err:
    import pulumi.runtime.settings as s
    print(json.dumps({"error": str(err), "records": len(s.get_monitor().records)}))
"""


def _strict(tmp_path, cfg: dict | None, recorded: dict, path=None) -> dict:
    import json

    if path is None:
        cfg["cluster"]["publicAccessCidrs"] = ["100.64.10.0/24"]  # not a placeholder: this test is about capacity
        path = stack_file(tmp_path / "Pulumi.strict.yaml", cfg)
    proc = subprocess.run(
        [sys.executable, "-c", _STRICT_RUN, str(path), json.dumps(recorded)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_real_preview_stops_on_a_bad_answer_before_registering_anything(tmp_path):
    """The strict path (a real preview) with a recorded answer of an account whose P quota is 0: RunError naming the
    key, the quota code and the fix, and not a single resource registered."""
    cfg = copy.deepcopy(BASE)
    bad = {"GetServiceQuota": {"L-417A185B": {"Quota": {"QuotaCode": "L-417A185B", "Value": 0.0}},
                               "L-1216C47A": {"Quota": {"QuotaCode": "L-1216C47A", "Value": 1000.0}},
                               "L-DB2E81BA": {"Quota": {"QuotaCode": "L-DB2E81BA", "Value": 1000.0}}}}
    out = _strict(tmp_path, cfg, bad)
    assert out["records"] == 0, out
    assert "disagg:gpuPools[0].maxNodes = 1" in out["error"] and "384 vCPUs" in out["error"] and "L-417A185B" in out["error"]
    assert "Fix: aws service-quotas request-service-quota-increase" in out["error"]
    assert "nothing was created" in out["error"] and "1 problem(s)" in out["error"]


def test_a_real_preview_of_the_committed_prod_file_stops_on_its_placeholder_cidr(tmp_path):
    out = _strict(tmp_path, None, {}, path=ROOT / "Pulumi.prod.yaml")
    assert out["records"] == 0, out
    assert "disagg:cluster.publicAccessCidrs[0] = '198.51.100.0/24'" in out["error"] and "RFC 5737" in out["error"]
    assert "Fix: set the egress CIDRs" in out["error"]


def test_the_same_run_with_good_answers_registers_the_stack(tmp_path):
    out = _strict(tmp_path, copy.deepcopy(BASE), {})
    assert out["error"] is None and out["records"] > 50, out


def test_the_offline_mode_only_counts_under_the_harness_monitor():
    """A program started by the Pulumi CLI has a gRPC monitor: even with a run installed it takes the strict path."""
    from stacks import runmode

    runmode.install(runmode.OfflineRun(monitor=object(), answers=None))
    try:
        assert runmode.offline_run() is None
    finally:
        runmode.install(None)
    assert runmode.offline_run() is None


def test_records_carry_the_resource_options_as_registered(rendered):
    r = rendered["capacity-block"]
    by_name = {x["name"]: x for x in r.records}
    cb = by_name["capacity-block-prefill-ng"]["options"]
    assert cb["ignoreChanges"] == ["scalingConfig.desiredSize"]
    assert cb["protect"] is False and cb["retainOnDelete"] is False and cb["deleteBeforeReplace"] is False
    assert cb["customTimeouts"] == {}
    # dependsOn: what the request depends on beyond its inputs, e.g. the boot add-ons the node group waits for.
    assert any(d.endswith("::capacity-block-vpc-cni") for d in cb["dependsOn"])
    assert not any(d.endswith("-lt") for d in cb["dependsOn"]), "the launch template is an input dependency"
    assert by_name["capacity-block-eks"]["options"]["protect"] is True
    assert by_name["capacity-block-efa-us-east-2b"]["options"]["aliases"] == [
        {"urn": "urn:pulumi:capacity-block::disagg::disagg:aws:GpuNodePool$aws:ec2/placementGroup:PlacementGroup::capacity-block-decode-pg"}
    ]
    gate = by_name["capacity-block-gate-lws"]["options"]
    assert gate["customTimeouts"] == {"create": "1200s"} and gate["deleteBeforeReplace"] is True
    topology = by_name["capacity-block-topology"]["options"]
    assert topology["replaceOnChanges"] == ["spec"] and topology["deleteBeforeReplace"] is True
    assert by_name["capacity-block-grafana-admin"]["options"]["additionalSecretOutputs"] == ["bcryptHash", "result"]
    # The plugin each resource asks the engine for is the SDK pinned in requirements.txt.
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("pulumi-"))
    for x in r.records:
        pkg = x["type"].split(":")[0] if not x["type"].startswith("pulumi:providers:") else x["type"].split(":")[2]
        if pkg != "disagg":
            assert x["options"]["version"] == pins[f"pulumi-{pkg}"], (x["urn"], x["options"]["version"])
    # Every option has its key in every record, empty when unset, so resources.json diffs stay readable.
    keys = {
        "protect", "retainOnDelete", "deleteBeforeReplace", "ignoreChanges", "replaceOnChanges", "aliases", "customTimeouts",
        "dependsOn", "additionalSecretOutputs", "hideDiffs", "deletedWith", "replaceWith", "replacementTrigger", "importId",
        "version", "pluginDownloadURL", "hooks", "envVarMappings",
    }  # fmt: skip
    assert all(set(x["options"]) == keys for x in r.records)


def test_urns_follow_the_engine_rule():
    """Children carry their parent's whole type chain, top-level resources no root-stack type (the engine's
    generateURN); the stock mock would give `...Stack$disagg:aws:Network::prod` and keep only the last parent type,
    and no alias written against a deployed stack (the pulumi-eks node group moved out of its component) would match."""
    from tooling.harness import engine_urn

    stack_root = "urn:pulumi:prod::disagg::pulumi:pulumi:Stack::disagg-prod"
    assert engine_urn("prod", "disagg", stack_root, "disagg:aws:Network", "prod") == "urn:pulumi:prod::disagg::disagg:aws:Network::prod"
    assert engine_urn("prod", "disagg", None, "pulumi:providers:aws", "prod-aws") == "urn:pulumi:prod::disagg::pulumi:providers:aws::prod-aws"
    mng = "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$eks:index:ManagedNodeGroup::prod-decode-ng"
    assert engine_urn("prod", "disagg", mng, "aws:eks/nodeGroup:NodeGroup", "prod-decode-ng") == (
        "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup::prod-decode-ng"
    )


_TINY = """
import json, pulumi, sys
from tooling import harness, fakes
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await
_ensure_event_loop().set_default_executor(harness._InlineExecutor())
mocks = fakes.FakeCloud(stack="tiny", config={})
monitor = harness.RecordingMonitor(mocks)
mocks.monitor = monitor
pulumi.runtime.set_mocks(mocks, project="disagg", stack="tiny", preview=False, monitor=monitor)
import pulumi_random as random
def program():
%s
try:
    _sync_await(run_pulumi_func(program))
except Exception as err:
    print("ERROR", err)
root = pulumi.runtime.get_root_resource()
secret = {k: _sync_await(pulumi.Output.from_input(v).is_secret()) for k, v in (root.outputs or {}).items()}
print(json.dumps({"records": len(monitor.records), "secret": secret}))
"""


def _tiny(program: str) -> tuple[dict, str]:
    """Run a few lines of program under the harness's monitor; (last JSON line, whole output)."""
    body = "\n".join(f"    {line}" for line in program.strip().splitlines())
    proc = subprocess.run([sys.executable, "-c", _TINY % body], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1]), out


def test_the_harness_refuses_what_the_engine_refuses():
    """Two registrations of one URN fail `pulumi up`; the stock mock monitor records both."""
    result, out = _tiny('random.RandomPassword("same", length=8)\nrandom.RandomPassword("same", length=9)')
    assert "Duplicate resource URN 'urn:pulumi:tiny::disagg::random:index/randomPassword:RandomPassword::same'" in out
    assert result["records"] == 1


def test_outputs_the_provider_declares_secret_stay_secret_as_under_the_engine():
    """pulumi-random lists `result` in additionalSecretOutputs: the engine returns it secret, so a program exporting
    it unwrapped still keeps it secret. The stock mock would hand it back in plain text."""
    result, out = _tiny('pw = random.RandomPassword("pw", length=8)\npulumi.export("pw", pw.result)\npulumi.export("len", pw.length)')
    assert result["secret"] == {"pw": True, "len": False}, out
