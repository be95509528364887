"""AWS tags every taggable resource carries, applied through the AWS provider's default tags."""

from __future__ import annotations

from collections.abc import Mapping

from facts.conventions import STACK_TAG, DEPLOYMENT_TAG, MANAGED_BY_TAG, MANAGED_BY

REQUIRED_TAGS = (STACK_TAG, DEPLOYMENT_TAG, MANAGED_BY_TAG)


def default_tags(user_tags: Mapping[str, str], deployment: str, stack: str) -> dict[str, str]:
    """The user's tags (`disagg:tags`), then ours (ours win: the teardown sweep and the policy pack rely on them)."""
    return {**user_tags, STACK_TAG: stack, DEPLOYMENT_TAG: deployment, MANAGED_BY_TAG: MANAGED_BY}


def cluster_tag(cluster_name: str) -> dict[str, str]:
    """The tag EKS, the VPC CNI and the Load Balancer Controller use to know what belongs to a cluster."""
    return {f"kubernetes.io/cluster/{cluster_name}": "owned"}
