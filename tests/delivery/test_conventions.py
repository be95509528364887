"""The policy pack keeps its own copy of the project's conventions: it runs in its own virtualenv
(pulumi-policy pins an older protobuf) and cannot import the program's modules. These tests hold the copies to
the originals, so renaming a label, a tag or the scheduler in the program fails here instead of leaving the
policies checking for names nothing sets any more."""

from __future__ import annotations

from components.builders import scheduling, tags
from components.builders.platform_values import KAI_SCHEDULER_NAME
from components.builders.serving.common import KAI_QUEUE_LABEL
from policy import rules
from stacks.config.loader import SECRET_PLACEHOLDER
from facts.conventions import ROLES


def test_policy_tags_are_the_stacks_required_tags():
    assert tuple(rules.REQUIRED_TAGS) == tuple(tags.REQUIRED_TAGS)
    assert rules.MANAGED_BY == tags.MANAGED_BY


def test_policy_labels_roles_and_scheduler_match_the_program():
    assert rules.POOL_LABEL == scheduling.POOL_LABEL
    assert rules.ROLE_LABEL == scheduling.ROLE_LABEL
    assert tuple(rules.GPU_ROLES) == tuple(ROLES)
    assert rules.KAI_SCHEDULER == KAI_SCHEDULER_NAME
    assert rules.QUEUE_LABEL == KAI_QUEUE_LABEL
    assert rules.SECRET_PLACEHOLDER == SECRET_PLACEHOLDER
