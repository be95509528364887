"""AWS tags every taggable resource carries, applied through the AWS provider's default tags."""

from __future__ import annotations

from facts.conventions import STACK_TAG, DEPLOYMENT_TAG, MANAGED_BY_TAG, MANAGED_BY
from stacks.config.stack import StackConfig

REQUIRED_TAGS = (STACK_TAG, DEPLOYMENT_TAG, MANAGED_BY_TAG)


def default_tags(cfg: StackConfig, stack: str) -> dict[str, str]:
    """The user's tags, then ours (ours win: the teardown sweep and the policy pack rely on them)."""
    return {**cfg.tags, STACK_TAG: stack, DEPLOYMENT_TAG: cfg.name, MANAGED_BY_TAG: MANAGED_BY}


def cluster_tag(cluster_name: str) -> dict[str, str]:
    """The tag EKS, the VPC CNI and the Load Balancer Controller use to know what belongs to a cluster."""
    return {f"kubernetes.io/cluster/{cluster_name}": "owned"}
