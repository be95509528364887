"""Config problems, broken on purpose: the error names the `disagg:` key, the bad value and a fix, and every problem
of a file is reported in one run. (tests/unit/test_rules.py breaks every rule of the registry, one at a time.)"""

from __future__ import annotations

import json

import pytest

from stacks.config import ConfigError, decode, engine_config_from_file, parse
from stacks.config.loader import SECRET_PLACEHOLDER
from tests.conftest import render, stack_file


def errors_of(values: dict, **kw) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(values, stack="t", **kw)
    return [str(i) for i in exc.value.issues]


def only_error(values: dict, key: str, *words: str) -> str:
    """The one problem of the config: at `key`, with `words` and a fix. Any other problem fails the test."""
    errs = errors_of(values)
    hits = [e for e in errs if e.startswith(key + " ") or e.startswith(key + "=")]
    assert hits, f"no error for {key}; got {errs}"
    assert errs == hits[:1], f"{key} is not the only error: {errs}"
    for w in words:
        assert w in hits[0], f"{w!r} not in {hits[0]!r}"
    assert "Fix: " in hits[0]
    return hits[0]


def test_base_config_is_valid(base):
    cfg = parse(base, stack="t")
    assert cfg.name == "t"
    assert cfg.cluster_name == "t"
    assert cfg.gpu_pools[0].instance_type == "p5.48xlarge"


def test_unknown_top_level_key(base):
    base["gpuPool"] = []
    only_error(base, "disagg:gpuPool", "unknown key (did you mean gpuPools?)")


def test_unknown_nested_key(base):
    base["gpuPools"][0]["capacity"] = {"type": "onDemand", "reservationID": "cr-0123456789abcdef0"}
    only_error(base, "disagg:gpuPools[0].capacity.reservationID", "unknown key (did you mean reservationId?)")


def test_unknown_deeply_nested_key(base):
    base["serving"]["prefill"]["autoscaling"] = {"maxReplica": 3}
    only_error(base, "disagg:serving.prefill.autoscaling.maxReplica", "unknown key (did you mean maxReplicas?)")


def test_a_key_in_the_wrong_case_is_pointed_at_its_camel_case_name(base):
    base["gpuPools"][0]["instancetype"] = base["gpuPools"][0].pop("instanceType")
    errs = errors_of(base)
    assert [e.split(" ")[0] for e in errs] == ["disagg:gpuPools[0].instanceType", "disagg:gpuPools[0].instancetype"], errs
    assert "required key is not set" in errs[0] and "did you mean instanceType?" in errs[1]


def test_a_key_near_no_allowed_key_gets_no_guess(base):
    base["serving"]["router"] = {"colour": "blue"}
    err = only_error(base, "disagg:serving.router.colour", "unknown key", "keys allowed here: allowedClientCidrs, allowedClientNamespaces, apiKey, decodePolicy, image")
    assert "did you mean" not in err


def test_problems_of_one_object_are_all_reported(base):
    """What used to be one model validator stopped at its first problem; as rules they all report."""
    base["gpuPools"][0].update(
        nodes=2, maxNodes=1, placementGroup=False, placementGroupName="my-pg", capacity={"type": "onDemand", "reservationId": "cr-0123456789abcdef0"}
    )
    keys = [e.split(" ")[0] for e in errors_of(base)]
    assert keys == ["disagg:gpuPools[0].capacity.type", "disagg:gpuPools[0].maxNodes", "disagg:gpuPools[0].placementGroupName"], keys


def test_an_unknown_instance_type_is_reported_beside_the_cross_layer_rules(base):
    base["gpuPools"][0]["instanceType"] = "p5.96xlarge"
    base["platform"] = {"kai": {"enabled": False}}
    base["serving"]["decode"]["replicas"] = 5
    base["serving"]["decode"]["autoscaling"] = {"maxReplicas": 5}
    base["gpuPools"][1]["maxNodes"] = 2
    base["nodeProvisioning"] = "karpenter"
    keys = [e.split(" ")[0] for e in errors_of(base)]
    # The decode pool's rules still run; none about the prefill pool, whose type is unknown, guesses at it.
    assert keys == ["disagg:gpuPools[0].instanceType", "disagg:gpuPools[1].nodes", "disagg:platform.kai.enabled"], keys


