"""The AWS layer as the whole program registers it: network, cluster, add-ons, node pools, launch templates."""

from __future__ import annotations

import base64
import email
import json

import yaml

from stacks.catalog import instance_type
from stacks.versions import pin
from tests.conftest import ROOT, render

P5 = "p5.48xlarge"
ADDON_PINS = {
    "vpc-cni": "addon-vpc-cni",
    "kube-proxy": "addon-kube-proxy",
    "eks-pod-identity-agent": "addon-eks-pod-identity-agent",
    "coredns": "addon-coredns",
    "aws-ebs-csi-driver": "addon-aws-ebs-csi-driver",
}


# --- helpers ------------------------------------------------------------------------------------------------------


def children(r, parent_urn: str, type_: str) -> list[dict]:
    return [x for x in r.records if x["parent"] == parent_urn and x["type"] == type_]


def gpu_pools(r) -> dict[str, dict]:
    """pool name (as in config) -> {component, lt, ng, pg (or None)}."""
    out = {}
    stack = r.summary["stack"]
    for comp in r.of_type("disagg:aws:GpuNodePool"):
        pool = comp["name"][len(stack) + 1:]
        (lt,) = children(r, comp["urn"], "aws:ec2/launchTemplate:LaunchTemplate")
        (ng,) = children(r, comp["urn"], "eks:index:ManagedNodeGroup")
        pgs = children(r, comp["urn"], "aws:ec2/placementGroup:PlacementGroup")
        out[pool] = {"component": comp, "lt": lt, "ng": ng, "pg": pgs[0] if pgs else None}
    return out


def summary_pool(r, name: str) -> dict:
    return next(p for p in r.summary["gpu_pools"] if p["name"] == name)


def user_data_parts(lt: dict) -> list[tuple[str, str]]:
    text = base64.b64decode(lt["inputs"]["userData"]).decode()
    msg = email.message_from_string(text)
    assert msg.get_content_type() == "multipart/mixed"
    return [(p.get_content_type(), p.get_payload()) for p in msg.get_payload()]


def provider_urn(ref: str | None) -> str | None:
    """Provider references are "<urn>::<id>"."""
    return ref.rsplit("::", 1)[0] if ref else None


def efa_security_group(r) -> dict:
    (sg,) = children(r, r.one("disagg:aws:Cluster")["urn"], "aws:ec2/securityGroup:SecurityGroup")
    return sg


def eks_cluster(r) -> dict:
    return r.one("eks:index:Cluster")


def addons(r) -> dict[str, dict]:
    return {a["inputs"]["addonName"]: a for a in r.of_type("aws:eks/addon:Addon")}


# --- GPU pools on p5 ----------------------------------------------------------------------------------------------


def test_prod_p5_pools_have_32_efa_interfaces_laid_out_per_card(rendered):
    r = rendered["prod"]
    pools = gpu_pools(r)
    p5 = {n: p for n, p in pools.items() if summary_pool(r, n)["instance_type"] == P5}
    assert set(p5) == {"prefill", "decode"}
    for name, p in p5.items():
        nics = p["lt"]["inputs"]["networkInterfaces"]
        assert len(nics) == 32, name
        assert sorted(n["networkCardIndex"] for n in nics) == list(range(32))
        for n in nics:
            if n["networkCardIndex"] == 0:
                assert (n["interfaceType"], n["deviceIndex"]) == ("efa", 0)
            else:
                assert (n["interfaceType"], n["deviceIndex"]) == ("efa-only", 1), n
            assert "subnetId" not in n


def test_every_efa_interface_carries_the_cluster_and_efa_security_groups(rendered):
    r = rendered["prod"]
    cluster_sg = r.outputs["clusterSecurityGroupId"]
    efa_sg = efa_security_group(r)
    for name, p in gpu_pools(r).items():
        nics = p["lt"]["inputs"]["networkInterfaces"]
        for n in nics:
            assert len(n["securityGroups"]) == 2, (name, n)
            assert n["securityGroups"][0] == cluster_sg
            assert n["securityGroups"][1].startswith("sg-") and n["securityGroups"][1] != cluster_sg
        assert len({tuple(n["securityGroups"]) for n in nics}) == 1
        assert efa_sg["urn"] in p["lt"]["dependencies"]
        # Groups on the interfaces only: instance-level groups cannot be combined with interfaces.
        assert "vpcSecurityGroupIds" not in p["lt"]["inputs"]


