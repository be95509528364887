"""EKS Pod Identity: an IAM role for one Kubernetes service account, the one way this stack gives pods AWS access.

Every Pod Identity of the stack goes through `pod_identity`: the EKS managed add-ons' (EBS CSI driver), the
Karpenter controller's, the Load Balancer Controller's and Prometheus' (AMP remote write). The role trusts the
Pod Identity agent (components/builders/iam.py `pod_identity_trust_policy`); `grant(role)` registers its
permissions; the association binds the role to the service account once the permissions exist, so a pod that reads
its credentials at start never starts with a role that may do nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.builders.iam import pod_identity_trust_policy


@dataclass(frozen=True)
class PodIdentity:
    role: aws.iam.Role
    grants: tuple[pulumi.Resource, ...]  # what gives the role its permissions (policy attachments, inline policies)
    association: aws.eks.PodIdentityAssociation


def pod_identity(
    name: str,
    *,
    parent: pulumi.Resource,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    grant: Callable[[aws.iam.Role], Sequence[pulumi.Resource]],
    description: str | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
    association_after: Sequence[pulumi.Resource] = (),
) -> PodIdentity:
    """The role `name` and its association `name` for `namespace/service_account`, children of `parent`.

    `depends_on`: what both wait for (and outlive on teardown); `association_after`: what only the association
    waits for besides the grants (the Pod Identity agent add-on, where it is ours to wait for).
    """
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps(pod_identity_trust_policy()),
        description=description,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on) or None),
    )
    grants = tuple(grant(role))
    association = aws.eks.PodIdentityAssociation(
        name,
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*depends_on, *grants, *association_after]),
    )
    return PodIdentity(role=role, grants=grants, association=association)
