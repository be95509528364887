"""The stack's outputs are the components' own exports, merged: shared maps take one entry per pool, nothing else."""

from __future__ import annotations

import pytest

from stacks.stack import merge_exports


def test_the_pools_each_add_their_entry_to_the_shared_maps():
    out = merge_exports(
        [
            {"clusterName": "c"},
            {"systemNodeGroupName": "sys", "nodeRoleArns": {"system": "arn:s"}},
            {"gpuPools": {"prefill": {"efa": True}}, "nodeRoleArns": {"prefill": "arn:p"}},
            {"gpuPools": {"decode": {"efa": True}}},
        ]
    )
    assert out == {
        "clusterName": "c",
        "systemNodeGroupName": "sys",
        "nodeRoleArns": {"system": "arn:s", "prefill": "arn:p"},
        "gpuPools": {"prefill": {"efa": True}, "decode": {"efa": True}},
    }
    assert list(out["nodeRoleArns"]) == ["system", "prefill"]  # in component order


def test_a_component_s_map_is_not_changed_by_the_merge():
    first = {"gpuPools": {"a": 1}}
    merge_exports([first, {"gpuPools": {"b": 2}}])
    assert first == {"gpuPools": {"a": 1}}


@pytest.mark.parametrize(
    "parts",
    [
        [{"clusterName": "a"}, {"clusterName": "b"}],  # a plain value twice
        [{"gpuPools": {"p": 1}}, {"gpuPools": {"p": 2}}],  # one pool's entry twice
        [{"vpcId": "v"}, {"vpcId": {"x": 1}}],  # a value and a map
    ],
)
def test_an_output_exported_twice_is_refused(parts):
    with pytest.raises(ValueError, match="exported twice"):
        merge_exports(parts)
