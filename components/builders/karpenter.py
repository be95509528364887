"""Karpenter and EKS Auto Mode as plain data: the controller's IAM policies, interruption queue and EventBridge rules,
its Helm values, and one EC2NodeClass and NodePool per GPU pool (`disagg:nodeProvisioning` karpenter / autoMode).

Every fact below is read from aws/karpenter-provider-aws at the pinned release (facts/versions.py `karpenter`,
v1.14.1, commit bde0065) unless it says otherwise; the CRDs of that release are the ones our objects are checked
against (tests/conformance, tests/unit/test_karpenter_builders.py). What the managed node groups already compute
(EFA interface layout, root volume, instance metadata options, the RAID0 decision, labels and taints) is reused from
their builders, so a pool gets the same node in every mode.

Identifiers that only exist in the program (subnet, security group and role names, the account id) are passed in and
returned untouched: Outputs in the program, plain strings in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.aws_args import GpuPoolArgs
from components.builders.launch_template import efa_network_interfaces, metadata_options, root_volume
from components.builders.userdata import node_config
from facts.conventions import INSTANCE_TYPE_LABEL, POOL_LABEL, SYSTEM_POOL, ZONE_LABEL

# --- the controller ------------------------------------------------------------------------------------------------

# Namespace and service account of the controller: the getting-started guide's (website/content/en/docs/
# getting-started/getting-started-with-karpenter/_index.md `KARPENTER_NAMESPACE="kube-system"`, step02 Pod Identity
# association `serviceAccountName: karpenter`). The chart names its service account after the release unless told.
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
RELEASE = "karpenter"
# Helm waits for the controller Deployment (2 replicas on the system pool); CRDs come from the chart's crds/.
RELEASE_TIMEOUT = 600

# Tags and labels Karpenter writes (pkg/apis/v1/labels.go, pkg/utils/utils.go GetTags): every instance, volume,
# network interface and launch template it creates carries the first three and `kubernetes.io/cluster/<name>: owned`;
# EC2NodeClass `spec.tags` may not use any of them (RestrictedTagPatterns).
NODEPOOL_TAG = "karpenter.sh/nodepool"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"
EKS_CLUSTER_NAME_TAG = "eks:eks-cluster-name"
NODECLAIM_TAG = "karpenter.sh/nodeclaim"
RESTRICTED_TAG_KEYS = (NODEPOOL_TAG, NODECLASS_TAG, EKS_CLUSTER_NAME_TAG, NODECLAIM_TAG)

# The controller's events (website/.../getting-started-with-karpenter/cloudformation.yaml at v1.14.1: the five
# AWS::Events::Rule resources). Spot warnings and rebalance recommendations never concern our On-Demand and reserved
# pools, but the rules cost nothing and keep the queue what Karpenter documents.
INTERRUPTION_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("scheduled-change", "aws.health", "AWS Health Event"),
    ("spot-interruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("instance-state-change", "aws.ec2", "EC2 Instance State-change Notification"),
    ("capacity-reservation-interruption", "aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
)
EVENT_TARGET_ID = "KarpenterInterruptionQueueTarget"
# cloudformation.yaml KarpenterInterruptionQueue: MessageRetentionPeriod 300, SqsManagedSseEnabled true.
QUEUE_RETENTION_SECONDS = 300


def interruption_queue_name(cluster_name: str) -> str:
    """The queue the controller reads (`settings.interruptionQueue`, a name, not a URL). SQS names allow 80
    characters; EKS cluster names 100, so long names are cut (the queue policy names it by ARN, not by name)."""
    return f"karpenter-{cluster_name}"[:80]


def event_pattern(source: str, detail_type: str) -> dict[str, Any]:
    return {"source": [source], "detail-type": [detail_type]}


def interruption_queue_policy(queue_arn: str) -> dict[str, Any]:
    """cloudformation.yaml KarpenterInterruptionQueuePolicy: EventBridge (and SQS) may send, plain HTTP is denied."""
    return {
        "Id": "EC2InterruptionPolicy",
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Principal": "*",
            },
        ],
    }


def controller_policies(
    *, cluster_name: str, region: str, partition: str, account_id: str, node_role_arn: str, queue_arn: str
) -> dict[str, dict[str, Any]]:
    """The controller's permissions, policy by policy, as cloudformation.yaml at v1.14.1 grants them
    (NodeLifecyclePolicy, IAMIntegrationPolicy, EKSIntegrationPolicy, InterruptionPolicy, ResourceDiscoveryPolicy;
    ZonalShiftPolicy is left out with `settings.enableZonalShift` off). Every write is scoped to resources tagged for
    this cluster and a NodePool, so the controller cannot touch another cluster's instances."""
    p, r, a, c = partition, region, account_id, cluster_name
    owned = {f"aws:RequestTag/kubernetes.io/cluster/{c}": "owned", "aws:RequestTag/eks:eks-cluster-name": c}
    launched = [
        f"arn:{p}:ec2:{r}:*:{kind}/*"
        for kind in ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")
    ]
    node_lifecycle = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowScopedEC2InstanceAccessActions",
                "Effect": "Allow",
                "Resource": [
                    f"arn:{p}:ec2:{r}::image/*",
                    f"arn:{p}:ec2:{r}::snapshot/*",
                    f"arn:{p}:ec2:{r}:*:security-group/*",
                    f"arn:{p}:ec2:{r}:*:subnet/*",
                    f"arn:{p}:ec2:{r}:*:capacity-reservation/*",
                    f"arn:{p}:ec2:{r}:*:placement-group/*",
                ],
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            },
            {
                "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                "Effect": "Allow",
                "Resource": f"arn:{p}:ec2:{r}:*:launch-template/*",
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{c}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedEC2InstanceActionsWithTags",
                "Effect": "Allow",
                "Resource": launched,
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                "Condition": {"StringEquals": dict(owned), "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}},
            },
            {
                "Sid": "AllowScopedResourceCreationTagging",
                "Effect": "Allow",
                "Resource": launched,
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {**owned, "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                    "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedResourceTagging",
                "Effect": "Allow",
                "Resource": f"arn:{p}:ec2:{r}:*:instance/*",
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{c}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": c},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]},
                },
            },
            {
                "Sid": "AllowScopedDeletion",
                "Effect": "Allow",
                "Resource": [f"arn:{p}:ec2:{r}:*:instance/*", f"arn:{p}:ec2:{r}:*:launch-template/*"],
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{c}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                },
            },
        ],
    }
    profile = f"arn:{p}:iam::{a}:instance-profile/*"
    profile_tags = {f"aws:ResourceTag/kubernetes.io/cluster/{c}": "owned", "aws:ResourceTag/topology.kubernetes.io/region": r}
    request_profile_tags = {**owned, "aws:RequestTag/topology.kubernetes.io/region": r}
    iam_integration = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowPassingInstanceRole",
                "Effect": "Allow",
                "Resource": node_role_arn,
                "Action": "iam:PassRole",
                "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}},
            },
            {
                "Sid": "AllowScopedInstanceProfileCreationActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:CreateInstanceProfile"],
                "Condition": {
                    "StringEquals": dict(request_profile_tags),
                    "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileTagActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:TagInstanceProfile"],
                "Condition": {
                    "StringEquals": {**profile_tags, **request_profile_tags},
                    "StringLike": {
                        "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                        "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                    },
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
                "Condition": {
                    "StringEquals": dict(profile_tags),
                    "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
        ],
    }
    eks_integration = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowAPIServerEndpointDiscovery",
                "Effect": "Allow",
                "Resource": f"arn:{p}:eks:{r}:{a}:cluster/{c}",
                "Action": "eks:DescribeCluster",
            }
        ],
    }
    interruption = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            }
        ],
    }
    discovery = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowRegionalReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:DescribeCapacityReservations",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus",
                    "ec2:DescribeInstanceTypeOfferings",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribePlacementGroups",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeSubnets",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": r}},
            },
            {
                "Sid": "AllowSSMReadActions",
                "Effect": "Allow",
                "Resource": f"arn:{p}:ssm:{r}::parameter/aws/service/*",
                "Action": "ssm:GetParameter",
            },
            {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Resource": "*", "Action": "pricing:GetProducts"},
            {"Sid": "AllowUnscopedInstanceProfileListAction", "Effect": "Allow", "Resource": "*", "Action": "iam:ListInstanceProfiles"},
            {"Sid": "AllowInstanceProfileReadActions", "Effect": "Allow", "Resource": profile, "Action": "iam:GetInstanceProfile"},
        ],
    }
    return {
        "node-lifecycle": node_lifecycle,
        "iam-integration": iam_integration,
        "eks-integration": eks_integration,
        "interruption": interruption,
        "resource-discovery": discovery,
    }


