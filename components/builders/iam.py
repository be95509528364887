"""IAM policy documents and managed-policy ARNs of the AWS layer, as plain dicts and strings."""

from __future__ import annotations

# Node roles of managed node groups (https://docs.aws.amazon.com/eks/latest/userguide/create-node-role.html).
# The CNI policy stays on the node role rather than a Pod Identity role for aws-node: the VPC CNI must assign
# addresses before any pod networking exists, and the node role is there from the first boot, without waiting for the
# eks-pod-identity-agent DaemonSet to come up on the new node.
# AmazonSSMManagedInstanceCore: operators reach a node through SSM Session Manager (`aws ssm start-session`), so no
# node has an SSH key or an open port 22 (EKS user guide create-node-role: "add the AmazonSSMManagedInstanceCore
# policy ... to use Systems Manager"). The agent runs on the EKS AL2023 AMIs (awslabs/amazon-eks-ami
# templates/al2023/runtime/rootfs/etc/systemd/system/amazon-ssm-agent.service.d/00-oom-score.conf tunes its unit).
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonEKS_CNI_Policy",
    "AmazonSSMManagedInstanceCore",
)
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def partition_of_arn(arn: str) -> str:
    return arn.split(":", 2)[1]


def managed_policy_arn(name: str, part: str = "aws") -> str:
    return f"arn:{part}:iam::aws:policy/{name}"


def node_policy_arns(part: str = "aws") -> list[str]:
    return [managed_policy_arn(p, part) for p in NODE_POLICIES]


def access_policy_arn(name: str, part: str = "aws") -> str:
    """EKS access policies live under the `eks` service, not IAM (https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html)."""
    return f"arn:{part}:eks::aws:cluster-access-policy/{name}"


def service_trust_policy(service: str) -> dict:
    """Trust policy of a role an AWS service assumes (EC2 for node roles)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def pod_identity_trust_policy() -> dict:
    """Trust policy of a role given to a service account through EKS Pod Identity: the agent assumes it and tags the
    session with the pod's cluster, namespace and service account (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }
