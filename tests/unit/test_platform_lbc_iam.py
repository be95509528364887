"""IAM of the AWS Load Balancer Controller: Pod Identity trust and a policy that only mutates what it created."""

from __future__ import annotations

import pytest

from components.builders.lbc_iam import (
    CLUSTER_TAG,
    lbc_iam_policy,
    partition,
    pod_identity_trust_policy,
)


def actions(stmt: dict) -> list[str]:
    return stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]


def test_trust_is_eks_pod_identity():
    (stmt,) = pod_identity_trust_policy()["Statement"]
    assert stmt["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    # Pod Identity tags the session; without sts:TagSession the agent cannot assume the role.
    assert set(stmt["Action"]) == {"sts:AssumeRole", "sts:TagSession"}


@pytest.mark.parametrize("region,expected", [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")])
def test_partition(region, expected):
    assert partition(region) == expected


def test_policy_arns_use_the_region_partition():
    for region, part in (("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov")):
        for stmt in lbc_iam_policy(region)["Statement"]:
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            for r in resources:
                assert r == "*" or r.startswith(f"arn:{part}:"), r


def test_deletes_and_modifications_only_touch_resources_the_controller_tagged():
    policy = lbc_iam_policy("us-east-1")
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    guarded = {"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup", "ec2:DeleteSecurityGroup"}
    for stmt in policy["Statement"]:
        hit = guarded & set(actions(stmt))
        if hit:
            assert stmt["Condition"]["Null"][f"aws:ResourceTag/{CLUSTER_TAG}"] == "false", hit
    creates = [s for s in policy["Statement"] if "elasticloadbalancing:CreateLoadBalancer" in actions(s)]
    assert creates and all(s["Condition"]["Null"][f"aws:RequestTag/{CLUSTER_TAG}"] == "false" for s in creates)


def test_policy_covers_what_an_nlb_for_the_router_needs():
    granted = {a for s in lbc_iam_policy("us-east-1")["Statement"] for a in actions(s)}
    needed = {
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeleteLoadBalancer",
        "ec2:DescribeSubnets",
        "ec2:AuthorizeSecurityGroupIngress",
        "iam:CreateServiceLinkedRole",
    }
    assert needed <= granted