def helm_values(cluster_name: str, queue_name: Any, node_repair: bool) -> dict[str, Any]:
    """Values of the karpenter chart (charts/karpenter/values.yaml at v1.14.1), only what differs from its defaults.

    Karpenter's node repair is one controller-wide feature gate (alpha, off by default: charts/karpenter/values.yaml
    `settings.featureGates.nodeRepair`); the stack turns it on when any GPU pool asks for repair, as `nodeRepair`
    does per node group with managed node groups."""
    return {
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        # The controller runs on the system managed node group: never on a node it launched itself (the chart's default
        # affinity already keeps it off nodes with a karpenter.sh/nodepool label), and never on a $55/h GPU node.
        "nodeSelector": {"kubernetes.io/os": "linux", POOL_LABEL: SYSTEM_POOL},
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": queue_name,
            "featureGates": {"nodeRepair": node_repair, "reservedCapacity": True},
        },
        # The getting-started guide's sizing (step08-apply-helm-chart.sh): requests = limits, so the controller is
        # never the pod evicted when a system node runs short.
        "controller": {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }
        },
    }


# --- EC2NodeClass --------------------------------------------------------------------------------------------------

EC2_NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_POOL_API = "karpenter.sh/v1"
NODE_CLASS_KIND = "EC2NodeClass"
NODE_CLASS_GROUP = "karpenter.k8s.aws"
# Karpenter's EC2NodeClass accepts `interface` and `efa-only` network interfaces, no `efa` (EFA with ENA): the
# primary is a plain ENA interface and the EFA device of card 0 is an `efa-only` interface beside it at device
# index 1 (pkg/apis/v1/ec2nodeclass.go NetworkInterface: `Enum:={interface,efa-only}`; CEL rule "networkInterfaces
# must include a primary interface with interfaceType='interface'"; designs/efa-for-static-capacity.md, the
# IP-optimized layout).
ENA = "interface"
EFA_ONLY = "efa-only"


