"""GPU node group lifecycle, Capacity Block scaling, placement groups per zone and the identities deployed stacks hold."""

from __future__ import annotations

import copy

import pytest

from components.aws_args import GpuPoolArgs
from components.builders.eks import GPU_UPDATE_STRATEGY, child_urn, gpu_node_group, managed_node_group_child_urn
from components.builders.launch_template import GPU_POOL_TYPE, placement_group_alias_urn
from stacks.aws_args import gpu_pool_args
from stacks.config import ConfigError, parse
from stacks.config.aws import GpuPoolConfig
from stacks.plan import gpu_pool_resource_name, plan, pool_serving_nodes, role_nodes_available, shared_placement_groups
from tests.conftest import BASE

BLOCK = {"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}


def pool(**fields) -> GpuPoolArgs:
    """A GPU pool's component args, as the stack derives them from `gpuPools[]` fields (snake_case)."""
    base = {"name": "p", "role": "prefill", "instance_type": "p5.48xlarge", "nodes": 2}
    base.update(fields)
    return gpu_pool_args(parse(copy.deepcopy(BASE), stack="t"), GpuPoolConfig(**base), {})


def errors(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t")
    return [str(i) for i in exc.value.issues]


# --- node group lifecycle ------------------------------------------------------------------------------------------


def test_on_demand_gpu_node_group_updates_minimal_and_repairs():
    ng = gpu_node_group(pool(max_nodes=4))
    assert ng["capacity_type"] == "ON_DEMAND"
    assert ng["scaling_config"] == {"min_size": 2, "desired_size": 2, "max_size": 4}
    assert ng["update_config"] == {"update_strategy": "MINIMAL", "max_unavailable": 1} and GPU_UPDATE_STRATEGY == "MINIMAL"
    assert ng["node_repair_config"] == {"enabled": True}
    assert ng["ignore_changes"] == []  # Pulumi owns the size of an On-Demand or reservation pool


def test_update_width_and_repair_are_config():
    ng = gpu_node_group(pool(max_unavailable=2, node_repair=False))
    assert ng["update_config"]["max_unavailable"] == 2 and ng["node_repair_config"] == {"enabled": False}


def test_capacity_block_node_group_leaves_its_size_to_eks_after_creation():
    ng = gpu_node_group(pool(nodes=0, max_nodes=4, availability_zones=["us-east-1a"], capacity=BLOCK))
    assert ng["capacity_type"] == "CAPACITY_BLOCK"
    assert ng["scaling_config"] == {"min_size": 0, "desired_size": 0, "max_size": 4}
    assert ng["ignore_changes"] == ["scalingConfig.desiredSize"]
    # A block pool that starts with nodes keeps min 0, so EKS's scale-down to 0 before the block ends stays valid.
    assert gpu_node_group(pool(nodes=2, capacity=BLOCK))["scaling_config"]["min_size"] == 0


def test_only_a_capacity_block_pool_may_start_at_zero_and_it_needs_max_nodes():
    values = copy.deepcopy(BASE)
    values["gpuPools"][0]["nodes"] = 0
    assert any(e.startswith("disagg:gpuPools[0].nodes = 0: only a capacityBlock pool") for e in errors(values))
    values["gpuPools"][0]["capacity"] = BLOCK
    assert any(e.startswith("disagg:gpuPools[0].maxNodes") and "instance count of the block" in e for e in errors(values))
    values["gpuPools"][0]["maxNodes"] = 1
    cfg = parse(values, stack="t")
    # The pool serves with its block's nodes once it starts: serving validation and the KAI quota count them.
    assert pool_serving_nodes(cfg.gpu_pools[0]) == 1 and role_nodes_available(cfg, "prefill") == 1
    assert plan(cfg).gpus_provisioned == 16


def test_a_capacity_block_at_zero_still_fails_when_its_max_cannot_hold_the_replicas():
    values = copy.deepcopy(BASE)
    values["gpuPools"][0].update(nodes=0, maxNodes=1, capacity=BLOCK)
    values["serving"]["prefill"]["replicas"] = 4  # 2 nodes of TP4 replicas
    assert any(e.startswith("disagg:gpuPools[0].nodes") and "have 1" in e for e in errors(values))


@pytest.mark.parametrize(
    "capacity, words",
    [
        ({"type": "capacityReservation", "reservationResourceGroupArn": "arn:aws:iam::123456789012:group/x"}, "not a resource group ARN"),
        ({"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0",
          "reservationResourceGroupArn": "arn:aws:resource-groups:us-east-1:123456789012:group/x"}, "by id, not a resource group"),
        ({"type": "capacityReservation", "reservationId": "cr-0123456789abcdef0",
          "reservationResourceGroupArn": "arn:aws:resource-groups:us-east-1:123456789012:group/x"}, "targets one"),
    ],
)
def test_reservation_targets_are_checked(capacity, words):
    values = copy.deepcopy(BASE)
    values["gpuPools"][1]["capacity"] = capacity
    hits = [e for e in errors(values) if e.startswith("disagg:gpuPools[1].capacity.reservationResourceGroupArn")]
    assert hits and words in hits[0] and "Fix: " in hits[0]


def test_support_type_defaults_to_standard():
    assert parse(copy.deepcopy(BASE), stack="t").cluster.support_type == "STANDARD"
    values = copy.deepcopy(BASE)
    values["cluster"]["supportType"] = "LTS"
    assert any(e.startswith("disagg:cluster.supportType") for e in errors(values))


# --- placement groups --------------------------------------------------------------------------------------------------


def test_prefill_and_decode_in_one_zone_share_its_placement_group():
    cfg = parse(copy.deepcopy(BASE), stack="t")
    assert shared_placement_groups(cfg) == {"us-east-1a": ["prefill", "decode"]}


def test_blocks_and_named_groups_stay_out_of_the_zone_s_shared_group():
    values = copy.deepcopy(BASE)
    values["gpuPools"] += [
        {"name": "decode-block", "role": "decode", "instanceType": "p5.48xlarge", "nodes": 1,
         "availabilityZones": ["us-east-1a"], "capacity": BLOCK},
        {"name": "decode-odcr", "role": "decode", "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"],
         "placementGroupName": "odcr-pg", "capacity": {"type": "capacityReservation", "reservationId": "cr-0fedcba9876543210"}},
    ]
    cfg = parse(values, stack="t")
    assert shared_placement_groups(cfg) == {"us-east-1a": ["prefill", "decode"]}


def test_each_zone_gets_its_own_group():
    # Validation keeps every EFA serving pool in one zone (KV over EFA cannot cross AZs), so a second zone's pool only
    # gets past the models, not the cross-layer rules; the grouping itself is per zone all the same.
    from stacks.config.stack import StackConfig

    values = copy.deepcopy(BASE)
    values["name"] = "t"
    values["availabilityZones"] = ["us-east-1a", "us-east-1b", "us-east-1c"]
    values["gpuPools"].append({"name": "prefill-b", "role": "prefill", "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1b"]})
    with pytest.raises(ConfigError, match="different zones"):
        parse(copy.deepcopy(values), stack="t")
    cfg = StackConfig.model_validate(values)
    assert shared_placement_groups(cfg) == {"us-east-1a": ["prefill", "decode"], "us-east-1b": ["prefill-b"]}


