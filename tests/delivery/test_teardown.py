"""Teardown against faked AWS (moto) and a fake Kubernetes client: what is deleted, in which order, what stays."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ops import teardown
from ops.__main__ import main as ops_main
from ops.kube import INGRESSES, PVCS, PVS, SERVICES, KubeError
from ops.teardown import PODS, AwsClients, find_all, pre_destroy, sweep
from tests.delivery.fakes import FakeKube

REGION = "us-east-1"
CLUSTER = "pr-7"


@pytest.fixture
def aws(monkeypatch):
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        yield AwsClients(boto3.client("ec2", REGION), boto3.client("elbv2", REGION), boto3.client("elb", REGION))


def tags(**kv) -> list[dict]:
    return [{"Key": k.replace("__", "/").replace("_", "."), "Value": v} for k, v in kv.items()]


def t(key: str, value: str) -> dict:
    return {"Key": key, "Value": value}


class World:
    """A VPC with what a cluster's controllers leave behind, plus look-alikes that belong to someone else."""

    def __init__(self, aws: AwsClients):
        ec2, elbv2 = aws.ec2, aws.elbv2
        self.aws = aws
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
            for i, z in enumerate("ab")
        ]

        def lb(name: str, *tag_list: dict) -> str:
            return elbv2.create_load_balancer(Name=name, Subnets=self.subnets, Type="network", Tags=list(tag_list))["LoadBalancers"][0][
                "LoadBalancerArn"
            ]

        def tg(name: str, *tag_list: dict) -> str:
            return elbv2.create_target_group(Name=name, Protocol="TCP", Port=80, VpcId=self.vpc, TargetType="ip", Tags=list(tag_list))[
                "TargetGroups"
            ][0]["TargetGroupArn"]

        def sg(name: str, *tag_list: dict) -> str:
            spec = [{"ResourceType": "security-group", "Tags": list(tag_list)}] if tag_list else []
            return ec2.create_security_group(GroupName=name, Description=name, VpcId=self.vpc, TagSpecifications=spec)["GroupId"]

        def eni(*tag_list: dict) -> str:
            return ec2.create_network_interface(
                SubnetId=self.subnets[0], TagSpecifications=[{"ResourceType": "network-interface", "Tags": list(tag_list)}]
            )["NetworkInterface"]["NetworkInterfaceId"]

        def vol(*tag_list: dict) -> str:
            return ec2.create_volume(
                AvailabilityZone=f"{REGION}a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": list(tag_list)}]
            )["VolumeId"]

        self.lb, self.sg, self.eni, self.vol, self.tg = lb, sg, eni, vol, tg
        # Ours: an NLB of the Load Balancer Controller, an in-tree classic ELB, their groups and volumes.
        self.nlb = lb("k8s-serving-router", t("elbv2.k8s.aws/cluster", CLUSTER), t("service.k8s.aws/stack", "serving/router"))
        self.nlb_tg = tg("k8s-serving-router", t("elbv2.k8s.aws/cluster", CLUSTER))
        aws.elb.create_load_balancer(
            LoadBalancerName="a1b2c3", Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}],
            AvailabilityZones=[f"{REGION}a"],
        )
        aws.elb.add_tags(LoadBalancerNames=["a1b2c3"], Tags=[t(f"kubernetes.io/cluster/{CLUSTER}", "owned")])
        self.lbc_sg = sg("k8s-traffic-pr-7", t("elbv2.k8s.aws/cluster", CLUSTER))
        self.elb_sg = sg("k8s-elb-a1b2c3", t(f"kubernetes.io/cluster/{CLUSTER}", "owned"))
        # The two groups reference each other: deletable only after their rules are revoked.
        ec2.authorize_security_group_ingress(GroupId=self.elb_sg, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": self.lbc_sg}]}])
        ec2.authorize_security_group_ingress(GroupId=self.lbc_sg, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": self.elb_sg}]}])
        self.cni_eni = eni(t("cluster.k8s.amazonaws.com/name", CLUSTER))
        self.pvc_vol = vol(t(f"kubernetes.io/cluster/{CLUSTER}", "owned"), t("kubernetes.io/created-for/pvc/name", "model-cache"))
        self.stack_vol = vol(t("disagg.io/stack", CLUSTER))
        # Someone else's: another cluster, another stack, untagged.
        self.other_lb = lb("k8s-other", t("elbv2.k8s.aws/cluster", "prod"))
        self.other_tg = tg("k8s-other", t("elbv2.k8s.aws/cluster", "prod"))
        self.other_sg = sg("prod-sg", t(f"kubernetes.io/cluster/{CLUSTER}-old", "owned"))
        self.plain_sg = sg("untagged")
        self.other_eni = eni(t("cluster.k8s.amazonaws.com/name", "prod"))
        self.other_vol = vol(t("disagg.io/stack", "prod"))

    def lb_arns(self) -> set[str]:
        return {lb["LoadBalancerArn"] for lb in self.aws.elbv2.describe_load_balancers()["LoadBalancers"]}

    def classic(self) -> set[str]:
        return {lb["LoadBalancerName"] for lb in self.aws.elb.describe_load_balancers()["LoadBalancerDescriptions"]}

    def volumes(self) -> set[str]:
        return {v["VolumeId"] for v in self.aws.ec2.describe_volumes()["Volumes"]}

    def groups(self) -> set[str]:
        return {g["GroupId"] for g in self.aws.ec2.describe_security_groups()["SecurityGroups"]}

    def enis(self) -> set[str]:
        return {e["NetworkInterfaceId"] for e in self.aws.ec2.describe_network_interfaces()["NetworkInterfaces"]}

    def tgs(self) -> set[str]:
        return {x["TargetGroupArn"] for x in self.aws.elbv2.describe_target_groups()["TargetGroups"]}


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def obj(name: str, namespace: str | None = "serving", **rest) -> dict:
    return {"metadata": {"name": name, **({"namespace": namespace} if namespace else {})}, **rest}


def cluster_objects(world: World) -> dict[str, list[dict]]:
    return {
        SERVICES: [
            obj("router", spec={"type": "LoadBalancer"}),
            obj("router-internal", spec={"type": "ClusterIP"}),
            obj("legacy", namespace="default", spec={"type": "LoadBalancer"}),
        ],
        INGRESSES: [obj("grafana", namespace="monitoring")],
        PVCS: [obj("model-cache")],
        PVS: [
            obj(
                "pvc-123", namespace=None,
                spec={"claimRef": {"namespace": "serving", "name": "model-cache"}, "csi": {"volumeHandle": world.pvc_vol}, "persistentVolumeReclaimPolicy": "Delete"},
            )
        ],
        PODS: [
            obj("decode-0", spec={"volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache"}}]}),
            obj("router-0", spec={"volumes": [{"name": "cfg", "configMap": {"name": "x"}}]}),
        ],
    }


