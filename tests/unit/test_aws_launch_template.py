"""Launch template builders: EFA interface layout for every EFA type of the catalog, root volume, IMDS, capacity."""

from __future__ import annotations

import pytest

from components.builders.launch_template import (
    CAPACITY_BLOCK,
    IMDS_HOP_LIMIT,
    ON_DEMAND,
    RESERVATIONS_ONLY,
    ROOT_DEVICE,
    capacity_options,
    efa_network_interfaces,
    instance_type_in_template,
    launch_template,
    metadata_options,
    node_group_capacity_type,
    root_volume,
    tag_specifications,
)
from facts.catalog import CATALOG, instance_type
from components.aws_args import Capacity

EFA_TYPES = sorted(n for n, it in CATALOG.items() if it.supports_efa)
NON_EFA_TYPES = sorted(n for n, it in CATALOG.items() if not it.supports_efa)
SGS = ["sg-cluster", "sg-efa"]


def test_the_catalog_has_the_p5_family_and_p4d_among_efa_types():
    for name in ("p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p4d.24xlarge", "p4de.24xlarge", "g6e.48xlarge"):
        assert name in EFA_TYPES


@pytest.mark.parametrize("name", [n for n in EFA_TYPES if CATALOG[n].primary_card_efa])
def test_efa_layout_one_interface_per_card(name):
    it = instance_type(name)
    nics = efa_network_interfaces(it, SGS)
    assert len(nics) == it.efa_interfaces
    assert [n["network_card_index"] for n in nics] == list(range(it.efa_interfaces))
    primary, rest = nics[0], nics[1:]
    assert (primary["interface_type"], primary["device_index"]) == ("efa", 0)
    for n in rest:
        assert (n["interface_type"], n["device_index"]) == ("efa-only", 1), n
    for n in nics:
        assert n["security_groups"] == SGS
        # Managed node groups supply subnets; an interface naming one is rejected.
        assert "subnet_id" not in n


def test_a_type_without_efa_on_card_0_gets_an_ena_primary_and_efa_only_on_the_other_cards():
    """p6-b300.48xlarge: card 0 is ENA-only, EFA on cards 1-16. An `efa` interface on card 0 would fail the launch."""
    it = instance_type("p6-b300.48xlarge")
    assert not it.primary_card_efa and (it.network_cards, it.efa_interfaces) == (17, 16)
    nics = efa_network_interfaces(it, SGS)
    assert (nics[0]["network_card_index"], nics[0]["device_index"], nics[0]["interface_type"]) == (0, 0, "interface")
    assert [n["network_card_index"] for n in nics[1:]] == list(range(1, 17))
    assert {(n["interface_type"], n["device_index"]) for n in nics[1:]} == {("efa-only", 1)}
    assert sum(n["interface_type"] in ("efa", "efa-only") for n in nics) == it.efa_interfaces
    assert all(n["security_groups"] == SGS for n in nics)


@pytest.mark.parametrize(
    "name, count", [("p6-b200.48xlarge", 8), ("p5.48xlarge", 32), ("p5e.48xlarge", 32), ("p5en.48xlarge", 16), ("p4d.24xlarge", 4), ("p4de.24xlarge", 4), ("g6e.48xlarge", 4)]
)
def test_efa_interface_counts_of_the_known_types(name, count):
    assert len(efa_network_interfaces(instance_type(name), SGS)) == count


def test_efa_interfaces_do_not_share_the_security_group_list_object():
    nics = efa_network_interfaces(instance_type("p5.48xlarge"), SGS)
    nics[0]["security_groups"].append("sg-x")
    assert nics[1]["security_groups"] == SGS


@pytest.mark.parametrize("name", NON_EFA_TYPES)
def test_non_efa_types_get_no_interfaces(name):
    with pytest.raises(ValueError, match="no EFA"):
        efa_network_interfaces(instance_type(name), SGS)
    spec = launch_template(description="x", root_volume_gb=100, tags={}, network_interfaces=None)
    assert "network_interfaces" not in spec


def test_efa_interfaces_need_security_groups():
    with pytest.raises(ValueError, match="security groups"):
        efa_network_interfaces(instance_type("p5.48xlarge"), [])


def test_metadata_options_require_imdsv2_with_hop_limit_one():
    # Pods use Pod Identity; with one hop a pod's own network namespace cannot reach the node role's credentials.
    m = metadata_options()
    assert m["http_tokens"] == "required"
    assert m["http_put_response_hop_limit"] == IMDS_HOP_LIMIT == 1
    assert m["http_endpoint"] == "enabled"