def test_efa_security_group_allows_all_traffic_within_itself(rendered):
    r = rendered["prod"]
    sg = efa_security_group(r)
    for t in ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        (rule,) = children(r, r.one("disagg:aws:Cluster")["urn"], t)
        assert rule["inputs"]["ipProtocol"] == "-1"
        assert rule["inputs"]["referencedSecurityGroupId"] == rule["inputs"]["securityGroupId"]
        assert sg["urn"] in rule["dependencies"]


def test_prod_launch_templates_imds_root_volume_and_tags(rendered):
    r = rendered["prod"]
    for p in gpu_pools(r).values():
        i = p["lt"]["inputs"]
        assert i["metadataOptions"]["httpTokens"] == "required"
        assert i["metadataOptions"]["httpPutResponseHopLimit"] == 2
        (bdm,) = i["blockDeviceMappings"]
        assert bdm["deviceName"] == "/dev/xvda"
        assert bdm["ebs"]["encrypted"] == "true" and bdm["ebs"]["volumeType"] == "gp3"
        assert bdm["ebs"]["volumeSize"] == 200
        assert "imageId" not in i  # EKS picks the AMI and merges its bootstrap
        kinds = {t["resourceType"] for t in i["tagSpecifications"]}
        assert kinds == {"instance", "volume", "network-interface"}
        assert all(t["tags"]["disagg.io/stack"] == "prod" for t in i["tagSpecifications"])


def test_prod_user_data_carries_the_raid0_node_config(rendered):
    r = rendered["prod"]
    for name, p in gpu_pools(r).items():
        parts = user_data_parts(p["lt"])
        nodeadm = [yaml.safe_load(body) for ctype, body in parts if ctype == "application/node.eks.aws"]
        assert len(nodeadm) == 1, name
        assert nodeadm[0]["kind"] == "NodeConfig"
        assert nodeadm[0]["spec"]["instance"]["localStorage"]["strategy"] == "RAID0"


def test_prod_node_groups_use_the_nvidia_ami_and_their_launch_template(rendered):
    r = rendered["prod"]
    for p in gpu_pools(r).values():
        i = p["ng"]["inputs"]
        assert i["amiType"] == "AL2023_x86_64_NVIDIA"
        assert i["releaseVersion"] == pin("eks-al2023-nvidia-ami").version
        assert i["version"] == pin("kubernetes").version
        assert i["capacityType"] == "ON_DEMAND"
        assert i["instanceTypes"] == [P5]
        assert i["launchTemplate"]["id"].startswith("lt-")
        assert p["lt"]["urn"] in p["ng"]["dependencies"]
        # pulumi-eks builds its own launch template from these; with ours they must be absent.
        for key in ("enableEfaSupport", "userData", "nodeadmExtraOptions", "enableImdSv2", "amiId", "diskSize"):
            assert key not in i, key


def test_prod_pools_have_a_cluster_placement_group_in_their_launch_template(rendered):
    r = rendered["prod"]
    for name, p in gpu_pools(r).items():
        assert p["pg"] is not None, name
        assert p["pg"]["inputs"]["strategy"] == "cluster"
        assert p["pg"]["urn"] in p["lt"]["dependencies"]
        assert p["lt"]["inputs"]["placement"]["groupName"] == r.outputs["gpuPools"][name]["placementGroup"]
        assert p["lt"]["inputs"]["placement"]["groupName"]


def test_prod_summary_reports_32_efa_interfaces_per_node(rendered):
    r = rendered["prod"]
    for p in r.summary["gpu_pools"]:
        assert p["instance_type"] == P5
        assert p["efa_interfaces_per_node"] == 32 == instance_type(P5).efa_interfaces


