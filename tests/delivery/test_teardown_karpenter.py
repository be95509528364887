"""The teardown sweep against moto: what Karpenter launched for the cluster (not in Pulumi state) is found by
Karpenter's own tags and removed; managed node group instances and other clusters' nodes are never touched."""

from __future__ import annotations

from ops.teardown import find_all, find_karpenter_instances, find_karpenter_launch_templates, sweep
from tests.delivery import test_teardown as base

CLUSTER = "pr-9"
aws = base.aws  # the same moto account as the other teardown tests


def tags(**kv: str) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in kv.items()]


def karpenter_tags(cluster: str, pool: str) -> list[dict]:
    """What Karpenter v1.14.1 writes on its instances (pkg/utils/utils.go GetTags) plus our EC2NodeClass tags."""
    return tags(**{
        f"kubernetes.io/cluster/{cluster}": "owned",
        "eks:eks-cluster-name": cluster,
        "karpenter.sh/nodepool": pool,
        "karpenter.k8s.aws/ec2nodeclass": pool,
        "karpenter.sh/nodeclaim": f"{pool}-abcde",
    })


def run(ec2, tag_list: list[dict]) -> str:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}]
    )["Instances"][0]["InstanceId"]


def launch_template(ec2, name: str, tag_list: list[dict]) -> str:
    return ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"InstanceType": "m5.large"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": tag_list}],
    )["LaunchTemplate"]["LaunchTemplateId"]


def state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_sweep_terminates_karpenter_nodes_and_deletes_their_launch_templates_only(aws):
    ec2 = aws.ec2
    ours = [run(ec2, karpenter_tags(CLUSTER, "prefill")), run(ec2, karpenter_tags(CLUSTER, "decode"))]
    # A managed node group's instance of the same cluster (EKS tags it eks:cluster-name, not eks:eks-cluster-name).
    system = run(ec2, tags(**{f"kubernetes.io/cluster/{CLUSTER}": "owned", "eks:cluster-name": CLUSTER, "eks:nodegroup-name": "system"}))
    other = run(ec2, karpenter_tags("prod", "decode"))
    no_pool = run(ec2, tags(**{"eks:eks-cluster-name": CLUSTER}))  # not launched by a NodePool
    lt = launch_template(ec2, "karpenter.k8s.aws/123", karpenter_tags(CLUSTER, "prefill"))
    other_lt = launch_template(ec2, "karpenter.k8s.aws/456", karpenter_tags("prod", "prefill"))
    ours_lt_without_class = launch_template(ec2, "pr-9-system-lt", tags(**{"eks:eks-cluster-name": CLUSTER}))

    found = find_all(aws, CLUSTER, None)
    assert [x.id for x in found if x.kind == "karpenter-instance"] == sorted(ours)
    assert [x.id for x in found if x.kind == "karpenter-launch-template"] == [lt]
    assert found[0].kind == "karpenter-instance"  # instances go first: their interfaces hold groups and subnets

    logs: list[str] = []
    report = sweep(aws, CLUSTER, None, attempts=2, delay=0, sleep=lambda _: None, log=logs.append)
    assert report.ok, report.render()
    assert all(state(ec2, i) == "terminated" for i in ours)
    assert {state(ec2, i) for i in (system, other, no_pool)} == {"running"}
    remaining_lts = {t["LaunchTemplateId"] for t in ec2.describe_launch_templates()["LaunchTemplates"]}
    assert lt not in remaining_lts and {other_lt, ours_lt_without_class} <= remaining_lts
    assert f"karpenter-instance {ours[0]}" in report.deleted or f"karpenter-instance {sorted(ours)[0]}" in report.deleted
    assert any("terminating 2 instance(s) Karpenter launched" in line for line in logs)
    assert not find_karpenter_instances(aws, CLUSTER) and not find_karpenter_launch_templates(aws, CLUSTER)
