"""Network builders: subnet CIDR math, discovery tags, NAT layout, VPC CNI settings, pod-address estimates."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.builders.network import (
    NetworkTooSmall,
    NodeSpread,
    nat_routes,
    nat_zones,
    node_addresses,
    node_max_pods,
    s3_service_name,
    subnet_layout,
    subnet_tags,
    usable_addresses,
    vpc_cni_configuration,
    zone_address_demand,
)
from facts.catalog import instance_type
from stacks import aws_args
from stacks.config import parse

ZONES = [f"us-east-1{c}" for c in "abcdef"]


def fits(n: int, vpc_prefix: int, private: int, public: int) -> bool:
    return n * (2 ** (32 - private) + 2 ** (32 - public)) <= 2 ** (32 - vpc_prefix)


CASES = [
    (n, vpc, priv, pub)
    for n in range(2, 7)
    for vpc, priv, pub in [(16, 18, 24), (16, 19, 24), (16, 20, 22), (16, 19, 20), (18, 21, 26), (20, 24, 28), (16, 24, 20)]
]


@pytest.mark.parametrize("n, vpc_prefix, private, public", CASES)
def test_subnet_layout_for_2_to_6_zones(n, vpc_prefix, private, public):
    vpc_cidr = f"10.{n}.0.0/{vpc_prefix}"
    zones = ZONES[:n]
    if not fits(n, vpc_prefix, private, public):
        with pytest.raises(NetworkTooSmall):
            subnet_layout(vpc_cidr, zones, private, public)
        return
    layout = subnet_layout(vpc_cidr, zones, private, public)
    vpc = ipaddress.IPv4Network(vpc_cidr)
    assert list(layout.private) == zones and list(layout.public) == zones
    nets = [ipaddress.IPv4Network(c) for _, _, c in layout.all()]
    for tier, _, cidr in layout.all():
        net = ipaddress.IPv4Network(cidr)  # strict: a misaligned block raises here
        assert net.subnet_of(vpc)
        assert net.prefixlen == (private if tier == "private" else public)
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b), (a, b)


def test_default_three_zone_layout():
    layout = subnet_layout("10.0.0.0/16", ZONES[:3], 18, 24)
    assert layout.private == {"us-east-1a": "10.0.0.0/18", "us-east-1b": "10.0.64.0/18", "us-east-1c": "10.0.128.0/18"}
    assert layout.public == {"us-east-1a": "10.0.255.0/24", "us-east-1b": "10.0.254.0/24", "us-east-1c": "10.0.253.0/24"}


def test_adding_a_zone_moves_no_existing_subnet():
    before = subnet_layout("10.0.0.0/16", ZONES[:2], 19, 24)
    after = subnet_layout("10.0.0.0/16", ZONES[:3], 19, 24)
    for az in ZONES[:2]:
        assert after.private[az] == before.private[az]
        assert after.public[az] == before.public[az]


def test_subnet_larger_than_the_vpc_is_refused():
    with pytest.raises(NetworkTooSmall):
        subnet_layout("10.0.0.0/20", ZONES[:2], 18, 24)


def test_duplicate_zones_are_refused():
    with pytest.raises(ValueError):
        subnet_layout("10.0.0.0/16", ["us-east-1a", "us-east-1a"], 18, 24)


def test_usable_addresses_subtract_the_five_aws_reserves():
    assert usable_addresses(24) == 251
    assert usable_addresses(18) == 16379


def test_subnet_tags_for_load_balancer_discovery():
    pub = subnet_tags("c1", "public", "us-east-1a")
    priv = subnet_tags("c1", "private", "us-east-1a")
    assert pub["kubernetes.io/role/elb"] == "1" and "kubernetes.io/role/internal-elb" not in pub
    assert priv["kubernetes.io/role/internal-elb"] == "1" and "kubernetes.io/role/elb" not in priv
    for tags in (pub, priv):
        assert tags["kubernetes.io/cluster/c1"] == "owned"
    assert pub["Name"] == "c1-public-us-east-1a"


def test_single_nat_routes_every_zone_through_the_first():
    zones = ZONES[:3]
    assert nat_routes(zones, "single") == {az: "us-east-1a" for az in zones}
    assert nat_zones(zones, "single") == ["us-east-1a"]


def test_nat_per_zone():
    zones = ZONES[:3]
    assert nat_routes(zones, "perAz") == {az: az for az in zones}
    assert nat_zones(zones, "perAz") == zones


def test_s3_gateway_service_name():
    assert s3_service_name("eu-west-1") == "com.amazonaws.eu-west-1.s3"


def test_vpc_cni_prefix_delegation_on_and_off():
    assert vpc_cni_configuration(True)["enableNetworkPolicy"] == "true", "NetworkPolicies are not enforced without it"
    assert vpc_cni_configuration(False)["enableNetworkPolicy"] == "true"
    on = vpc_cni_configuration(True)
    assert on["env"]["ENABLE_PREFIX_DELEGATION"] == "true"
    assert on["env"]["WARM_PREFIX_TARGET"] == "1"
    off = vpc_cni_configuration(False)
    assert off["env"] == {"ENABLE_PREFIX_DELEGATION": "false"}


def test_p5_node_addresses():
    p5 = instance_type("p5.48xlarge")
    # Without prefix delegation: the 100 pods the card-0 ENIs allow; EFA-only interfaces take no address.
    assert node_max_pods(p5, False) == 100
    assert node_addresses(p5, False) == 102
    # With it: EKS caps pods at 250 (>= 30 vCPUs): 16 /28 prefixes + one warm prefix + ENI primaries.
    assert node_max_pods(p5, True) == 250
    assert node_addresses(p5, True) == 16 * 16 + 16 + 2


def test_small_nodes_get_110_pods_with_prefix_delegation():
    assert node_max_pods(instance_type("g6e.xlarge"), True) == 110


def test_zone_address_demand_counts_pools_in_their_zones(base):
    base["systemPool"] = {"instanceType": "m7i.xlarge", "nodes": 2}
    base["gpuPools"][0]["maxNodes"] = 3
    cfg = parse(base, stack="t")
    demand = aws_args.zone_address_demand(cfg)
    p5 = node_addresses(instance_type("p5.48xlarge"), True)
    sys = node_addresses(instance_type("m7i.xlarge"), True)
    # prefill (max 3) and decode (1) both in us-east-1a; one system node per zone.
    assert demand == {"us-east-1a": 4 * p5 + sys, "us-east-1b": sys}


def test_a_pool_over_several_zones_takes_its_rounded_up_share_in_each():
    g6e = instance_type("g6e.xlarge")
    per_node = node_addresses(g6e, False)
    demand = zone_address_demand(["a", "b"], [NodeSpread(g6e, 3, ("a", "b")), NodeSpread(g6e, 1, ("c",))], False)
    # 3 nodes over two zones: 2 in each (a balanced group may put either zone ahead); a zone outside the list counts too.
    assert demand == {"a": 2 * per_node, "b": 2 * per_node, "c": per_node}
