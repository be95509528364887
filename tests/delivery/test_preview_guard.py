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