def test_placement_group_alias_names_the_group_the_first_pool_owned():
    assert placement_group_alias_urn("prod", "disagg", "prod-prefill") == (
        "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:ec2/placementGroup:PlacementGroup::prod-prefill-pg"
    )
    assert GPU_POOL_TYPE == "disagg:aws:GpuNodePool"  # components/nodepools.py registers its pools with this type
    assert gpu_pool_resource_name(parse(copy.deepcopy(BASE), stack="prod"), "prefill") == "prod-prefill"


# --- the node group's old identity ---------------------------------------------------------------------------------------


def test_managed_node_group_child_urn_follows_the_engine_rule():
    pool_urn = "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool::prod-prefill"
    assert managed_node_group_child_urn(pool_urn, "prod-prefill-ng") == (
        "urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$eks:index:ManagedNodeGroup$aws:eks/nodeGroup:NodeGroup::prod-prefill-ng"
    )
    # A parent deeper in the tree keeps its whole type chain.
    nested = "urn:pulumi:s::p::a:b:C$d:e:F::n"
    assert managed_node_group_child_urn(nested, "x").startswith("urn:pulumi:s::p::a:b:C$d:e:F$eks:index:ManagedNodeGroup$")
    with pytest.raises(ValueError):
        managed_node_group_child_urn("prod-prefill", "x")


def test_child_urn_qualifies_the_type_with_the_parent_chain_except_under_the_stack():
    # The system pool's add-ons before they moved to the cluster: the alias each keeps.
    assert child_urn("urn:pulumi:prod::disagg::disagg:aws:SystemNodePool::prod-system", "aws:eks/addon:Addon", "prod-system-coredns") == (
        "urn:pulumi:prod::disagg::disagg:aws:SystemNodePool$aws:eks/addon:Addon::prod-system-coredns"
    )
    assert child_urn("urn:pulumi:prod::disagg::pulumi:pulumi:Stack::disagg-prod", "aws:eks/addon:Addon", "x") == (
        "urn:pulumi:prod::disagg::aws:eks/addon:Addon::x"
    )