def test_labels_taints_and_one_subnet_per_efa_pool_in_one_zone(rendered):
    r = rendered["prod"]
    zones = set()
    for name, p in gpu_pools(r).items():
        i = p["ng"]["inputs"]
        role = summary_pool(r, name)["role"]
        assert i["labels"]["disagg.io/pool"] == name and i["labels"]["disagg.io/role"] == role
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in i["taints"]
        assert {"key": "disagg.io/role", "value": role, "effect": "NO_SCHEDULE"} in i["taints"]
        (az,) = summary_pool(r, name)["availability_zones"]
        assert i["subnetIds"] == [r.outputs["privateSubnetIds"][az]]
        zones.add(az)
    assert len(zones) == 1  # prefill and decode share the AZ: KV transfer over EFA cannot cross AZs


def test_dev_pool_without_efa_has_no_interfaces_or_placement_group(rendered):
    r = rendered["dev"]
    for name, p in gpu_pools(r).items():
        assert "networkInterfaces" not in p["lt"]["inputs"], name
        assert p["pg"] is None
        assert p["lt"]["inputs"]["metadataOptions"]["httpTokens"] == "required"
        # g6e.xlarge has one NVMe disk: the cache still goes on it.
        assert instance_type(summary_pool(r, name)["instance_type"]).nvme_disks > 0
        assert user_data_parts(p["lt"])
    assert not children(r, r.one("disagg:aws:Cluster")["urn"], "aws:ec2/securityGroup:SecurityGroup")


# --- capacity ---------------------------------------------------------------------------------------------------------


def test_capacity_block_pool(rendered):
    r = rendered["capacity-block"]
    p = gpu_pools(r)["prefill"]
    i = p["lt"]["inputs"]
    assert i["instanceMarketOptions"]["marketType"] == "capacity-block"
    assert i["capacityReservationSpecification"]["capacityReservationTarget"] == {"capacityReservationId": "cr-0123456789abcdef0"}
    assert p["ng"]["inputs"]["capacityType"] == "CAPACITY_BLOCK"
    # Blocks are co-located by EC2: no placement group, and none in the template.
    assert p["pg"] is None
    assert "placement" not in i
    assert len(i["networkInterfaces"]) == 32
    # Only the reservation's zone.
    assert p["ng"]["inputs"]["subnetIds"] == [r.outputs["privateSubnetIds"]["us-east-2b"]]
    assert summary_pool(r, "prefill")["placement_group"] is False


