"""The AWS layer as the whole program registers it: network, cluster, add-ons, node pools, launch templates."""

from __future__ import annotations

import base64
import email
import json

import yaml

from facts.catalog import instance_type
from facts.versions import pin
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


NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"


def managed_node_groups(r) -> bool:
    """The stack's GPU pools are managed node groups (disagg:nodeProvisioning managedNodeGroups, the default)."""
    return r.summary.get("node_provisioning", "managedNodeGroups") == "managedNodeGroups"


def gpu_pools(r) -> dict[str, dict]:
    """pool name (as in config) -> {component, lt, ng, pg (the stack's placement group it launches into, or None)}."""
    out = {}
    stack = r.summary["stack"]
    if not managed_node_groups(r):
        return out  # Karpenter and EKS Auto Mode pools: tests/program/test_node_provisioning.py
    groups = {g["outputs_name"]: g for g in placement_groups(r)}
    for comp in r.of_type("disagg:aws:GpuNodePool"):
        pool = comp["name"][len(stack) + 1:]
        (lt,) = children(r, comp["urn"], "aws:ec2/launchTemplate:LaunchTemplate")
        (ng,) = children(r, comp["urn"], NODE_GROUP)
        assert not children(r, comp["urn"], PLACEMENT_GROUP), "placement groups are per zone, owned by the cluster"
        name = (lt["inputs"].get("placement") or {}).get("groupName")
        out[pool] = {"component": comp, "lt": lt, "ng": ng, "pg": groups.get(name)}
    return out