def ami_alias(pool: GpuPoolArgs) -> str:
    """`amiSelectorTerms` alias of the pool's AMI: AL2023 at the release of the pool's AMI pin. Karpenter resolves
    `al2023@v<date>` through SSM to the standard, NVIDIA or Neuron variant each instance type needs
    (pkg/providers/amifamily/al2023.go: `/aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/<arch>/<variant>/
    amazon-eks-node-al2023-<arch>-<variant>-<k8s>-<version>/image_id`), so a p5 node gets the NVIDIA AMI of the same
    amazon-eks-ami release the managed node groups run (release `1.35.6-20260724` -> `v20260724`)."""
    release = pool.ami_release_version
    return f"al2023@v{release.rsplit('-', 1)[-1]}"


def node_class_network_interfaces(pool: GpuPoolArgs) -> list[dict[str, Any]]:
    """EFA layout of a pool's EC2NodeClass, derived from the launch template layout of the managed node groups
    (`efa_network_interfaces`): the same cards and device indices, with the primary `efa` interface of card 0 split
    into the ENA primary (device 0) and an `efa-only` interface at device index 1. Every EFA card then carries one
    EFA device, as many as the instance has (p5: 32, p4d: 4), which is what the serving pods request.

    Security groups are not per interface here: Karpenter puts the EC2NodeClass's selected groups on every interface
    (pkg/providers/launchtemplate/launchtemplate.go generateNetworkInterfaces: `Groups: options.SecurityGroups`).
    """
    out: list[dict[str, Any]] = []
    for nic in efa_network_interfaces(pool.instance, ["(each interface gets the node class's groups)"]):
        card, device, kind = nic["network_card_index"], nic["device_index"], nic["interface_type"]
        if kind == "efa":
            out.append({"networkCardIndex": card, "deviceIndex": device, "interfaceType": ENA})
            out.append({"networkCardIndex": card, "deviceIndex": device + 1, "interfaceType": EFA_ONLY})
        else:
            out.append({"networkCardIndex": card, "deviceIndex": device, "interfaceType": kind})
    return out


def _block_device_mappings(root_gb: int) -> list[dict[str, Any]]:
    (lt,) = root_volume(root_gb)
    ebs = lt["ebs"]
    return [
        {
            "deviceName": lt["device_name"],
            # EC2 sizes volumes in GiB; the CRD takes a quantity ("Gi" is GiB).
            "ebs": {
                "volumeSize": f"{ebs['volume_size']}Gi",
                "volumeType": ebs["volume_type"],
                "encrypted": ebs["encrypted"] == "true",
                "deleteOnTermination": ebs["delete_on_termination"] == "true",
            },
            "rootVolume": True,
        }
    ]