def test_root_volume_is_encrypted_gp3_on_the_al2023_root_device():
    (m,) = root_volume(250)
    assert m["device_name"] == ROOT_DEVICE == "/dev/xvda"
    assert m["ebs"] == {"volume_size": 250, "volume_type": "gp3", "encrypted": "true", "delete_on_termination": "true"}
    with pytest.raises(ValueError):
        root_volume(0)


def test_capacity_on_demand_adds_nothing():
    cap = Capacity()
    assert capacity_options(cap) == {}
    assert node_group_capacity_type(cap) == ON_DEMAND == "ON_DEMAND"


def test_capacity_reservation_by_id_targets_it_and_only_it():
    cap = Capacity(type="capacityReservation", reservation_id="cr-0123456789abcdef0")
    assert capacity_options(cap) == {
        "capacity_reservation_specification": {
            "capacity_reservation_preference": "capacity-reservations-only",
            "capacity_reservation_target": {"capacity_reservation_id": "cr-0123456789abcdef0"},
        }
    }
    assert node_group_capacity_type(cap) == "ON_DEMAND"
    assert not instance_type_in_template(cap)


def test_capacity_reservation_by_resource_group_never_falls_back_to_on_demand():
    # A group target alone runs On-Demand once no reservation in the group has room (EC2 create-cr-group).
    arn = "arn:aws:resource-groups:us-east-1:123456789012:group/p5-odcrs"
    cap = Capacity(type="capacityReservation", reservation_resource_group_arn=arn)
    out = capacity_options(cap)
    spec = out["capacity_reservation_specification"]
    assert spec["capacity_reservation_target"] == {"capacity_reservation_resource_group_arn": arn}
    assert spec["capacity_reservation_preference"] == RESERVATIONS_ONLY == "capacity-reservations-only"
    assert "instance_market_options" not in out


def test_capacity_block_sets_market_type_reservation_and_node_group_type():
    cap = Capacity(type="capacityBlock", reservation_id="cr-0123456789abcdef0")
    out = capacity_options(cap)
    assert out["instance_market_options"] == {"market_type": "capacity-block"}
    # Exactly what EKS documents for a block: market type and target, no preference.
    assert out["capacity_reservation_specification"] == {"capacity_reservation_target": {"capacity_reservation_id": "cr-0123456789abcdef0"}}
    assert node_group_capacity_type(cap) == CAPACITY_BLOCK == "CAPACITY_BLOCK"
    # The instance type goes into the template; the node group names none (EKS rejects it otherwise).
    assert instance_type_in_template(cap)


def test_tags_reach_instances_volumes_and_interfaces():
    specs = tag_specifications({"a": "b"})
    assert {s["resource_type"] for s in specs} == {"instance", "volume", "network-interface"}
    assert all(s["tags"] == {"a": "b"} for s in specs)


def test_full_launch_template_spec():
    it = instance_type("p5.48xlarge")
    cap = Capacity(type="capacityBlock", reservation_id="cr-0123456789abcdef0")
    spec = launch_template(
        description="d",
        root_volume_gb=200,
        tags={"k": "v"},
        network_interfaces=efa_network_interfaces(it, SGS),
        capacity=cap,
        placement_group_name="pg-1",
        user_data="dXNlcg==",
        instance_type="p5.48xlarge",
    )
    assert spec["instance_type"] == "p5.48xlarge"
    assert len(spec["network_interfaces"]) == 32
    assert spec["placement"] == {"group_name": "pg-1"}
    assert spec["instance_market_options"]["market_type"] == "capacity-block"
    assert spec["user_data"] == "dXNlcg=="
    assert spec["metadata_options"]["http_tokens"] == "required"
    # No AMI in the template: EKS picks it from the node group's amiType and merges its bootstrap user data.
    assert "image_id" not in spec
    # Security groups are on the interfaces only (instance-level groups and interfaces cannot be combined).
    assert "vpc_security_group_ids" not in spec
    assert "iam_instance_profile" not in spec
    # No SSH key pair: nodes are reached through SSM Session Manager.
    assert "key_name" not in spec


def test_launch_template_without_placement_or_user_data_leaves_them_out():
    spec = launch_template(description="d", root_volume_gb=100, tags={})
    assert "placement" not in spec and "user_data" not in spec and "instance_market_options" not in spec
    assert "instance_type" not in spec


def test_pinned_vpc_cni_supports_efa_only_interfaces():
    """efa-only interfaces (every card but 0) need VPC CNI >= 1.18.5 (EKS node-efa docs); older versions try to
    manage them as ENIs."""
    import re

    from facts.versions import pin

    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)-eksbuild\.\d+$", pin("addon-vpc-cni").version)
    assert m, pin("addon-vpc-cni").version
    assert tuple(int(x) for x in m.groups()) >= (1, 18, 5)