def test_a_rule_is_skipped_for_the_part_that_did_not_parse_only(base):
    base["gpuPools"][0]["nodes"] = "two"  # pool 0 does not parse its node count
    base["gpuPools"][0]["nvmeCache"] = False
    base["gpuPools"][1]["nvmeCache"] = False
    keys = [e.split(" ")[0] for e in errors_of(base)]
    # A per-pool rule reads what parsed of both pools; rules that need pool 0's node count (the prefill replicas fit)
    # are skipped, and report nothing false about it.
    assert keys == ["disagg:gpuPools[0].nodes", "disagg:gpuPools[0].nvmeCache", "disagg:gpuPools[1].nvmeCache"], keys


def test_a_value_that_did_not_parse_is_never_judged_at_its_default(base):
    base["serving"]["decode"]["replicas"] = "9"  # a string: the pools-fit rules must not judge the default (1)
    base["platform"] = {"kai": {"queue": {"gpuQuota": 1}}}
    keys = [e.split(" ")[0] for e in errors_of(base)]
    assert keys == ["disagg:serving.decode.replicas"], keys


@pytest.mark.parametrize(
    "mutate,key",
    [
        (lambda c: c["gpuPools"][0].__setitem__("nodes", "2"), "disagg:gpuPools[0].nodes"),
        (lambda c: c["gpuPools"][0].__setitem__("efa", "yes"), "disagg:gpuPools[0].efa"),
        (lambda c: c["serving"]["prefill"].__setitem__("tensorParallel", 4.5), "disagg:serving.prefill.tensorParallel"),
        (lambda c: c.__setitem__("availabilityZones", "us-east-1a"), "disagg:availabilityZones"),
    ],
)
def test_wrong_types(base, mutate, key):
    mutate(base)
    only_error(base, key)


@pytest.mark.parametrize(
    "mutate,key",
    [
        (lambda c: c["gpuPools"][0].__setitem__("nodes", -1), "disagg:gpuPools[0].nodes"),
        (lambda c: c["serving"]["decode"].__setitem__("replicas", -1), "disagg:serving.decode.replicas"),
        (lambda c: c["serving"]["prefill"].__setitem__("tensorParallel", 0), "disagg:serving.prefill.tensorParallel"),
        (lambda c: c.setdefault("systemPool", {}).__setitem__("nodes", 0), "disagg:systemPool.nodes"),
        (lambda c: c["serving"].setdefault("router", {}).__setitem__("replicas", 0), "disagg:serving.router.replicas"),
    ],
)
def test_zero_or_negative_counts(base, mutate, key):
    mutate(base)
    only_error(base, key, "greater than")


def test_multi_node_replica_must_use_whole_nodes(base):
    base["serving"]["prefill"] = {"tensorParallel": 12, "replicas": 1}
    only_error(base, "disagg:serving.prefill.tensorParallel", "12 GPUs", "multiple of 8")


def test_gpus_per_pod_must_divide_node_gpus(base):
    base["serving"]["decode"] = {"tensorParallel": 3, "replicas": 1}
    only_error(base, "disagg:serving.decode.tensorParallel", "does not divide the 8 GPUs", "[1, 2, 4, 8]")


def test_efa_on_instance_without_efa(base):
    base["gpuPools"][0].update(instanceType="g5.xlarge", efa=True)
    base["gpuPools"][1].update(instanceType="g5.xlarge")
    base["serving"]["model"] = {"id": "Qwen/Qwen3-0.6B", "parametersBillions": 0.6, "weightDtype": "bf16"}
    base["serving"]["prefill"] = {"tensorParallel": 1, "replicas": 1}
    base["serving"]["decode"] = {"tensorParallel": 1, "replicas": 1}
    only_error(base, "disagg:gpuPools[0].efa", "g5.xlarge has no EFA")


def test_more_efa_per_pod_than_node_has(base):
    base["serving"]["prefill"]["efaPerPod"] = 33
    only_error(base, "disagg:serving.prefill.efaPerPod", "more EFA devices per pod than a p5.48xlarge node has (32)")