def _metadata_options() -> dict[str, Any]:
    lt = metadata_options()
    # `instanceMetadataTags` is not a field: Karpenter always writes it disabled (launchtemplate/types.go).
    return {
        "httpEndpoint": lt["http_endpoint"],
        "httpProtocolIPv6": "disabled",
        "httpPutResponseHopLimit": lt["http_put_response_hop_limit"],
        "httpTokens": lt["http_tokens"],
    }


def ec2_node_class(
    pool: GpuPoolArgs,
    *,
    node_role: Any,
    subnet_ids: Sequence[Any],
    security_group_ids: Sequence[Any],
    placement_group_name: Any | None,
    tags: dict[str, str],
) -> dict[str, Any]:
    """The EC2NodeClass of one GPU pool: the node every NodeClaim of the pool becomes."""
    spec: dict[str, Any] = {
        # Karpenter makes the instance profile for this role; the role has an EC2_LINUX access entry.
        "role": node_role,
        "amiSelectorTerms": [{"alias": ami_alias(pool)}],
        # By id: our subnets and groups carry no discovery tags, and ids cannot match a look-alike.
        "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
        # The cluster security group must be among them: Karpenter adds no group of its own, and it is the group the
        # control plane and the system nodes talk to the kubelet through.
        "securityGroupSelectorTerms": [{"id": g} for g in security_group_ids],
        "metadataOptions": _metadata_options(),
        "blockDeviceMappings": _block_device_mappings(pool.root_volume_gb),
        "tags": {k: v for k, v in tags.items() if k not in RESTRICTED_TAG_KEYS and not k.startswith("kubernetes.io/cluster/")},
    }
    # RAID0 over the instance-store NVMe when the managed node groups would build it (same decision, userdata.py).
    # Not as user data: Karpenter writes the NodeConfig `localStorage.strategy: RAID0` itself for this policy
    # (pkg/providers/amifamily/bootstrap/nodeadm.go) and only then counts the array as the node's ephemeral storage
    # (website/.../concepts/nodeclasses.md spec.instanceStorePolicy: "Karpenter won't recognize this by default
    # unless you set the instanceStorePolicy to RAID0").
    if node_config(pool.instance, pool.nvme_cache) is not None:
        spec["instanceStorePolicy"] = "RAID0"
    if pool.efa:
        spec["networkInterfaces"] = node_class_network_interfaces(pool)
    if pool.capacity.reserved:
        # Capacity Blocks are capacity reservations to Karpenter (website/.../tasks/odcrs.md: "specify them in your
        # capacityReservationSelectorTerms in the same way you would for a default ODCR").
        spec["capacityReservationSelectorTerms"] = [{"id": pool.capacity.reservation_id}]
    if placement_group_name is not None:
        spec["placementGroupSelector"] = {"name": placement_group_name}
    return {
        "apiVersion": EC2_NODE_CLASS_API,
        "kind": NODE_CLASS_KIND,
        "metadata": {"name": pool.name},
        "spec": spec,
    }


# --- NodePool ------------------------------------------------------------------------------------------------------

CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
GPU_RESOURCE = "nvidia.com/gpu"
# An empty GPU node goes after an hour, the figure the EKS Auto Mode GPU NodePool example uses "to support spiky
# workloads and reduce node churn" (EKS user guide automode/auto-accelerated.adoc): a p5 that took 15 minutes to
# join and load weights is not given back between two bursts.
CONSOLIDATE_AFTER = "1h"
# Karpenter expires nodes after 720h by default and expiry is forceful: it does not wait for disruption budgets
# (kubernetes-sigs/karpenter v1 NodePool `expireAfter`). A serving node is replaced only through drift, which the
# budget below paces.
EXPIRE_AFTER = "Never"
# The NodePool waits for its NodeClaims on delete: they carry an ownerReference to it with blockOwnerDeletion
# (kubernetes-sigs/karpenter @ 6e7eab7 pkg/controllers/provisioning/scheduling/nodeclaimtemplate.go), which holds
# only under foreground deletion. Said explicitly instead of relying on the provider's default.
DELETE_PROPAGATION = {"pulumi.com/deletionPropagationPolicy": "foreground"}