def controllers(world: World, kube_ref: list):
    """What the in-cluster controllers do when objects go: LBC and the in-tree provider delete their load
    balancers; the EBS CSI driver deletes a released volume once no pod holds its claim."""

    def on_delete(kind: str, ns: str | None, name: str) -> None:
        kube = kube_ref[0]
        if (kind, ns, name) == (SERVICES, "serving", "router"):
            world.aws.elbv2.delete_load_balancer(LoadBalancerArn=world.nlb)
        if (kind, ns, name) == (SERVICES, "default", "legacy"):
            world.aws.elb.delete_load_balancer(LoadBalancerName="a1b2c3")
        claim_gone = not any(p["metadata"]["name"] == "model-cache" for p in kube.objects[PVCS])
        holders = [p for p in kube.objects[PODS] if any((v.get("persistentVolumeClaim") or {}).get("claimName") == "model-cache" for v in p["spec"]["volumes"])]
        if claim_gone and not holders and world.pvc_vol in world.volumes():
            world.aws.ec2.delete_volume(VolumeId=world.pvc_vol)
            kube.objects[PVS] = []

    return on_delete


def test_pre_destroy_deletes_what_kubernetes_made_and_waits_for_aws(aws):
    world = World(aws)
    ref: list = []
    kube = FakeKube(cluster_objects(world), on_delete=controllers(world, ref))
    ref.append(kube)
    clock = Clock()
    report = pre_destroy(kube, aws, CLUSTER, timeout=600, interval=10, sleep=clock.sleep, clock=clock, log=lambda _: None)

    assert kube.deleted == [
        (INGRESSES, "monitoring", "grafana"),
        (SERVICES, "serving", "router"),
        (SERVICES, "default", "legacy"),
        (PVCS, "serving", "model-cache"),
        (PODS, "serving", "decode-0"),
    ]
    assert report.ok, report.render()
    assert report.waited_for == [f"volume {world.pvc_vol} (claim serving/model-cache)"]
    assert world.nlb not in world.lb_arns() and "a1b2c3" not in world.classic()
    assert world.pvc_vol not in world.volumes()
    # Someone else's load balancer is neither deleted nor waited for.
    assert world.other_lb in world.lb_arns()
    assert clock.sleeps == []


def test_pre_destroy_waits_then_reports_what_is_still_there(aws):
    world = World(aws)
    kube = FakeKube(cluster_objects(world))  # no controller acts: nothing goes away
    clock = Clock()
    report = pre_destroy(kube, aws, CLUSTER, timeout=60, interval=10, sleep=clock.sleep, clock=clock, log=lambda _: None)
    assert not report.ok
    assert clock.sleeps == [10] * 6 and clock.now == 60
    text = "\n".join(report.remaining)
    assert world.nlb in text and "classic-load-balancer a1b2c3" in text and world.pvc_vol in text
    assert world.other_lb not in text
    assert "STILL PRESENT" in report.render()


