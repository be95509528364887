"""disagg:nodeProvisioning: what each mode refuses, naming the key and the fix, and what node autoscaling allows."""

from __future__ import annotations

import copy

import pytest

from stacks.config import ConfigError, parse
from stacks.plan import plan
from tests.conftest import BASE

AUTO_OK = {
    "platform": {"gpuOperator": {"enabled": False}, "efaDevicePlugin": {"enabled": False}},
    "serving_extra": {"modelCache": {"kind": "pvc", "storageClass": "efs-sc"}},
}


def values(mode: str = "karpenter") -> dict:
    v = copy.deepcopy(BASE)
    v["nodeProvisioning"] = mode
    if mode == "autoMode":
        v["platform"] = copy.deepcopy(AUTO_OK["platform"])
        v["serving"].update(copy.deepcopy(AUTO_OK["serving_extra"]))
    return v


def issues(v: dict) -> list:
    try:
        parse(v, stack="t")
    except ConfigError as err:
        return err.issues
    return []


def one(v: dict, key: str):
    """The one problem of the config, at `key`. Any other problem fails the test."""
    found = issues(v)
    assert [i.key for i in found] == [key], [str(i) for i in found]
    return found[0]


def test_every_mode_accepts_the_same_base_pools():
    assert issues(values("managedNodeGroups")) == []
    assert issues(values("karpenter")) == []
    assert issues(values("autoMode")) == []


def test_unknown_mode_is_refused_with_the_choices():
    v = values()
    v["nodeProvisioning"] = "clusterAutoscaler"
    (i,) = issues(v)
    assert i.key == "disagg:nodeProvisioning" and "managedNodeGroups" in i.problem + i.fix


@pytest.mark.parametrize("mode", ["karpenter", "autoMode"])
def test_node_autoscaling_lets_max_replicas_exceed_todays_nodes_up_to_max_nodes(mode):
    v = values(mode)
    v["gpuPools"][1]["maxNodes"] = 3
    v["serving"]["decode"]["autoscaling"] = {"maxReplicas": 12}  # 12 x 2 GPUs = 3 p5 nodes; the pool has 1 now
    assert issues(v) == []
    p = plan(parse(v, stack="t"))
    assert (p.gpus_provisioned, p.gpus_at_max) == (16, 32)
    v["serving"]["decode"]["autoscaling"] = {"maxReplicas": 13}  # 4 nodes: beyond maxNodes
    i = one(v, "disagg:serving.decode.autoscaling.maxReplicas")
    assert "may grow to 3" in i.problem and "maxNodes 4" in i.fix


def test_managed_node_groups_still_refuse_max_replicas_beyond_todays_nodes():
    v = values("managedNodeGroups")
    v["gpuPools"][1]["maxNodes"] = 3
    v["serving"]["decode"]["autoscaling"] = {"maxReplicas": 12}
    i = one(v, "disagg:serving.decode.autoscaling.maxReplicas")
    assert "have 1" in i.problem


def test_karpenter_refuses_a_reservation_resource_group():
    v = values()
    v["gpuPools"][0]["capacity"] = {
        "type": "capacityReservation",
        "reservationResourceGroupArn": "arn:aws:resource-groups:us-east-1:123456789012:group/p5",
    }
    i = one(v, "disagg:gpuPools[0].capacity.reservationResourceGroupArn")
    assert "reservationId" in i.fix and "managedNodeGroups" in i.fix


def test_karpenter_node_repair_is_one_switch():
    v = values()
    v["gpuPools"][1]["nodeRepair"] = False
    assert "same nodeRepair" in one(v, "disagg:gpuPools[1].nodeRepair").fix


@pytest.mark.parametrize(
    "change,key",
    [
        ({"capacity": {"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}}, "disagg:gpuPools[0].capacity.type"),
        ({"placementGroupName": "my-pg"}, "disagg:gpuPools[0].placementGroupName"),
        ({"placementGroup": True}, "disagg:gpuPools[0].placementGroup"),
        ({"nvmeCache": True}, "disagg:gpuPools[0].nvmeCache"),
        ({"amiReleaseVersion": "1.35.6-20260724"}, "disagg:gpuPools[0].amiReleaseVersion"),
        ({"rootVolumeGb": 300}, "disagg:gpuPools[0].rootVolumeGb"),
    ],
)
def test_auto_mode_refuses_pool_keys_it_cannot_honour(change, key):
    v = values("autoMode")
    v["gpuPools"][0].update(change)
    i = one(v, key)
    assert "karpenter or managedNodeGroups" in i.fix


@pytest.mark.parametrize(
    "path,value,key",
    [
        (("platform", "gpuOperator", "enabled"), True, "disagg:platform.gpuOperator.enabled"),
        (("platform", "efaDevicePlugin", "enabled"), True, "disagg:platform.efaDevicePlugin.enabled"),
        (("serving", "modelCache"), {"kind": "nvme"}, "disagg:serving.modelCache.kind"),
    ],
)
def test_auto_mode_refuses_what_its_nodes_already_run_or_do_not_have(path, value, key):
    v = values("autoMode")
    node = v
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value
    assert one(v, key).problem


def test_auto_mode_refuses_mig():
    v = values("autoMode")
    v["platform"]["gpuOperator"]["migManager"] = True
    assert "MIG" in one(v, "disagg:platform.gpuOperator.migManager").problem


def test_auto_mode_does_not_ask_for_the_gpu_operator():
    """Off on Auto Mode is right (its nodes run the device plugin); with managed node groups it is refused."""
    v = values("autoMode")
    assert not [i for i in issues(v) if i.key == "disagg:platform.gpuOperator.enabled"]
    v["nodeProvisioning"] = "managedNodeGroups"
    assert [i for i in issues(v) if i.key == "disagg:platform.gpuOperator.enabled"]


def test_auto_mode_pools_get_no_placement_group_and_karpenter_pools_do():
    auto = plan(parse(values("autoMode"), stack="t"))
    karp = plan(parse(values("karpenter"), stack="t"))
    assert not any(p.placement_group for p in auto.pools)
    assert all(p.placement_group for p in karp.pools)