def _requirement(key: str, values: Sequence[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


def node_pool_limits(pool: GpuPoolArgs) -> dict[str, str]:
    """`maxNodes` as a limit on nodes (enforced by the scheduler at the pinned core: kubernetes-sigs/karpenter @
    6e7eab7 pkg/controllers/provisioning/scheduling/scheduler.go `remaining[resources.Node]`) and on GPUs, the limit
    every Karpenter release enforces (EKS Auto Mode runs its own build)."""
    n = pool.max_nodes
    return {"nodes": str(n), GPU_RESOURCE: str(n * pool.instance.gpus)}


def disruption(pool: GpuPoolArgs) -> dict[str, Any]:
    """Never consolidate a node that serves: `WhenEmpty` only removes nodes without pods (DaemonSets aside), and the
    budget lets at most `maxUnavailable` nodes of the pool be disrupted at once (drift after an AMI or node class
    change), as `maxUnavailable` paces a managed node group update."""
    return {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": CONSOLIDATE_AFTER,
        "budgets": [{"nodes": str(pool.max_unavailable)}],
    }


def capacity_types(pool: GpuPoolArgs) -> list[str]:
    """`reserved` only for a reservation or Capacity Block pool: a full reservation leaves pods Pending rather than
    launching On-Demand at list price (the managed node groups' `capacity-reservations-only`)."""
    return ["reserved"] if pool.capacity.reserved else ["on-demand"]


def node_pool(pool: GpuPoolArgs, *, node_class_ref: dict[str, str]) -> dict[str, Any]:
    """One NodePool per GPU pool: its instance type, zones and capacity type; the pool and role labels and the GPU and
    role taints the serving pods select and tolerate (components/builders/scheduling.py); limits from maxNodes."""
    return {
        "apiVersion": NODE_POOL_API,
        "kind": "NodePool",
        "metadata": {"name": pool.name, "annotations": dict(DELETE_PROPAGATION)},
        "spec": {
            "template": {
                "metadata": {"labels": dict(pool.labels)},
                "spec": {
                    "nodeClassRef": dict(node_class_ref),
                    "requirements": [
                        _requirement(INSTANCE_TYPE_LABEL, [pool.instance_type]),
                        _requirement(ZONE_LABEL, pool.zones),
                        _requirement(CAPACITY_TYPE_LABEL, capacity_types(pool)),
                    ],
                    "taints": [{"key": t["key"], "value": t["value"], "effect": t["effect"]} for t in pool.taints],
                    "expireAfter": EXPIRE_AFTER,
                },
            },
            "limits": node_pool_limits(pool),
            "disruption": disruption(pool),
        },
    }


def karpenter_node_class_ref(pool: GpuPoolArgs) -> dict[str, str]:
    return {"group": NODE_CLASS_GROUP, "kind": NODE_CLASS_KIND, "name": pool.name}


# --- EKS Auto Mode -------------------------------------------------------------------------------------------------

# The built-in NodeClass EKS creates when a built-in node pool is enabled (EKS user guide automode/
# auto-accelerated.adoc prerequisites: "A `default` EKS Node class as created when the `general-purpose` or `system`
# Managed Node Pools are enabled"). Its subnets are the cluster's and its group the cluster security group, which
# allows all traffic within itself, as EFA needs.
AUTO_NODE_CLASS_REF = {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "default"}
# Built-in pools kept on: `system` only (tainted CriticalAddonsOnly), so the `default` NodeClass exists; the
# `general-purpose` pool would take every untolerating pod that the system node group cannot fit.
AUTO_BUILTIN_NODE_POOLS = ("system",)
AUTO_INSTANCE_FAMILY_LABEL = "eks.amazonaws.com/instance-family"


def auto_mode_node_pool(pool: GpuPoolArgs) -> dict[str, Any]:
    """A GPU pool as an EKS Auto Mode NodePool (`karpenter.sh/v1`, the same API) on the built-in NodeClass, the
    layout of the EKS Auto Mode GPU examples: instance family and type, zone, On-Demand, role label and taint."""
    out = node_pool(pool, node_class_ref=AUTO_NODE_CLASS_REF)
    family = pool.instance_type.split(".", 1)[0]
    out["spec"]["template"]["spec"]["requirements"].insert(0, _requirement(AUTO_INSTANCE_FAMILY_LABEL, [family]))
    return out