def test_pre_destroy_on_an_unreachable_cluster_still_checks_aws(aws):
    world = World(aws)

    class Down(FakeKube):
        def list(self, kind):
            raise KubeError("dial tcp: lookup api: no such host")

    clock = Clock()
    report = pre_destroy(Down({}), aws, CLUSTER, timeout=20, interval=10, sleep=clock.sleep, clock=clock, log=lambda _: None)
    assert "unreachable" in report.skipped and report.deleted == []
    assert any(world.nlb in r for r in report.remaining)


def test_sweep_deletes_leftovers_in_dependency_order_and_spares_the_rest(aws):
    world = World(aws)
    clock = Clock()
    report = sweep(aws, CLUSTER, CLUSTER, attempts=3, delay=5, sleep=clock.sleep, log=lambda _: None)
    assert report.ok, report.render()
    kinds = [d.split(" ", 1)[0] for d in report.deleted]
    order = ["load-balancer", "classic-load-balancer", "target-group", "eni", "volume", "security-group"]
    assert sorted(set(kinds), key=order.index) == order
    assert [k for k in kinds] == sorted(kinds, key=order.index), "deleted out of dependency order"
    # Ours are gone...
    assert world.nlb not in world.lb_arns() and "a1b2c3" not in world.classic() and world.nlb_tg not in world.tgs()
    assert world.cni_eni not in world.enis()
    assert {world.pvc_vol, world.stack_vol}.isdisjoint(world.volumes())
    assert {world.lbc_sg, world.elb_sg}.isdisjoint(world.groups())
    # ...everything else is untouched.
    assert world.other_lb in world.lb_arns() and world.other_tg in world.tgs()
    assert {world.other_sg, world.plain_sg} <= world.groups()
    assert world.other_eni in world.enis() and world.other_vol in world.volumes()
    assert find_all(aws, CLUSTER, CLUSTER) == []
    assert report.attempts == 2 and clock.sleeps == [5]  # one deleting pass, one pass that finds nothing


class Flaky:
    """Wraps a client; the named calls fail with DependencyViolation the first `n` times (AWS still detaching)."""

    def __init__(self, client, **failures: int):
        self._client = client
        self._left = dict(failures)

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if self._left.get(name, 0) <= 0:
            return real

        def fail(*args, **kwargs):
            self._left[name] -= 1
            raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"}}, name)

        return fail


def test_sweep_retries_until_dependencies_clear(aws):
    world = World(aws)
    flaky = AwsClients(Flaky(aws.ec2, delete_security_group=3), aws.elbv2, aws.elb)
    clock = Clock()
    report = sweep(flaky, CLUSTER, CLUSTER, attempts=5, delay=30, sleep=clock.sleep, log=lambda _: None)
    assert report.ok, report.render()
    assert {world.lbc_sg, world.elb_sg}.isdisjoint(world.groups())
    assert clock.sleeps == [30, 30, 30]


def test_sweep_reports_what_it_cannot_delete(aws):
    world = World(aws)
    flaky = AwsClients(Flaky(aws.ec2, delete_security_group=100), aws.elbv2, aws.elb)
    clock = Clock()
    report = sweep(flaky, CLUSTER, CLUSTER, attempts=2, delay=1, sleep=clock.sleep, log=lambda _: None)
    assert not report.ok
    assert sorted(report.remaining) == sorted(
        [f"security-group {world.lbc_sg} (k8s-traffic-pr-7)", f"security-group {world.elb_sg} (k8s-elb-a1b2c3)"]
    )
    assert any("DependencyViolation" in e for e in report.errors)
    assert "LEFT BEHIND" in report.render() and world.lbc_sg in report.render()


def test_sweep_leaves_attached_enis_and_volumes_and_fails(aws):
    world = World(aws)
    image = aws.ec2.describe_images()["Images"][0]["ImageId"]
    instance = aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=world.subnets[0])["Instances"][0]["InstanceId"]
    attached = world.eni(t("cluster.k8s.amazonaws.com/name", CLUSTER))
    aws.ec2.attach_network_interface(NetworkInterfaceId=attached, InstanceId=instance, DeviceIndex=1)
    busy_vol = world.vol(t(f"kubernetes.io/cluster/{CLUSTER}", "owned"))
    aws.ec2.attach_volume(VolumeId=busy_vol, InstanceId=instance, Device="/dev/sdf")
    report = sweep(aws, CLUSTER, CLUSTER, attempts=2, delay=1, sleep=lambda s: None, log=lambda _: None)
    assert not report.ok
    assert attached in world.enis() and busy_vol in world.volumes()
    assert any(attached in r for r in report.remaining) and any(busy_vol in r for r in report.remaining)