def test_capacity_reservation_pool(rendered):
    r = rendered["capacity-block"]
    p = gpu_pools(r)["decode"]
    i = p["lt"]["inputs"]
    assert i["capacityReservationSpecification"]["capacityReservationTarget"] == {"capacityReservationId": "cr-0fedcba9876543210"}
    assert "instanceMarketOptions" not in i
    assert p["ng"]["inputs"]["capacityType"] == "ON_DEMAND"
    assert p["pg"] is not None and p["pg"]["inputs"]["strategy"] == "cluster"
    assert i["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 300


def test_on_demand_pools_have_no_capacity_targeting(rendered):
    for p in gpu_pools(rendered["prod"]).values():
        assert "capacityReservationSpecification" not in p["lt"]["inputs"]
        assert "instanceMarketOptions" not in p["lt"]["inputs"]


# --- one Kubernetes provider for every Kubernetes resource --------------------------------------------------------------


def test_every_kubernetes_resource_uses_the_stacks_explicit_provider(rendered):
    for name, r in rendered.items():
        (prov,) = r.of_type("pulumi:providers:kubernetes")
        assert prov["parent"] == r.one("disagg:aws:Cluster")["urn"], name
        k8s = [x for x in r.records if x["type"].startswith("kubernetes:")]
        for x in k8s:
            assert provider_urn(x["provider"]) == prov["urn"], f"{name}: {x['type']} {x['name']} uses {x['provider']}"
        # Remote components that make Kubernetes objects must get it through their provider map.
        for x in r.records:
            if x["remote"] and "kubernetes" in x["providers"]:
                assert provider_urn(x["providers"]["kubernetes"]) == prov["urn"], f"{name}: {x['name']}"


def test_kubernetes_provider_identity_and_kubeconfig(rendered):
    for r in rendered.values():
        prov = r.one("pulumi:providers:kubernetes")
        assert prov["inputs"]["clusterIdentifier"] == r.summary["cluster_name"]
        assert prov["inputs"]["enableServerSideApply"] == "true"
        assert eks_cluster(r)["urn"] in prov["dependencies"]
        # No permanent delete-unreachable: a transient API outage must not drop resources from state.
        assert "deleteUnreachable" not in prov["inputs"]


def test_every_aws_resource_uses_the_explicit_aws_provider(rendered):
    for name, r in rendered.items():
        aws_prov = r.one("pulumi:providers:aws")["urn"]
        for x in r.records:
            if x["type"].startswith("aws:"):
                assert provider_urn(x["provider"]) == aws_prov, f"{name}: {x['type']} {x['name']}"
            if x["type"].startswith("eks:"):
                assert provider_urn(x["providers"].get("aws")) == aws_prov, f"{name}: {x['name']}"


# --- the cluster ----------------------------------------------------------------------------------------------------------


def test_cluster_inputs(rendered):
    r = rendered["prod"]
    i = eks_cluster(r)["inputs"]
    assert i["name"] == "prod"
    assert i["version"] == pin("kubernetes").version
    assert i["authenticationMode"] == "API"
    assert i["skipDefaultNodeGroup"] is True
    assert i["createOidcProvider"] is True
    assert i["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert i["endpointPrivateAccess"] is True and i["endpointPublicAccess"] is True
    assert i["publicAccessCidrs"] == ["198.51.100.0/24"]
    assert i["deletionProtection"] is True
    assert i["vpcId"] == r.outputs["vpcId"]
    assert sorted(i["privateSubnetIds"]) == sorted(r.outputs["privateSubnetIds"].values())
    # Every add-on is ours (pinned, ordered); pulumi-eks and EKS must not install their own copies.
    assert i["bootstrapSelfManagedAddons"] is False
    assert i["useDefaultVpcCni"] is True and "vpcCniOptions" not in i
    assert i["kubeProxyAddonOptions"]["enabled"] is False
    assert i["corednsAddonOptions"]["enabled"] is False


def test_control_plane_log_group_is_the_stacks_and_exists_before_the_cluster(rendered):
    """EKS creates /aws/eks/<cluster>/cluster itself (never expiring) unless it exists; that one would outlive the
    stack. Ours is created first, so the cluster depends on it and deletes before it."""
    for name, r in rendered.items():
        (lg,) = r.of_type("aws:cloudwatch/logGroup:LogGroup")
        assert lg["inputs"]["name"] == f"/aws/eks/{r.summary['cluster_name']}/cluster", name
        assert lg["inputs"]["retentionInDays"] == (365 if name == "prod" else 90), name
        assert lg["parent"] == r.one("disagg:aws:Cluster")["urn"]
        assert lg["urn"] in eks_cluster(r)["dependencies"], name


def test_efa_node_groups_wait_for_the_efa_security_group_rules(rendered):
    r = rendered["prod"]
    cluster = r.one("disagg:aws:Cluster")["urn"]
    rules = [
        x["urn"]
        for t in ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        for x in children(r, cluster, t)
    ]
    assert len(rules) == 2
    for name, p in gpu_pools(r).items():
        for rule in rules:
            assert rule in p["ng"]["dependencies"], (name, rule)


def test_secrets_are_envelope_encrypted_with_a_rotating_kms_key(rendered):
    r = rendered["prod"]
    key = r.one("aws:kms/key:Key")
    assert key["inputs"]["enableKeyRotation"] is True
    cluster = eks_cluster(r)
    assert key["urn"] in cluster["dependencies"]
    assert cluster["inputs"]["encryptionConfigKeyArn"].startswith("arn:aws:kms:us-east-1:")


def test_admin_access_entries_in_the_capacity_block_stack(rendered):
    entries = eks_cluster(rendered["capacity-block"])["inputs"]["accessEntries"]
    (entry,) = entries.values()
    assert entry["principalArn"] == "arn:aws:iam::123456789012:role/platform-admin"
    (policy,) = entry["accessPolicies"].values()
    assert policy["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_managed_addons_are_pinned(rendered):
    for name, r in rendered.items():
        found = addons(r)
        assert set(ADDON_PINS) <= set(found), name
        for addon, key in ADDON_PINS.items():
            assert found[addon]["inputs"]["addonVersion"] == pin(key).version
        cni = json.loads(found["vpc-cni"]["inputs"]["configurationValues"])
        assert cni["env"]["ENABLE_PREFIX_DELEGATION"] == "true"


def test_ebs_csi_driver_uses_pod_identity(rendered):
    r = rendered["prod"]
    (assoc,) = [
        a for a in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") if a["inputs"]["serviceAccount"] == "ebs-csi-controller-sa"
    ]
    assert (assoc["inputs"]["namespace"], assoc["inputs"]["serviceAccount"]) == ("kube-system", "ebs-csi-controller-sa")
    assert addons(r)["eks-pod-identity-agent"]["urn"] in assoc["dependencies"]
    assert assoc["urn"] in addons(r)["aws-ebs-csi-driver"]["dependencies"]
    role = r.by_urn(next(d for d in assoc["dependencies"] if "aws:iam/role:Role" in d))
    trust = json.loads(role["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}


# --- ordering (and so teardown) -----------------------------------------------------------------------------------------


def test_node_groups_come_after_the_cluster_and_its_boot_addons(rendered):
    for name, r in rendered.items():
        cluster = eks_cluster(r)["urn"]
        found = addons(r)
        boot = [found[a]["urn"] for a in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")]
        ngs = r.of_type("eks:index:ManagedNodeGroup")
        assert len(ngs) == 1 + len(r.summary["gpu_pools"])
        for ng in ngs:
            assert ng["inputs"]["cluster"] == {"$ref": cluster}
            assert cluster in ng["dependencies"], f"{name}: {ng['name']}"
            for a in boot:
                assert a in ng["dependencies"], f"{name}: {ng['name']} does not wait for {a}"
            # Nodes must reach the internet (images) before they join, so they wait for the NAT routes.
            assert any(":ec2/route:Route::" in d for d in ng["dependencies"])
            role = next(d for d in ng["dependencies"] if "aws:iam/role:Role" in d)
            assert ng["inputs"]["nodeRole"] == {"$ref": role}


def test_coredns_and_ebs_csi_wait_for_the_system_node_group(rendered):
    for name, r in rendered.items():
        system = r.one("disagg:aws:SystemNodePool")
        (ng,) = children(r, system["urn"], "eks:index:ManagedNodeGroup")
        found = addons(r)
        for a in ("coredns", "aws-ebs-csi-driver"):
            assert ng["urn"] in found[a]["dependencies"], f"{name}: {a}"
        for a in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
            assert ng["urn"] not in found[a]["dependencies"]


def test_system_node_group(rendered):
    r = rendered["prod"]
    system = r.one("disagg:aws:SystemNodePool")
    (ng,) = children(r, system["urn"], "eks:index:ManagedNodeGroup")
    (lt,) = children(r, system["urn"], "aws:ec2/launchTemplate:LaunchTemplate")
    i = ng["inputs"]
    assert i["instanceTypes"] == ["m7i.2xlarge"]
    assert i["scalingConfig"] == {"desiredSize": 3, "minSize": 3, "maxSize": 3}
    assert i["labels"] == {"disagg.io/pool": "system", "disagg.io/role": "system"}
    assert "taints" not in i
    assert i["amiType"] == "AL2023_x86_64_STANDARD"
    assert i["releaseVersion"] == pin("eks-al2023-ami").version
    assert sorted(i["subnetIds"]) == sorted(r.outputs["privateSubnetIds"].values())
    assert lt["inputs"]["metadataOptions"]["httpTokens"] == "required"
    assert lt["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 100
    assert "networkInterfaces" not in lt["inputs"]  # EKS adds the cluster security group itself


# --- network ----------------------------------------------------------------------------------------------------------------


def test_network_subnets_nat_and_s3_endpoint(rendered):
    for name, nats, zones in (("prod", 3, {"us-east-1a", "us-east-1b", "us-east-1c"}), ("dev", 1, {"us-east-1a", "us-east-1b"})):
        r = rendered[name]
        assert len(r.of_type("aws:ec2/natGateway:NatGateway")) == nats, name
        subnets = r.of_type("aws:ec2/subnet:Subnet")
        assert set(r.outputs["privateSubnetIds"]) == set(r.outputs["publicSubnetIds"]) == zones
        private = [s for s in subnets if "kubernetes.io/role/internal-elb" in s["inputs"]["tags"]]
        public = [s for s in subnets if "kubernetes.io/role/elb" in s["inputs"]["tags"]]
        assert {s["inputs"]["availabilityZone"] for s in private} == zones
        assert {s["inputs"]["availabilityZone"] for s in public} == zones
        for s in subnets:
            assert s["inputs"]["tags"][f"kubernetes.io/cluster/{r.summary['cluster_name']}"] == "owned"
        (ep,) = r.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        assert ep["inputs"]["vpcEndpointType"] == "Gateway"
        assert ep["inputs"]["serviceName"] == f"com.amazonaws.{r.summary['region']}.s3"
        private_rts = [x for x in r.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in x["name"]]
        assert len(ep["inputs"]["routeTableIds"]) == len(private_rts) == len(zones)


def test_outputs_users_script_against(rendered):
    for name, r in rendered.items():
        o = r.outputs
        for key in ("clusterName", "clusterEndpoint", "kubeconfig", "oidcProviderArn", "oidcProviderUrl", "vpcId",
                    "privateSubnetIds", "publicSubnetIds", "nodeRoleArns", "gpuPools", "systemNodeGroupName", "clusterSecurityGroupId"):
            assert key in o, f"{name}: {key}"
        assert o["kubeconfig"] == "[secret]"
        assert o["clusterName"] == r.summary["cluster_name"]
        assert set(o["gpuPools"]) == {p["name"] for p in r.summary["gpu_pools"]}
        assert set(o["nodeRoleArns"]) == {"system"} | set(o["gpuPools"])
        for pool, entry in o["gpuPools"].items():
            assert entry["availabilityZones"] == summary_pool(r, pool)["availability_zones"]
            assert entry["instanceType"] == summary_pool(r, pool)["instance_type"]
            assert entry["nodeGroupName"]


def test_existing_vpc_creates_no_network(tmp_path):
    cfg = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    cfg["config"]["disagg:network"] = {
        "existingVpcId": "vpc-0123456789abcdef0",
        "existingPrivateSubnetIds": {"us-east-1a": "subnet-0aaaaaaaaaaaaaaaa", "us-east-1b": "subnet-0bbbbbbbbbbbbbbbb"},
        "existingPublicSubnetIds": {"us-east-1a": "subnet-0cccccccccccccccc", "us-east-1b": "subnet-0dddddddddddddddd"},
    }
    path = tmp_path / "Pulumi.byo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    proc = render(["--config", str(path), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "resources.json").read_text())
    types = {x["type"] for x in res["resources"]}
    for t in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway", "aws:ec2/vpcEndpoint:VpcEndpoint"):
        assert t not in types
    cluster = next(x for x in res["resources"] if x["type"] == "eks:index:Cluster")
    assert cluster["inputs"]["vpcId"] == "vpc-0123456789abcdef0"
    assert sorted(cluster["inputs"]["privateSubnetIds"]) == ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
    ngs = {x["name"]: x for x in res["resources"] if x["type"] == "eks:index:ManagedNodeGroup"}
    assert ngs["byo-prefill-ng"]["inputs"]["subnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa"]
    assert res["outputs"]["vpcId"] == "vpc-0123456789abcdef0"


def test_reservation_in_an_existing_placement_group_launches_into_it(tmp_path):
    """A reservation made inside a cluster placement group is only used by instances launched into that group:
    the pool names it, and the stack creates no group of its own for that pool."""
    from tests.conftest import BASE, Rendered, render, stack_file

    cfg = json.loads(json.dumps(BASE))
    cfg["gpuPools"][1].update(
        placementGroupName="p5-odcr-cluster-pg", capacity={"type": "capacityReservation", "reservationId": "cr-0fedcba9876543210"}
    )
    proc = render(["--config", str(stack_file(tmp_path / "Pulumi.odcr.yaml", cfg)), "--out", str(tmp_path / "out")])
    assert proc.returncode == 0, proc.stderr
    r = Rendered(tmp_path / "out")
    p = gpu_pools(r)["decode"]
    assert p["lt"]["inputs"]["placement"]["groupName"] == "p5-odcr-cluster-pg"
    assert p["pg"] is None, "the stack must not create a group beside the reservation's own"
    assert gpu_pools(r)["prefill"]["pg"] is not None
    assert r.outputs["gpuPools"]["decode"]["placementGroup"] == "p5-odcr-cluster-pg"