def test_efa_per_pod_times_pods_per_node_exceeds_node(base):
    base["serving"]["decode"]["efaPerPod"] = 16  # 4 decode pods per node x 16 > 32
    only_error(base, "disagg:serving.decode.efaPerPod", "exceeds the node's 32")


def test_capacity_block_needs_reservation_id(base):
    base["gpuPools"][0]["capacity"] = {"type": "capacityBlock"}
    only_error(base, "disagg:gpuPools[0].capacity.reservationId", "needs the reservation id")


def test_capacity_block_spanning_two_zones(base):
    base["gpuPools"][0].update(
        capacity={"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}, efa=False, availabilityZones=["us-east-1a", "us-east-1b"]
    )
    base["serving"]["kvTransfer"] = {"backend": "UCX"}
    only_error(base, "disagg:gpuPools[0].availabilityZones", "Capacity Block lives in one zone")


def test_efa_pool_spanning_two_zones(base):
    base["gpuPools"][1]["availabilityZones"] = ["us-east-1a", "us-east-1b"]
    only_error(base, "disagg:gpuPools[1].availabilityZones", "EFA pool spans more than one zone")


def test_weights_do_not_fit(base):
    base["serving"]["model"] = {"id": "big", "parametersBillions": 405, "weightDtype": "bf16"}
    base["serving"]["prefill"] = {"tensorParallel": 8, "replicas": 1}  # 94 GiB per GPU: does not fit either
    errs = errors_of(base)
    assert [e.split(" ")[0] for e in errs] == ["disagg:serving.prefill.tensorParallel", "disagg:serving.decode.tensorParallel"], errs
    assert "754.4 GiB: 377.2 GiB per GPU over 2 GPUs" in errs[1] and "KV cache" in errs[1] and "weightDtype" in errs[1]


def test_pools_too_small_for_replicas(base):
    base["serving"]["decode"]["replicas"] = 5  # 4 per node, 1 node
    base["serving"]["decode"]["autoscaling"] = {"maxReplicas": 5}
    base["gpuPools"][1]["maxNodes"] = 2
    base["nodeProvisioning"] = "karpenter"  # the pool may grow to 2 for maxReplicas, but holds 1 for replicas
    only_error(base, "disagg:gpuPools[1].nodes", "asks for 5 replicas", "2 nodes")


def test_names_must_be_dns_labels(base):
    base["gpuPools"][0]["name"] = "Prefill_A"
    only_error(base, "disagg:gpuPools[0].name", "DNS-1123")


def test_cluster_name_must_be_dns_label(base):
    base["cluster"]["name"] = "my.cluster"
    only_error(base, "disagg:cluster.name", "DNS-1123")


def test_unknown_instance_type(base):
    base["gpuPools"][0]["instanceType"] = "p5.96xlarge"
    only_error(base, "disagg:gpuPools[0].instanceType", "unknown instance type", "p5.48xlarge")


def test_duplicate_pool_names(base):
    base["gpuPools"][1]["name"] = "prefill"
    errs = errors_of(base)
    assert any(e.startswith("disagg:gpuPools[1].name") and "more than one pool" in e for e in errs), errs


def test_prefill_and_decode_in_different_zones_over_efa(base):
    base["gpuPools"][1]["availabilityZones"] = ["us-east-1b"]
    only_error(base, "disagg:gpuPools[1].availabilityZones", "KV transfer over EFA cannot cross AZs")


def test_different_zones_allowed_without_efa(base):
    for p in base["gpuPools"]:
        p.update(instanceType="g6e.12xlarge", efa=False)
    base["gpuPools"][1]["availabilityZones"] = ["us-east-1b"]
    base["serving"]["prefill"] = {"tensorParallel": 2, "replicas": 2}
    base["serving"]["decode"] = {"tensorParallel": 2, "replicas": 2}
    cfg = parse(base, stack="t")
    assert cfg.gpu_pools[1].availability_zones == ["us-east-1b"]


def test_zone_outside_region(base):
    base["availabilityZones"] = ["us-east-1a", "us-west-2b"]
    only_error(base, "disagg:availabilityZones[1]", "not a zone of region us-east-1")


def test_kai_quota_below_requested_gpus(base):
    base["platform"] = {"kai": {"queue": {"gpuQuota": 8}}}
    only_error(base, "disagg:platform.kai.queue.gpuQuota", "16 GPUs", "never schedule")


def test_network_operator_refused_on_efa_pool(base):
    base["platform"] = {"networkOperator": {"enabled": True, "pools": ["prefill"]}}
    only_error(base, "disagg:platform.networkOperator.pools[0]", "ConnectX", "EFA device plugin")


def test_public_endpoint_needs_cidrs(base):
    base["cluster"] = {}
    only_error(base, "disagg:cluster.publicAccessCidrs", "publicAccessCidrs is empty")


def test_missing_required_key(base):
    del base["serving"]["model"]["weightDtype"]
    only_error(base, "disagg:serving.model.weightDtype", "required")


def test_plaintext_secret_refused(base):
    errs = errors_of({**base, "hfToken": "hf_abc"}, plaintext_secrets=("hfToken",))
    assert any(e.startswith("disagg:hfToken") and "--secret" in e for e in errs), errs
    assert not any("hf_abc" in e for e in errs), "the secret value must not be echoed"


def test_all_errors_reported_at_once(base):
    base["gpuPools"][0]["nodes"] = 0
    base["gpuPools"][1]["name"] = "Decode!"
    base["serving"]["prefill"]["tensorParallel"] = "4"
    errs = errors_of(base)
    keys = {e.split(" ")[0] for e in errs}
    assert {"disagg:gpuPools[0].nodes", "disagg:gpuPools[1].name", "disagg:serving.prefill.tensorParallel"} <= keys


def test_all_cross_layer_errors_reported_at_once(base):
    base["gpuPools"][1]["availabilityZones"] = ["us-east-1b"]
    base["serving"]["decode"]["replicas"] = 5
    base["platform"] = {"kai": {"queue": {"gpuQuota": 1}}}
    keys = {e.split(" ")[0] for e in errors_of(base)}
    assert {"disagg:gpuPools[1].availabilityZones", "disagg:gpuPools[1].nodes", "disagg:platform.kai.queue.gpuQuota"} <= keys


def test_decode_keeps_strings_and_parses_json():
    raw = {"disagg:name": "1.33", "disagg:gpuPools": json.dumps([{"name": "a"}]), "aws:region": "x", "disagg:region": "us-east-1"}
    assert decode(raw) == {"name": "1.33", "gpuPools": [{"name": "a"}], "region": "us-east-1"}


def test_stack_file_secure_values_become_placeholders(tmp_path, base):
    path = stack_file(tmp_path / "Pulumi.t.yaml", base, secrets={"hfToken": "AAABAJ0ciphertext"})
    config, secrets = engine_config_from_file(path)
    assert secrets == ["disagg:hfToken"]
    assert config["disagg:hfToken"] == SECRET_PLACEHOLDER
    assert "AAABAJ0ciphertext" not in json.dumps(config)


BAD_CONFIGS = {
    "unknown-key": (lambda c: c.__setitem__("gpuPool", []), "disagg:gpuPool"),
    "wrong-type": (lambda c: c["gpuPools"][0].__setitem__("nodes", "two"), "disagg:gpuPools[0].nodes"),
    "zero-count": (lambda c: c["serving"]["decode"].__setitem__("replicas", 0), "disagg:serving.decode.replicas"),
    "tp-pp-not-whole-nodes": (lambda c: c["serving"]["prefill"].update(tensorParallel=4, pipelineParallel=3), "disagg:serving.prefill.tensorParallel"),
    "gpus-do-not-divide": (lambda c: c["serving"]["decode"].update(tensorParallel=3), "disagg:serving.decode.tensorParallel"),
    "efa-without-efa": (lambda c: c["gpuPools"][0].update(instanceType="g6e.xlarge", efa=True), "disagg:gpuPools[0].efa"),
    "efa-per-pod": (lambda c: c["serving"]["prefill"].update(efaPerPod=64), "disagg:serving.prefill.efaPerPod"),
    "capacity-block-no-id": (lambda c: c["gpuPools"][0].update(capacity={"type": "capacityBlock"}), "disagg:gpuPools[0].capacity.reservationId"),
    "capacity-block-two-azs": (
        lambda c: c["gpuPools"][0].update(
            capacity={"type": "capacityBlock", "reservationId": "cr-0123456789abcdef0"}, availabilityZones=["us-east-1a", "us-east-1b"]
        ),
        "disagg:gpuPools[0].availabilityZones",
    ),
    "weights-do-not-fit": (lambda c: c["serving"]["model"].update(parametersBillions=700, weightDtype="bf16"), "disagg:serving.decode.tensorParallel"),
    "pool-too-small": (lambda c: c["serving"]["decode"].update(replicas=9), "disagg:gpuPools[1].nodes"),
    "not-dns-label": (lambda c: c["gpuPools"][0].update(name="GPU_pool"), "disagg:gpuPools[0].name"),
    "unknown-instance": (lambda c: c["gpuPools"][0].update(instanceType="p9.48xlarge"), "disagg:gpuPools[0].instanceType"),
    "duplicate-pools": (lambda c: c["gpuPools"][1].update(name="prefill"), "disagg:gpuPools[1].name"),
    "zones-differ-over-efa": (lambda c: c["gpuPools"][1].update(availabilityZones=["us-east-1b"]), "disagg:gpuPools[1].availabilityZones"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_render_exits_2_naming_the_key_without_traceback(tmp_path, base, case):
    mutate, key = BAD_CONFIGS[case]
    mutate(base)
    path = stack_file(tmp_path / f"Pulumi.{case}.yaml", base)
    proc = render(["--config", str(path), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr
    assert "Fix: " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for an invalid config"


def test_placement_group_name_conflicts_with_placement_group_off(base):
    base["gpuPools"][0].update(placementGroup=False, placementGroupName="my-pg")
    only_error(base, "disagg:gpuPools[0].placementGroupName", "placementGroup is false")


@pytest.mark.parametrize(
    "mutate,key,words",
    [
        (lambda c: c.__setitem__("network", {"existingVpcId": "vpc-1", "existingPrivateSubnetIds": {"us-east-1a": "subnet-0123456789abcdef0", "us-east-1b": "subnet-0123456789abcdef1"}}),
         "disagg:network.existingVpcId", "'vpc-1': not a VPC id"),
        (lambda c: c.__setitem__("network", {"existingVpcId": "vpc-0123456789abcdef0", "existingPrivateSubnetIds": {"us-east-1a": "subnet-0123456789abcdef0", "us-east-1b": "sn-2"}}),
         "disagg:network.existingPrivateSubnetIds", "'sn-2': zone us-east-1b: not a subnet id"),
        (lambda c: c["cluster"].__setitem__("logRetentionDays", 10), "disagg:cluster.logRetentionDays", "nearest: 7"),
        (lambda c: c["gpuPools"][0].__setitem__("capacity", {"type": "capacityBlock", "reservationId": "cr-1"}),
         "disagg:gpuPools[0].capacity.reservationId", "not a capacity reservation id"),
        (lambda c: c["gpuPools"][0].__setitem__("capacity", {"type": "capacityReservation", "reservationResourceGroupArn": "arn:aws:iam::1:group/x"}),
         "disagg:gpuPools[0].capacity.reservationResourceGroupArn", "not a resource group ARN"),
        (lambda c: c["gpuPools"][0].__setitem__("instanceType", "m7i.2xlarge"), "disagg:gpuPools[0].instanceType", "has no GPU"),
        (lambda c: c.__setitem__("systemPool", {"instanceType": "p5.48xlarge"}), "disagg:systemPool.instanceType", "is a GPU type"),
        (lambda c: c.__setitem__("systemPool", {"instanceType": "m9.large"}), "disagg:systemPool.instanceType", "unknown instance type"),
    ],
)
def test_formats_and_catalog_names_are_checked_by_the_parser(base, mutate, key, words):
    mutate(base)
    only_error(base, key, words)