def test_teardown_cli_sweep_exits_non_zero_on_leftovers(aws, monkeypatch, capsys):
    world = World(aws)
    monkeypatch.setattr(teardown.time, "sleep", lambda s: None)
    image = aws.ec2.describe_images()["Images"][0]["ImageId"]
    instance = aws.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=world.subnets[0])["Instances"][0]["InstanceId"]
    busy_vol = world.vol(t("disagg.io/stack", CLUSTER))
    aws.ec2.attach_volume(VolumeId=busy_vol, InstanceId=instance, Device="/dev/sdf")
    code = ops_main(["teardown", "--cluster", CLUSTER, "--region", REGION, "--stack", CLUSTER, "--phase", "sweep", "--attempts", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert busy_vol in out and "LEFT BEHIND" in out
    assert world.nlb not in world.lb_arns()

    aws.ec2.detach_volume(VolumeId=busy_vol, InstanceId=instance)
    assert ops_main(["teardown", "--cluster", CLUSTER, "--region", REGION, "--stack", CLUSTER, "--phase", "sweep", "--attempts", "1"]) == 0


def test_real_teardown_steps_wire_kubectl_and_boto3_for_the_stack(aws, monkeypatch):
    """AwsTeardown (what review-destroy uses) reaches the stack's cluster and region."""
    from ops.kube import Kubectl
    from ops.lifecycle import AwsTeardown, StackTarget

    world = World(aws)
    ref: list = []
    kube = FakeKube(cluster_objects(world), on_delete=controllers(world, ref))
    ref.append(kube)
    asked = []
    monkeypatch.setattr(Kubectl, "for_eks", classmethod(lambda cls, cluster, region, **kw: asked.append((cluster, region)) or kube))
    monkeypatch.setattr(teardown.time, "sleep", lambda s: None)
    steps = AwsTeardown(timeout=30, sweep_attempts=2, log=lambda _: None)
    target = StackTarget("pr-7", CLUSTER, REGION)
    assert steps.before_destroy(target).ok
    assert asked == [(CLUSTER, REGION)]
    assert (SERVICES, "serving", "router") in kube.deleted
    report = steps.after_destroy(target)
    assert report.ok and world.lbc_sg not in world.groups() and world.other_lb in world.lb_arns()


class Proc:
    def __init__(self, returncode=0, stdout="", stderr=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def test_kubectl_client_commands():
    from ops.kube import Kubectl

    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[0] == "aws":
            return Proc()
        if "get" in cmd:
            return Proc(stdout='{"items": [{"metadata": {"name": "a"}}]}')
        return Proc()

    k = Kubectl.for_eks("pr-7", "eu-west-1", run=run)
    assert calls[0][:7] == ["aws", "eks", "update-kubeconfig", "--name", "pr-7", "--region", "eu-west-1"]
    kubeconfig = calls[0][-1]
    assert k.list(SERVICES) == [{"metadata": {"name": "a"}}]
    k.list(PVS)
    k.delete(SERVICES, "serving", "router")
    assert calls[1] == ["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=60s", "get", "services", "--all-namespaces", "-o", "json"]
    assert calls[2] == ["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=60s", "get", "persistentvolumes", "-o", "json"]
    assert calls[3] == ["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=60s", "delete", "services", "router", "--namespace", "serving", "--wait=false", "--ignore-not-found"]

    with pytest.raises(KubeError, match="Unauthorized"):
        Kubectl("x", run=lambda cmd, **kw: Proc(1, stderr="error: Unauthorized")).list(SERVICES)
    with pytest.raises(KubeError, match="cannot get a kubeconfig"):
        Kubectl.for_eks("gone", "us-east-1", run=lambda cmd, **kw: Proc(254, stderr="ResourceNotFoundException"))


class Recorder:
    """Wraps a client and records the calls made on it, waiters included."""

    def __init__(self, client, calls: list):
        self._client, self._calls = client, calls

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            self._calls.append((name, args))
            return real(*args, **kwargs)

        return call


def test_sweep_waits_for_deleted_load_balancers_before_their_target_groups(aws):
    world = World(aws)
    calls: list = []
    recorded = AwsClients(aws.ec2, Recorder(aws.elbv2, calls), aws.elb)
    report = sweep(recorded, CLUSTER, CLUSTER, attempts=3, delay=0, sleep=lambda _: None, log=lambda _: None)
    assert report.ok, report.render()
    names = [n for n, _ in calls]
    assert ("get_waiter", ("load_balancers_deleted",)) in calls
    assert names.index("delete_load_balancer") < names.index("get_waiter") < names.index("delete_target_group")
    assert world.nlb not in world.lb_arns()