def placement_groups(r) -> list[dict]:
    """The stack's placement groups, each with the name the fake cloud gave it (what launch templates reference)."""
    out = []
    for pg in r.of_type(PLACEMENT_GROUP):
        ref = next(lt for lt in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if pg["urn"] in lt["dependencies"])
        out.append({**pg, "outputs_name": ref["inputs"]["placement"]["groupName"]})
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
        # One hop: a pod (its own network namespace) cannot reach the node role's credentials.
        assert i["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert "keyName" not in i
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
        assert i["clusterName"] == r.summary["cluster_name"]
        assert i["launchTemplate"]["id"].startswith("lt-")
        assert p["lt"]["urn"] in p["ng"]["dependencies"]
        # Nodes are reached through SSM, never SSH.
        assert "remoteAccess" not in i
        for key in ("diskSize", "nodeGroupName"):
            assert key not in i, key  # disk size lives in the template; the name stays the one EKS was given


def test_gpu_node_groups_roll_without_a_spare_node_and_repair_themselves(rendered):
    """MINIMAL: a node is drained and terminated before its replacement launches, so a roll of a reserved or scarce
    p5 pool needs no extra p5; node repair replaces nodes the monitoring agent reports unhealthy."""
    for name, r in rendered.items():
        for pool, p in gpu_pools(r).items():
            i = p["ng"]["inputs"]
            assert i["updateConfig"] == {"updateStrategy": "MINIMAL", "maxUnavailable": 1}, (name, pool)
            assert i["nodeRepairConfig"] == {"enabled": True}, (name, pool)


def test_gpu_node_groups_keep_the_identity_of_pulumi_eks_managed_node_group_children(rendered):
    """Each GPU node group answers to the URN pulumi-eks's ManagedNodeGroup gave its child (same name as the
    component, parented to it), so a deployed stack moves it instead of replacing the node group and its nodes."""
    for name, r in rendered.items():
        for pool, p in gpu_pools(r).items():
            ng, comp = p["ng"], p["component"]
            assert ng["name"] == f"{comp['name']}-ng"  # the ManagedNodeGroup's name, which its child reused
            qualified = comp["urn"].rsplit("::", 1)[0]  # urn:pulumi:<stack>::<project>::<the component's type chain>
            legacy = f"{qualified}$eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup::{ng['name']}"
            assert ng["options"]["aliases"] == [{"urn": legacy}], (name, pool)
            # The moved resource keeps the provider and parent chain the engine qualifies URNs with.
            assert ng["urn"] == f"{comp['urn'].rsplit('::', 1)[0]}${NODE_GROUP}::{ng['name']}"
        # The system pool is still pulumi-eks's component: nothing of it moved.
        (sys_ng,) = children(r, r.one("disagg:aws:SystemNodePool")["urn"], "eks:index:ManagedNodeGroup")
        assert sys_ng["options"]["aliases"] == []


def test_prod_prefill_and_decode_share_one_placement_group_per_zone(rendered):
    r = rendered["prod"]
    pools = gpu_pools(r)
    (pg,) = r.of_type(PLACEMENT_GROUP)
    assert pg["inputs"]["strategy"] == "cluster"
    assert pg["parent"] == r.one("disagg:aws:Cluster")["urn"]
    assert pg["name"] == "prod-efa-us-east-1a"
    names = {n: p["lt"]["inputs"]["placement"]["groupName"] for n, p in pools.items()}
    assert len(set(names.values())) == 1, names
    for name, p in pools.items():
        assert p["pg"]["urn"] == pg["urn"] and pg["urn"] in p["lt"]["dependencies"]
        assert r.outputs["gpuPools"][name]["placementGroup"] == names[name]


def test_the_zone_placement_group_takes_over_the_first_pool_s_group(rendered):
    """The old layout had one group per pool (`<pool component>-pg`); the zone's group is aliased to the first one,
    so that pool's launch template and nodes are untouched and only the other pools move into it."""
    r = rendered["prod"]
    (pg,) = r.of_type(PLACEMENT_GROUP)
    first = r.summary["gpu_pools"][0]["name"]
    old = f"urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:ec2/placementGroup:PlacementGroup::prod-{first}-pg"
    assert pg["options"]["aliases"] == [{"urn": old}]
    # The fake cloud names an aliased resource as it was first created, like a provider reusing its old auto-name.
    assert gpu_pools(r)[first]["lt"]["inputs"]["placement"]["groupName"].startswith(f"prod-{first}-pg-")


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
    assert not r.of_type(PLACEMENT_GROUP)
    for name, p in gpu_pools(r).items():
        assert "networkInterfaces" not in p["lt"]["inputs"], name
        assert p["pg"] is None and "placement" not in p["lt"]["inputs"]
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
    assert i["capacityReservationSpecification"] == {"capacityReservationTarget": {"capacityReservationId": "cr-0123456789abcdef0"}}
    ng = p["ng"]["inputs"]
    assert ng["capacityType"] == "CAPACITY_BLOCK"
    # EKS rejects a Capacity Block node group unless the template carries the instance type and the group none.
    assert i["instanceType"] == P5
    assert "instanceTypes" not in ng
    # Created before the block starts: 0 nodes, scaled to maxNodes when it is active; EKS scales the group to 0
    # before the block ends, and Pulumi must not scale it back.
    assert ng["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 1}
    assert p["ng"]["options"]["ignoreChanges"] == ["scalingConfig.desiredSize"]
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
    assert i["capacityReservationSpecification"] == {
        "capacityReservationPreference": "capacity-reservations-only",
        "capacityReservationTarget": {"capacityReservationId": "cr-0fedcba9876543210"},
    }
    assert "instanceMarketOptions" not in i and "instanceType" not in i
    assert p["ng"]["inputs"]["capacityType"] == "ON_DEMAND"
    assert p["ng"]["inputs"]["instanceTypes"] == [P5]
    assert p["ng"]["options"]["ignoreChanges"] == []
    assert p["pg"] is not None and p["pg"]["inputs"]["strategy"] == "cluster"
    assert i["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 300


def test_reservation_group_pools_never_fall_back_to_on_demand(rendered):
    r = rendered["reservation-group"]
    pools = gpu_pools(r)
    arn = "arn:aws:resource-groups:us-west-2:123456789012:group/b200-odcrs"
    for name, p in pools.items():
        spec = p["lt"]["inputs"]["capacityReservationSpecification"]
        assert spec == {
            "capacityReservationPreference": "capacity-reservations-only",
            "capacityReservationTarget": {"capacityReservationResourceGroupArn": arn},
        }, name
        assert len(p["lt"]["inputs"]["networkInterfaces"]) == instance_type("p6-b200.48xlarge").efa_interfaces == 8
    # Both pools in us-west-2a share that zone's placement group.
    assert {p["pg"]["urn"] for p in pools.values()} == {r.one(PLACEMENT_GROUP)["urn"]}


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
    # The control plane's ENIs go into the subnets the cluster is given: private ones only.
    assert "publicSubnetIds" not in i and "subnetIds" not in i
    # Standard support unless asked otherwise: extended support bills 0.60 USD/h instead of 0.10.
    assert i["upgradePolicy"] == {"supportType": "STANDARD"}
    assert eks_cluster(rendered["reservation-group"])["inputs"]["upgradePolicy"] == {"supportType": "EXTENDED"}
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
        if not managed_node_groups(r):
            continue  # Karpenter / EKS Auto Mode stacks: tests/program/test_node_provisioning.py
        cluster = eks_cluster(r)["urn"]
        found = addons(r)
        boot = [found[a]["urn"] for a in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")]
        ngs = r.of_type("eks:index:ManagedNodeGroup") + r.of_type(NODE_GROUP)
        assert len(r.of_type("eks:index:ManagedNodeGroup")) == 1  # the system pool
        assert len(r.of_type(NODE_GROUP)) == len(r.summary["gpu_pools"])
        for ng in ngs:
            assert cluster in ng["dependencies"], f"{name}: {ng['name']}"
            for a in boot:
                assert a in ng["dependencies"], f"{name}: {ng['name']} does not wait for {a}"
            # Nodes must reach the internet (images) before they join, so they wait for the NAT routes.
            assert any(":ec2/route:Route::" in d for d in ng["dependencies"])
            role = next(d for d in ng["dependencies"] if "aws:iam/role:Role" in d)
            if ng["type"] == NODE_GROUP:
                assert ng["inputs"]["nodeRoleArn"] == f"arn:aws:iam::123456789012:role/{r.by_urn(role)['name']}"
            else:
                assert ng["inputs"]["cluster"] == {"$ref": cluster}
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


def test_the_cluster_owns_every_managed_addon_and_the_moved_ones_keep_their_old_urns(rendered):
    """CoreDNS and the EBS CSI driver were children of the system node pool: each names that URN as an alias, so
    a deployed add-on is adopted, not replaced (the URN goldens no longer hold the old URNs to catch a lost alias)."""
    from tooling.render import _alias_urn

    for name, r in rendered.items():
        cluster = r.one("disagg:aws:Cluster")["urn"]
        system = r.one("disagg:aws:SystemNodePool")
        found = addons(r)
        assert {a["parent"] for a in found.values()} == {cluster}, name
        for a in ("coredns", "aws-ebs-csi-driver"):
            old = f"urn:pulumi:{name}::disagg::disagg:aws:SystemNodePool$aws:eks/addon:Addon::{system['name']}-{a}"
            assert [_alias_urn(found[a], al) for al in found[a]["options"]["aliases"]] == [old], f"{name}: {a}"
        for a in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent", "eks-node-monitoring-agent"):
            assert found[a]["options"]["aliases"] == [], f"{name}: {a} never moved"


def test_what_runs_on_the_system_nodes_waits_for_their_addons_too(rendered):
    """The platform's releases (and the Karpenter controller) need cluster DNS and volumes, not just nodes."""
    for name, r in rendered.items():
        found = addons(r)
        waiting = [x for x in r.of_type("kubernetes:helm.sh/v3:Release")]
        assert waiting, name
        for rel in waiting:
            for a in ("coredns", "aws-ebs-csi-driver"):
                assert found[a]["urn"] in rel["dependencies"], f"{name}: {rel['name']} does not wait for {a}"


def test_every_pod_identity_is_a_role_its_grants_and_an_association_after_them(rendered):
    """One helper (components/pod_identity.py) registers each: the EBS CSI driver's, the Load Balancer
    Controller's, Prometheus' AMP writer's and the Karpenter controller's."""
    seen = set()
    for name, r in rendered.items():
        for assoc in r.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
            seen.add(assoc["inputs"]["serviceAccount"])
            (role,) = [x for x in r.of_type("aws:iam/role:Role") if x["name"] == assoc["name"] and x["parent"] == assoc["parent"]]
            trust = json.loads(role["inputs"]["assumeRolePolicy"])
            assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}, f"{name}: {assoc['name']}"
            assert role["urn"] in assoc["dependencies"]
            grants = [
                x for x in r.records
                if x["type"] in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                and role["urn"] in x["dependencies"]
            ]
            assert grants, f"{name}: {role['name']} has no permissions"
            for g in grants:
                assert g["urn"] in assoc["dependencies"], f"{name}: {assoc['name']} does not wait for {g['name']}"
    assert {"ebs-csi-controller-sa", "aws-load-balancer-controller", "karpenter"} <= seen


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
        if not managed_node_groups(r):
            continue  # Karpenter / EKS Auto Mode stacks: tests/program/test_node_provisioning.py
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
    ngs = {x["name"]: x for x in res["resources"] if x["type"] in ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")}
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
    assert p["pg"] is None, "the pool must not launch into the stack's group beside the reservation's own"
    assert gpu_pools(r)["prefill"]["pg"] is not None
    assert len(r.of_type(PLACEMENT_GROUP)) == 1  # the zone group, for prefill only
    assert r.outputs["gpuPools"]["decode"]["placementGroup"] == "p5-odcr-cluster-pg"


# --- lifecycle, protection, node health -----------------------------------------------------------------------------------


def test_every_record_carries_its_resource_options(rendered):
    keys = {"protect", "ignoreChanges", "aliases", "deleteBeforeReplace", "customTimeouts", "retainOnDelete", "dependsOn"}
    for name, r in rendered.items():
        for x in r.records:
            assert keys <= set(x["options"]), (name, x["urn"])


def test_cluster_network_and_key_are_protected_always_and_gpu_node_groups_with_deletion_protection(rendered):
    for name, r in rendered.items():
        if not managed_node_groups(r):
            continue  # Karpenter / EKS Auto Mode stacks: tests/program/test_node_provisioning.py
        protected = {x["urn"] for x in r.records if x["options"]["protect"]}
        assert eks_cluster(r)["urn"] in protected, name
        assert r.one("aws:ec2/vpc:Vpc")["urn"] in protected
        assert all(s["urn"] in protected for s in r.of_type("aws:ec2/subnet:Subnet"))
        assert all(k["urn"] in protected for k in r.of_type("aws:kms/key:Key"))
        gpu = {p["ng"]["urn"] for p in gpu_pools(r).values()}
        deletion = eks_cluster(r)["inputs"].get("deletionProtection", False)
        assert (gpu <= protected) == deletion and (not deletion) == gpu.isdisjoint(protected), name
        # Nothing else is: the teardown lifts exactly these with `pulumi state unprotect --all`.
        allowed = {eks_cluster(r)["urn"], r.one("aws:ec2/vpc:Vpc")["urn"], *gpu}
        allowed |= {x["urn"] for x in r.of_type("aws:ec2/subnet:Subnet") + r.of_type("aws:kms/key:Key")}
        assert protected <= allowed, sorted(protected - allowed)
    assert gpu_pools(rendered["prod"])["prefill"]["ng"]["options"]["protect"] is True
    assert gpu_pools(rendered["dev"])["prefill"]["ng"]["options"]["protect"] is False


def test_node_monitoring_agent_runs_on_the_gpu_nodes_before_they_join(rendered):
    for name, r in rendered.items():
        agent = addons(r)["eks-node-monitoring-agent"]
        assert agent["inputs"]["addonVersion"] == pin("addon-eks-node-monitoring-agent").version
        # Its DCGM host engine (GPU health) tolerates no taint by default; the GPU nodes are tainted.
        assert json.loads(agent["inputs"]["configurationValues"]) == {"dcgmAgent": {"tolerations": [{"operator": "Exists"}]}}
        for p in gpu_pools(r).values():
            assert agent["urn"] in p["ng"]["dependencies"], name


def test_every_node_role_can_use_session_manager(rendered):
    for name, r in rendered.items():
        if not managed_node_groups(r):
            continue  # Karpenter / EKS Auto Mode stacks: tests/program/test_node_provisioning.py
        roles = [x for x in r.of_type("aws:iam/role:Role") if x["name"].endswith("-node")]
        assert len(roles) == 1 + len(r.summary["gpu_pools"])
        for role in roles:
            policies = {a["inputs"]["policyArn"] for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if a["parent"] == role["parent"]}
            assert "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" in policies, (name, role["name"])


def test_system_launch_template_keeps_imds_to_the_node(rendered):
    for r in rendered.values():
        (lt,) = children(r, r.one("disagg:aws:SystemNodePool")["urn"], "aws:ec2/launchTemplate:LaunchTemplate")
        assert lt["inputs"]["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_the_prod_placeholder_cidr_is_flagged_by_the_offline_render(rendered):
    warnings = rendered["prod"].summary["deploy_check_warnings"]
    assert any(w.startswith("disagg:cluster.publicAccessCidrs[0] = '198.51.100.0/24'") and "RFC 5737" in w for w in warnings)
    assert "## Deploy checks" in (rendered["prod"].out / "summary.md").read_text()
    assert rendered["dev"].summary["deploy_check_warnings"] == []  # dev's 0.0.0.0/0 is allowed in a dev stack


def test_summary_says_when_prices_come_from_another_region(rendered):
    notes = rendered["reservation-group"].summary["price_notes"]
    assert any("us-east-1 list prices" in n and "us-west-2" in n for n in notes), notes
    assert rendered["prod"].summary["price_notes"] == []
    assert "Note: prices are us-east-1 list prices" in (rendered["capacity-block"].out / "summary.md").read_text()
