"""The preview guard over `pulumi preview --json` documents (the shape of pulumi's display.PreviewDigest)."""

from __future__ import annotations

import json

import pytest

from ops.__main__ import main as ops_main
from ops.preview_guard import PreviewUnreadable, check, parse, type_of_urn, violations

STACK = "urn:pulumi:prod::disagg::pulumi:pulumi:Stack"
CLUSTER_URN = "urn:pulumi:prod::disagg::disagg:aws:Cluster$eks:index:Cluster::prod-eks"
PROVIDER_URN = "urn:pulumi:prod::disagg::disagg:aws:Cluster$pulumi:providers:kubernetes::prod-k8s"
EKS_CHILD_URN = "urn:pulumi:prod::disagg::disagg:aws:Cluster$eks:index:Cluster$aws:eks/cluster:Cluster::prod-eks-eksCluster"
LWS_URN = "urn:pulumi:prod::disagg::disagg:serving:Serving$kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet::decode"


def step(op: str, urn: str, rtype: str | None = None, *, state: str = "newState") -> dict:
    s: dict = {"op": op, "urn": urn}
    if rtype:
        s[state] = {"urn": urn, "type": rtype, "custom": True}
    return s


def digest(*steps: dict) -> str:
    summary: dict[str, int] = {}
    for s in steps:
        summary[s["op"]] = summary.get(s["op"], 0) + 1
    return json.dumps({"steps": list(steps), "changeSummary": summary, "duration": 1})


def test_type_of_urn_takes_the_last_type_of_the_parent_chain():
    assert type_of_urn(EKS_CHILD_URN) == "aws:eks/cluster:Cluster"
    assert type_of_urn(PROVIDER_URN) == "pulumi:providers:kubernetes"
    assert type_of_urn("not-a-urn") == ""


def test_clean_preview_passes():
    text = digest(step("same", CLUSTER_URN, "eks:index:Cluster"), step("update", PROVIDER_URN, "pulumi:providers:kubernetes"), step("replace", LWS_URN))
    code, report = check(text, stack="prod")
    assert code == 0
    assert "no replacement" in report


@pytest.mark.parametrize(
    "steps, expected",
    [
        ([step("replace", CLUSTER_URN, "eks:index:Cluster")], "eks:index:Cluster"),
        ([step("create-replacement", PROVIDER_URN, "pulumi:providers:kubernetes"), step("delete-replaced", PROVIDER_URN, "pulumi:providers:kubernetes", state="oldState")], "pulumi:providers:kubernetes"),
        ([step("replace", EKS_CHILD_URN)], "aws:eks/cluster:Cluster"),  # no state: type from the URN
        ([step("create-replacement", CLUSTER_URN, "eks:index:Cluster")], "eks:index:Cluster"),
        ([step("delete-replaced", PROVIDER_URN, "pulumi:providers:kubernetes", state="oldState")], "pulumi:providers:kubernetes"),
    ],
)
def test_replacing_the_cluster_or_the_provider_fails(steps, expected):
    code, report = check(digest(*steps), stack="prod")
    assert code == 1
    assert expected in report and "REPLACE" in report and "allow-replace" in report
    assert len(violations(parse(digest(*steps)))) == 1, "one entry per resource, whatever the number of steps"


def test_allow_label_reports_without_failing():
    code, report = check(digest(step("replace", CLUSTER_URN, "eks:index:Cluster")), allow=True)
    assert code == 0 and "allowed by the `allow-replace` label" in report


def test_streaming_events_are_read_too():
    events = [
        {"sequence": 1, "preludeEvent": {"config": {}}},
        {"sequence": 2, "resourcePreEvent": {"metadata": {"op": "replace", "urn": PROVIDER_URN, "type": "pulumi:providers:kubernetes"}}},
        {"sequence": 3, "summaryEvent": {}},
    ]
    assert check("\n".join(json.dumps(e) for e in events))[0] == 1
    assert check(json.dumps(events))[0] == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("not json at all", "not JSON"),
        (json.dumps({"diagnostics": [{"message": "error: 403 Forbidden", "severity": "error"}]}), "403 Forbidden"),
        (json.dumps({"unrelated": 1}), "no `steps`"),
    ],
)
def test_a_failed_or_foreign_preview_is_an_error_not_a_pass(text, message):
    code, report = check(text, stack="dev")
    assert code == 2 and message in report
    with pytest.raises(PreviewUnreadable):
        parse(text)


def test_cli(tmp_path, capsys):
    path = tmp_path / "preview.json"
    path.write_text(digest(step("replace", CLUSTER_URN, "eks:index:Cluster")))
    assert ops_main(["guard", str(path), "--stack", "prod"]) == 1
    assert CLUSTER_URN in capsys.readouterr().out
    assert ops_main(["guard", str(path), "--stack", "prod", "--allow-replace"]) == 0
    path.write_text(digest(step("create", LWS_URN, "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet")))
    assert ops_main(["guard", str(path)]) == 0


def test_a_preview_with_an_error_fails_even_with_the_steps_planned_before_it():
    # What `pulumi preview --json` prints when the program fails after registering some resources: the root
    # stack (always shown) and whatever came before the failure, plus the error diagnostic. The cluster step
    # that would have been a replace may simply never have been planned.
    doc = json.loads(digest(step("same", STACK, "pulumi:pulumi:Stack"), step("same", CLUSTER_URN, "eks:index:Cluster")))
    doc["diagnostics"] = [
        {"urn": STACK, "prefix": "error: ", "message": "Program failed with an unhandled exception", "severity": "error"},
        {"message": "a warning", "severity": "warning"},
    ]
    code, report = check(json.dumps(doc), stack="prod")
    assert code == 2 and "Program failed" in report
    doc["diagnostics"] = [{"message": "a warning", "severity": "warning"}]
    assert check(json.dumps(doc))[0] == 0, "warnings alone do not fail the guard"
    events = [
        {"sequence": 1, "resourcePreEvent": {"metadata": {"op": "same", "urn": STACK, "type": "pulumi:pulumi:Stack"}}},
        {"sequence": 2, "diagnosticEvent": {"message": "boom", "severity": "error"}},
    ]
    assert check("\n".join(json.dumps(e) for e in events))[0] == 2


