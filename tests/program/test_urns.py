"""A resource's URN is its identity in every deployed stack: the render's URNs are held to a committed list per stack.

A renamed, re-parented or retyped resource gets a new URN, and `pulumi up` then deletes the old resource and
creates a new one (for a cluster or a node group: every workload goes down). tests/golden/urns/<stack>.txt holds the
URNs of each committed stack and test config; `make urns` rewrites them when a change of the resource set is meant,
and the diff of that commit is what a reviewer reads.
"""

from __future__ import annotations

import copy

import pytest

from tooling.render import GOLDEN_URNS, golden_urns_of, urn_drift
from tests.conftest import stack_files

STACKS = [p.name[len("Pulumi."):-len(".yaml")] for p in stack_files()]


def test_every_stack_file_has_a_golden_list_and_every_list_a_stack():
    goldens = {p.stem for p in GOLDEN_URNS.glob("*.txt")}
    missing, orphaned = sorted(set(STACKS) - goldens), sorted(goldens - set(STACKS))
    assert not missing, f"no golden URN list for {missing}: run `make urns` and commit tests/golden/urns/"
    assert not orphaned, f"golden URN lists of stacks that no longer exist: {orphaned}: run `make urns`"


@pytest.mark.parametrize("stack", STACKS)
def test_the_render_registers_exactly_the_golden_urns(rendered, stack):
    text = golden_urns_of(stack).read_text()
    drift = urn_drift(stack, text.splitlines(), rendered[stack].records)
    assert drift is None, drift
    assert text == (rendered[stack].out / "urns.txt").read_text(), f"{golden_urns_of(stack).name} was edited by hand: run `make urns`"


def test_urns_txt_is_the_sorted_urns_of_the_records(rendered):
    for name, r in rendered.items():
        assert r.urns == sorted(rec["urn"] for rec in r.records), name
        assert len(set(r.urns)) == len(r.urns), f"{name}: a URN registered twice"


def _renamed(records: list[dict], name: str, new: str, alias: bool) -> list[dict]:
    out = copy.deepcopy(records)
    rec = next(r for r in out if r["name"] == name)
    old = rec["urn"]
    rec["urn"], rec["name"] = old.rsplit("::", 1)[0] + f"::{new}", new
    if alias:
        rec["options"]["aliases"] = [{"spec": {"name": name, "parentUrn": ""}}]
    return out


def test_a_rename_without_an_alias_fails_naming_the_fix_and_both_urns(rendered):
    r = rendered["prod"]
    records = _renamed(r.records, "prod-decode-ng", "prod-decode-nodes", alias=False)
    drift = urn_drift("prod", r.urns, records)
    assert drift is not None
    assert "A rename replaces resources: add an alias (or update the golden list if the change is meant: `make urns`)." in drift
    assert "removed, and no alias names them" in drift and "aliased by a new URN" not in drift
    assert "  - urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup::prod-decode-ng" in drift
    assert "  + urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup::prod-decode-nodes" in drift
    assert "tests/golden/urns/prod.txt (1 added, 1 removed)" in drift


def test_a_rename_with_an_alias_is_a_move_that_nothing_replaces(rendered):
    r = rendered["prod"]
    records = _renamed(r.records, "prod-decode-ng", "prod-decode-nodes", alias=True)
    drift = urn_drift("prod", r.urns, records)
    assert "removed, and no alias names them" not in drift and "A rename replaces resources" not in drift
    assert "Nothing is replaced: update the golden list if the change is meant: `make urns`." in drift
    assert "added" not in drift.split("\n", 1)[1], "a moved resource is not created"
    assert (
        "  - urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup::prod-decode-ng\n"
        "    -> urn:pulumi:prod::disagg::disagg:aws:GpuNodePool$aws:eks/nodeGroup:NodeGroup::prod-decode-nodes"
    ) in drift


def test_an_alias_naming_the_old_parent_resolves_to_the_old_urn(rendered):
    """A re-parented resource whose alias names its old parent: the alias URN carries the old parent's type chain."""
    r = rendered["prod"]
    records = copy.deepcopy(r.records)
    rec = next(x for x in records if x["name"] == "prod-decode-ng")
    old_urn, old_parent = rec["urn"], rec["parent"]
    rec["urn"] = f"urn:pulumi:prod::disagg::{rec['type']}::prod-decode-ng"  # moved to the stack root
    rec["parent"] = "urn:pulumi:prod::disagg::pulumi:pulumi:Stack::disagg-prod"
    rec["options"]["aliases"] = [{"spec": {"parentUrn": old_parent}}]
    drift = urn_drift("prod", r.urns, records)
    assert f"  - {old_urn}\n    -> {rec['urn']}" in drift


def test_a_new_resource_is_listed_as_created(rendered):
    r = rendered["dev"]
    drift = urn_drift("dev", r.urns[1:], r.records)
    assert "(1 added, 0 removed)" in drift and f"added (`pulumi up` creates these):\n  + {r.urns[0]}" in drift
    assert "A rename replaces resources" not in drift