def test_deleting_the_cluster_or_the_provider_fails_like_a_replace():
    # Renaming the component (no alias) changes the URN: create the new one, delete the old one.
    renamed = "urn:pulumi:prod::disagg::disagg:aws:Cluster$eks:index:Cluster::prod-eks-v2"
    text = digest(step("create", renamed, "eks:index:Cluster"), step("delete", CLUSTER_URN, "eks:index:Cluster", state="oldState"))
    code, report = check(text, stack="prod")
    assert code == 1 and CLUSTER_URN in report and "(delete)" in report
    assert check(digest(step("delete", PROVIDER_URN, "pulumi:providers:kubernetes", state="oldState")))[0] == 1
    assert check(digest(step("delete", LWS_URN, "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet", state="oldState")))[0] == 0


# ---- what is expensive to lose, on the real prod render's URNs ----------------------------------------------------


def urn_of(rendered, rtype: str, name_end: str) -> str:
    (rec,) = [r for r in rendered["prod"].records if r["type"] == rtype and r["name"].endswith(name_end)]
    return rec["urn"]


def plan(*entries: tuple[str, str | None, list[str]]) -> str:
    """An update plan as `pulumi preview --save-plan` writes it (apitype.DeploymentPlanV1): a goal per resource the
    program registers (none for a delete) and its planned steps, in order."""
    plans = {}
    for urn, rtype, ops in entries:
        goal = {"type": rtype, "name": urn.rsplit("::", 1)[-1], "custom": True, "protect": True} if rtype else None
        plans[urn] = {"goal": goal, "steps": ops, "state": {}}
    return json.dumps({"manifest": {"time": "2026-11-22T00:00:00Z", "magic": "", "version": "v3.272.0"}, "config": {}, "resourcePlans": plans})


REPLACE = ["create-replacement", "replace", "delete-replaced"]  # the plan of a create-before-delete replacement


def test_a_plan_that_replaces_the_decode_node_group_fails(rendered):
    decode = urn_of(rendered, "aws:eks/nodeGroup:NodeGroup", "-decode-ng")
    assert "disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup" in decode
    lws = urn_of(rendered, "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet", "-decode")
    text = plan((STACK, "pulumi:pulumi:Stack", ["same"]), (decode, "aws:eks/nodeGroup:NodeGroup", REPLACE), (lws, None, ["update"]))
    code, report = check(text, stack="prod")
    assert code == 1
    assert f"GPU node group: {decode} (create-replacement)" in report and "p5 capacity" in report
    assert "allow-replace" in report
    assert check(text, stack="prod", allow=True)[0] == 0


def test_the_system_node_group_and_ordinary_resources_may_be_replaced(rendered):
    system = urn_of(rendered, "eks:index:ManagedNodeGroup", "-system-ng")
    lt = urn_of(rendered, "aws:ec2/launchTemplate:LaunchTemplate", "-decode-lt")
    code, report = check(plan((system, "eks:index:ManagedNodeGroup", REPLACE), (lt, "aws:ec2/launchTemplate:LaunchTemplate", REPLACE)))
    assert code == 0, report


@pytest.mark.parametrize(
    "rtype, name_end, what",
    [
        ("aws:ec2/subnet:Subnet", "-private-us-east-1a", "subnet"),
        ("aws:ec2/vpc:Vpc", "-vpc", "VPC"),
        ("aws:kms/key:Key", "-secrets", "KMS key"),
        ("eks:index:Cluster", "-eks", "EKS cluster"),
        ("aws:eks/nodeGroup:NodeGroup", "-prefill-ng", "GPU node group"),
    ],
)
def test_replacing_or_deleting_what_is_expensive_to_lose_fails(rendered, rtype, name_end, what):
    urn = urn_of(rendered, rtype, name_end)
    for text in (plan((urn, rtype, REPLACE)), plan((urn, None, ["delete"])), digest(step("replace", urn, rtype))):
        code, report = check(text, stack="prod")
        assert code == 1 and f"{what}: {urn}" in report, report


def test_a_deleted_gpu_pool_is_known_by_its_urn_alone():
    # A pool removed from the config: the plan has no goal for it, only the URN. Today's node group sits right under
    # the pool; a stack deployed before the switch from pulumi-eks still has it as the ManagedNodeGroup's child.
    for child in (
        "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup::prod-decode-ng",
        "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup::prod-decode-ng",
    ):
        found = violations(parse(plan((child, None, ["delete"]))))
        assert [v.protected.what for v in found] == ["GPU node group"]


def test_a_plan_without_resource_plans_or_of_another_shape_is_read_or_refused():
    assert check(plan())[0] == 0, "an empty plan (nothing changes) is clean"
    bad = json.dumps({"manifest": {}, "resourcePlans": ["not", "a", "map"]})
    assert check(bad)[0] == 2


def test_the_guard_knows_the_gpu_pool_component_by_its_real_type():
    from components.nodepools import GPU_TYPE, SYSTEM_TYPE

    from ops import preview_guard

    assert preview_guard.GPU_POOL_TYPE == GPU_TYPE != SYSTEM_TYPE
