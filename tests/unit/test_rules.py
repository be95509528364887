"""The rule registry (stacks/rules.py): every rule id has a fixture that breaks it, and only it.

`BREAKS` maps each rule id to the smallest change of a valid config that breaks the rule, and the `disagg:` key the
problem must name. The test fails when a rule is registered without a fixture, when a fixture names a rule that is
not registered, when the change does not trigger its rule at that key, and when it triggers anything else (another
rule, or the parser): each fixture isolates its rule.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from pydantic import BaseModel

from facts.catalog import CATALOG
from stacks.config import ConfigError, parse
from stacks.config.loader import _model_in
from stacks.config.stack import StackConfig
from stacks.rules import check, registry
from tests.conftest import BASE

# BASE with a public endpoint CIDR that is not a documentation placeholder, so the deploy-stage rules pass too.
CLEAN = copy.deepcopy(BASE)
CLEAN["cluster"]["publicAccessCidrs"] = ["100.24.16.0/24"]

CR = "cr-0123456789abcdef0"
GROUP = "arn:aws:resource-groups:us-east-1:123456789012:group/p5"
VPC = "vpc-0123456789abcdef0"
SUBNETS = {"us-east-1a": "subnet-0123456789abcdef0", "us-east-1b": "subnet-0123456789abcdef1"}
SMALL_MODEL = {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"}
OLD_AMI = "1.30.9-20250101"
# A GPU type like p5.48xlarge without instance-store NVMe: the catalog has none today, the rule guards the day it does.
NO_NVME = "p5-nodisk.48xlarge"


@dataclass(frozen=True)
class Break:
    change: Callable[[dict], Any]
    key: str  # the `disagg:` key the problem names (without the prefix)
    context: dict = field(default_factory=dict)  # plaintext_secrets, aws_region for parse
    catalog: bool = False  # needs NO_NVME in the catalog


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """`_set("platform.kai.enabled", False)`: the value at a dotted path, creating mappings on the way."""

    def change(v: dict) -> None:
        *parents, last = path.split(".")
        node = v
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        node[last] = value

    return change


def _all(*changes: Callable[[dict], Any]) -> Callable[[dict], None]:
    def change(v: dict) -> None:
        for c in changes:
            c(v)

    return change


def _trtllm() -> Callable[[dict], None]:
    """BASE served by TensorRT-LLM instead of vLLM (a valid config: the fixtures below add one mistake each)."""
    return _set("serving.engine.kind", "tensorrt-llm")


def _pool(i: int, **fields) -> Callable[[dict], None]:
    return lambda v: v["gpuPools"][i].update(fields)


def _pools(**fields) -> Callable[[dict], None]:
    return lambda v: [p.update(fields) for p in v["gpuPools"]]


def _add_pool(**fields) -> Callable[[dict], None]:
    pool = {"name": "extra", "role": "decode", "instanceType": "p5.48xlarge", "nodes": 1, "availabilityZones": ["us-east-1a"]}
    return lambda v: v["gpuPools"].append({**pool, **fields})


def _serving(**fields) -> Callable[[dict], None]:
    return lambda v: v["serving"].update(copy.deepcopy(fields))


def _auto_mode(*changes) -> Callable[[dict], None]:
    """EKS Auto Mode with what it needs off (the device plugins it runs itself) and a pvc model cache."""
    return _all(
        _set("nodeProvisioning", "autoMode"),
        _set("platform.gpuOperator.enabled", False),
        _set("platform.efaDevicePlugin.enabled", False),
        _serving(modelCache={"kind": "pvc", "storageClass": "efs-sc"}),
        *changes,
    )


def _del_engine(v: dict) -> None:
    del v["serving"]["engine"]


BREAKS: dict[str, Break] = {
    # the stack file
    "stack.secrets-encrypted": Break(_set("hfToken", "hf_x"), "hfToken", {"plaintext_secrets": ("hfToken",)}),
    "stack.region-matches-aws-region": Break(lambda v: None, "region", {"aws_region": "us-west-2"}),
    "stack.grove-name-budget": Break(_all(_set("name", "a" * 39), _set("platform.workloadApi", "grove")), "name"),
    # network
    "network.existing-subnets-need-vpc": Break(_set("network.existingPrivateSubnetIds", SUBNETS), "network.existingVpcId"),
    "network.existing-vpc-needs-private-subnets": Break(_set("network.existingVpcId", VPC), "network.existingPrivateSubnetIds"),
    "network.existing-subnet-per-zone": Break(
        _all(_set("network.existingVpcId", VPC), _set("network.existingPrivateSubnetIds", {"us-east-1a": SUBNETS["us-east-1a"]})),
        "network.existingPrivateSubnetIds",
    ),
    "network.vpc-cidr-holds-subnets": Break(_set("network.vpcCidr", "10.0.0.0/20"), "network.vpcCidr"),
    "network.private-subnet-holds-pods": Break(
        _all(_set("network.privateSubnetPrefixLength", 24), _pool(1, maxNodes=8), _set("nodeProvisioning", "karpenter")),
        "network.privateSubnetPrefixLength",
    ),
    # cluster and zones
    "cluster.endpoint-reachable": Break(
        _all(_set("cluster.endpointPublicAccess", False), _set("cluster.endpointPrivateAccess", False)), "cluster.endpointPrivateAccess"
    ),
    "cluster.public-access-cidrs-set": Break(_set("cluster.publicAccessCidrs", []), "cluster.publicAccessCidrs"),
    "cluster.system-ami-for-kubernetes": Break(
        _all(_set("cluster.kubernetesVersion", "1.30"), _pools(amiReleaseVersion=OLD_AMI)), "cluster.kubernetesVersion"
    ),
    "zones.in-region": Break(_set("availabilityZones", ["us-east-1a", "us-west-2b"]), "availabilityZones[1]"),
    "zones.listed-once": Break(_set("availabilityZones", ["us-east-1a", "us-east-1a"]), "availabilityZones"),
    "system-pool.nodes-within-bounds": Break(_set("systemPool", {"nodes": 3, "maxNodes": 2}), "systemPool.nodes"),
    # a GPU pool
    "pools.capacity-block-no-group": Break(
        _pool(0, capacity={"type": "capacityBlock", "reservationId": CR, "reservationResourceGroupArn": GROUP}),
        "gpuPools[0].capacity.reservationResourceGroupArn",
    ),
    "pools.capacity-one-target": Break(
        _pool(0, capacity={"type": "capacityReservation", "reservationId": CR, "reservationResourceGroupArn": GROUP}),
        "gpuPools[0].capacity.reservationResourceGroupArn",
    ),
    "pools.capacity-block-needs-id": Break(_pool(0, capacity={"type": "capacityBlock"}), "gpuPools[0].capacity.reservationId"),
    "pools.reservation-needs-target": Break(_pool(0, capacity={"type": "capacityReservation"}), "gpuPools[0].capacity.reservationId"),
    "pools.on-demand-no-reservation": Break(_pool(0, capacity={"type": "onDemand", "reservationId": CR}), "gpuPools[0].capacity.type"),
    "pools.zero-nodes-only-capacity-block": Break(_add_pool(nodes=0), "gpuPools[2].nodes"),
    "pools.zero-nodes-needs-max-nodes": Break(
        _add_pool(nodes=0, capacity={"type": "capacityBlock", "reservationId": CR}), "gpuPools[2].maxNodes"
    ),
    "pools.max-nodes-at-least-nodes": Break(_pool(0, nodes=2, maxNodes=1), "gpuPools[0].maxNodes"),
    "pools.zones-listed-once": Break(_pool(0, efa=False, availabilityZones=["us-east-1a", "us-east-1a"]), "gpuPools[0].availabilityZones"),
    "pools.zones-not-empty": Break(_pool(0, availabilityZones=[]), "gpuPools[0].availabilityZones"),
    "pools.zones-of-the-stack": Break(_pool(0, efa=False, availabilityZones=["us-east-1c"]), "gpuPools[0].availabilityZones"),
    "pools.placement-group-name-needs-placement-group": Break(
        _pool(0, placementGroup=False, placementGroupName="my-pg"), "gpuPools[0].placementGroupName"
    ),
    "pools.names-unique": Break(_pool(1, name="prefill"), "gpuPools[1].name"),
    "pools.name-not-system": Break(_pool(0, name="system"), "gpuPools[0].name"),
    "pools.efa-supported": Break(
        _all(_pool(0, instanceType="g5.xlarge", efa=True), _pool(1, instanceType="g5.xlarge"),
             _serving(model=SMALL_MODEL, prefill={"replicas": 1}, decode={"replicas": 1})),
        "gpuPools[0].efa",
    ),
    "pools.efa-one-zone": Break(_pool(1, availabilityZones=["us-east-1a", "us-east-1b"]), "gpuPools[1].availabilityZones"),
    "pools.capacity-block-one-zone": Break(
        _all(_pool(0, capacity={"type": "capacityBlock", "reservationId": CR}, efa=False, availabilityZones=["us-east-1a", "us-east-1b"])),
        "gpuPools[0].availabilityZones",
    ),
    "pools.reservation-one-zone": Break(
        _pool(0, capacity={"type": "capacityReservation", "reservationId": CR}, efa=False, availabilityZones=["us-east-1a", "us-east-1b"]),
        "gpuPools[0].availabilityZones",
    ),
    "pools.placement-group-needs-efa": Break(_pool(0, efa=False, placementGroup=True), "gpuPools[0].placementGroup"),
    "pools.ami-for-kubernetes": Break(_pool(0, amiReleaseVersion=OLD_AMI), "gpuPools[0].amiReleaseVersion"),
    # the pools of each role and how a role lands on them
    "roles.have-pools": Break(lambda v: v["gpuPools"].pop(1), "gpuPools"),
    "roles.one-instance-type": Break(_add_pool(instanceType="p5e.48xlarge"), "gpuPools[2].instanceType"),
    "roles.one-efa-setting": Break(_add_pool(efa=False), "gpuPools[2].efa"),
    "roles.gpus-divide-node": Break(_serving(decode={"tensorParallel": 3, "replicas": 1}), "serving.decode.tensorParallel"),
    "roles.whole-nodes": Break(_serving(prefill={"tensorParallel": 12, "replicas": 1}), "serving.prefill.tensorParallel"),
    "roles.efa-per-pod-needs-efa": Break(_all(_pools(efa=False), _set("serving.prefill.efaPerPod", 4)), "serving.prefill.efaPerPod"),
    "roles.efa-per-pod-within-node": Break(_set("serving.prefill.efaPerPod", 33), "serving.prefill.efaPerPod"),
    "roles.efa-per-pod-pods-fit": Break(_set("serving.decode.efaPerPod", 16), "serving.decode.efaPerPod"),
    "roles.every-pod-gets-efa": Break(
        _all(_pools(instanceType="p4d.24xlarge"),
             _serving(model=SMALL_MODEL, prefill={"tensorParallel": 1, "replicas": 8}, decode={"tensorParallel": 2, "replicas": 4})),
        "serving.prefill.tensorParallel",
    ),
    "roles.dp-rank-within-node": Break(
        _all(_serving(prefill={"tensorParallel": 16, "dataParallel": 2, "expertParallel": True, "replicas": 1}), _pool(0, nodes=4)),
        "serving.prefill.dataParallel",
    ),
    "roles.weights-fit": Break(_set("serving.model", {"id": "big", "parametersBillions": 405, "weightDtype": "bf16"}), "serving.decode.tensorParallel"),
    "roles.pools-hold-replicas": Break(
        _all(_set("nodeProvisioning", "karpenter"), _pool(1, maxNodes=2), _serving(decode={"tensorParallel": 2, "replicas": 5})),
        "gpuPools[1].nodes",
    ),
    # serving
    "serving.model-parameters-known": Break(_set("serving.model", {"id": "acme/unlisted-model", "weightDtype": "bf16"}), "serving.model.parametersBillions"),
    "serving.replicas-within-autoscaling-bounds": Break(_set("serving.decode.autoscaling", {"minReplicas": 5}), "serving.decode.replicas"),
    "serving.nvme-cache-pools-build-raid": Break(_pool(0, nvmeCache=False), "gpuPools[0].nvmeCache"),
    "serving.nvme-cache-pools-have-nvme": Break(_pool(0, instanceType=NO_NVME), "gpuPools[0].instanceType", catalog=True),
    "serving.nvme-cache-on-raid": Break(_set("serving.modelCache", {"hostPath": "/data/model-cache"}), "serving.modelCache.hostPath"),
    "serving.kv-efa-pools-one-zone": Break(_pool(1, availabilityZones=["us-east-1b"]), "gpuPools[1].availabilityZones"),
    "serving.kv-backend-efa": Break(
        _all(_pools(instanceType="g6e.12xlarge", efa=False),
             _serving(model=SMALL_MODEL, prefill={"tensorParallel": 2, "replicas": 2}, decode={"tensorParallel": 2, "replicas": 2},
                      kvTransfer={"backend": "LIBFABRIC"})),
        "serving.kvTransfer.backend",
    ),
    "serving.kv-no-pipeline-parallel": Break(
        _serving(decode={"tensorParallel": 2, "pipelineParallel": 2, "replicas": 2}), "serving.decode.pipelineParallel"
    ),
    "serving.internal-nlb-needs-lbc": Break(
        _all(_set("serving.router", {"serviceType": "internalNlb"}), _set("platform.loadBalancerController.enabled", False)),
        "serving.router.serviceType",
    ),
    "serving.efa-userspace-removed": Break(_set("serving.engine.efaUserspace", "host"), "serving.engine.efaUserspace"),
    "serving.efa-image-set": Break(_del_engine, "serving.engine.efaImage"),
    "serving.router-api-key-is-a-token": Break(_set("serving.router.apiKey", "two words"), "serving.router.apiKey"),
    "serving.router-client-lists-not-empty": Break(_set("serving.router.allowedClientNamespaces", []), "serving.router.allowedClientNamespaces"),
    "serving.router-client-cidrs-known-subnets": Break(
        _all(
            _set("network.existingVpcId", VPC),
            _set("network.existingPrivateSubnetIds", SUBNETS),
            _set("serving.router.serviceType", "internalNlb"),
            _set("serving.router.allowedClientCidrs", ["10.20.0.0/16"]),
        ),
        "serving.router.allowedClientCidrs",
    ),
    "serving.frontend-native": Break(_set("serving.engine.frontend", "triton"), "serving.engine.frontend"),
    "serving.trtllm-options-need-trtllm": Break(_set("serving.decode.tensorrtLlm", {"maxBatchSize": 64}), "serving.decode.tensorrtLlm"),
    "serving.trtllm-disaggregated-only": Break(_all(_trtllm(), _set("serving.mode", "aggregated")), "serving.mode"),
    "serving.trtllm-router-policies": Break(_all(_trtllm(), _set("serving.router.prefillPolicy", "cache_aware")), "serving.router.prefillPolicy"),
    "serving.trtllm-restricted-router-needs-api-key": Break(
        _all(_trtllm(), _set("serving.router.allowedClientNamespaces", ["apps"])), "serving.router.allowedClientNamespaces"
    ),
    "serving.trtllm-no-served-name": Break(_all(_trtllm(), _set("serving.model.servedName", "llama")), "serving.model.servedName"),
    "serving.trtllm-efa-image": Break(_all(_trtllm(), lambda v: v["serving"]["engine"].pop("efaImage")), "serving.engine.efaImage"),
    "serving.trtllm-no-data-parallel": Break(
        _all(_trtllm(), _set("serving.decode.dataParallel", 2), _set("serving.decode.replicas", 2)), "serving.decode.dataParallel"
    ),
    "serving.trtllm-multinode-needs-efa": Break(
        _all(_trtllm(), _pools(efa=False), _pool(0, nodes=2), _set("serving.prefill.tensorParallel", 16), _set("serving.prefill.replicas", 1),
             _set("serving.kvTransfer", {"backend": "UCX"})),
        "serving.prefill.tensorParallel",
    ),
    "serving.model-cache-read-write-many": Break(_set("serving.modelCache", {"kind": "pvc"}), "serving.modelCache.storageClass"),
    "serving.autoscaling-not-under-grove": Break(
        _all(_set("platform.workloadApi", "grove"), _set("serving.decode.autoscaling", {"enabled": True})),
        "serving.decode.autoscaling.enabled",
    ),
    "serving.autoscaling-needs-keda": Break(
        _all(_set("platform.keda.enabled", False), _set("serving.decode.autoscaling", {"enabled": False})),
        "serving.prefill.autoscaling.enabled",
    ),
    "serving.max-replicas-fit-pools": Break(_set("serving.decode.autoscaling", {"maxReplicas": 6}), "serving.decode.autoscaling.maxReplicas"),
    # platform
    "platform.kai-enabled": Break(_set("platform.kai.enabled", False), "platform.kai.enabled"),
    "platform.lws-for-workload-api": Break(_set("platform.lws.enabled", False), "platform.lws.enabled"),
    "platform.grove-for-workload-api": Break(
        _all(_set("platform.workloadApi", "grove"), _set("platform.grove.enabled", False)), "platform.grove.enabled"
    ),
    "platform.kai-queue-parent-differs": Break(_set("platform.kai.queue", {"name": "disagg"}), "platform.kai.queue.name"),
    "platform.kai-queue-not-kai-default": Break(_set("platform.kai.queue", {"name": "default-queue"}), "platform.kai.queue.name"),
    "platform.kai-quota-covers-roles": Break(_set("platform.kai.queue", {"gpuQuota": 8}), "platform.kai.queue.gpuQuota"),
    "platform.slo-on-bucket-bound": Break(_set("platform.monitoring.slo", {"ttftSeconds": 3.0}), "platform.monitoring.slo.ttftSeconds"),
    "platform.amp-needs-monitoring": Break(
        _all(_set("platform.monitoring", {"enabled": False, "amp": {"enabled": True}}),
             _set("serving.prefill.autoscaling", {"enabled": False}), _set("serving.decode.autoscaling", {"enabled": False})),
        "platform.monitoring.amp.enabled",
    ),
    "platform.network-operator-pools-exist": Break(
        _set("platform.networkOperator", {"enabled": True, "pools": ["connectx"]}), "platform.networkOperator.pools[0]"
    ),
    "platform.network-operator-not-on-efa": Break(
        _set("platform.networkOperator", {"enabled": True, "pools": ["prefill"]}), "platform.networkOperator.pools[0]"
    ),
    "platform.network-operator-targets-nodes": Break(_set("platform.networkOperator", {"enabled": True}), "platform.networkOperator.enabled"),
    "platform.gpu-operator-enabled": Break(_set("platform.gpuOperator.enabled", False), "platform.gpuOperator.enabled"),
    "platform.efa-device-plugin-enabled": Break(_set("platform.efaDevicePlugin.enabled", False), "platform.efaDevicePlugin.enabled"),
    # disagg:nodeProvisioning
    "karpenter.no-reservation-group": Break(
        _all(_set("nodeProvisioning", "karpenter"), _pool(0, capacity={"type": "capacityReservation", "reservationResourceGroupArn": GROUP})),
        "gpuPools[0].capacity.reservationResourceGroupArn",
    ),
    "karpenter.one-node-repair": Break(_all(_set("nodeProvisioning", "karpenter"), _pool(1, nodeRepair=False)), "gpuPools[1].nodeRepair"),
    "auto-mode.on-demand-only": Break(_auto_mode(_pool(0, capacity={"type": "capacityBlock", "reservationId": CR})), "gpuPools[0].capacity.type"),
    "auto-mode.no-placement-group": Break(_auto_mode(_pool(0, placementGroupName="my-pg")), "gpuPools[0].placementGroupName"),
    "auto-mode.no-nvme-cache": Break(_auto_mode(_pool(0, nvmeCache=True)), "gpuPools[0].nvmeCache"),
    "auto-mode.no-ami-pin": Break(_auto_mode(_pool(0, amiReleaseVersion="1.35.6-20260724")), "gpuPools[0].amiReleaseVersion"),
    "auto-mode.no-root-volume": Break(_auto_mode(_pool(0, rootVolumeGb=300)), "gpuPools[0].rootVolumeGb"),
    "auto-mode.no-nvme-model-cache": Break(_auto_mode(_set("serving.modelCache", {"kind": "nvme"})), "serving.modelCache.kind"),
    "auto-mode.no-gpu-operator": Break(_auto_mode(_set("platform.gpuOperator.enabled", True)), "platform.gpuOperator.enabled"),
    "auto-mode.no-mig": Break(_auto_mode(_set("platform.gpuOperator.migManager", True)), "platform.gpuOperator.migManager"),
    "auto-mode.no-efa-device-plugin": Break(_auto_mode(_set("platform.efaDevicePlugin.enabled", True)), "platform.efaDevicePlugin.enabled"),
    # deploy stage (stacks/preflight.py): config-only checks a real preview runs before it creates anything
    "cluster.public-cidr-not-documentation-range": Break(_set("cluster.publicAccessCidrs", ["198.51.100.0/24"]), "cluster.publicAccessCidrs[0]"),
    "cluster.public-cidr-not-open": Break(_set("cluster.publicAccessCidrs", ["0.0.0.0/0"]), "cluster.publicAccessCidrs[0]"),
    "serving.efa-image-not-placeholder": Break(
        _set("serving.engine.efaImage", "123456789012.dkr.ecr.us-east-1.amazonaws.com/disagg/vllm-efa@sha256:" + "0" * 64),
        "serving.engine.efaImage",
    ),
}


def problems(values: dict, **context) -> list:
    """Every problem of a config: what parse refuses, else what the deploy-stage rules find."""
    try:
        cfg = parse(values, stack="t", **context)
    except ConfigError as err:
        return err.issues
    return check(cfg, stage="deploy")


@pytest.fixture
def no_nvme_type(monkeypatch):
    monkeypatch.setitem(CATALOG, NO_NVME, dataclasses.replace(CATALOG["p5.48xlarge"], name=NO_NVME, nvme_disks=0, nvme_gb=0))


def test_the_clean_config_breaks_no_rule():
    assert problems(copy.deepcopy(CLEAN)) == []


def test_every_rule_id_has_a_breaking_fixture_and_every_fixture_a_rule():
    ids = set(registry())
    assert not ids - set(BREAKS), f"rules without a fixture in BREAKS: {sorted(ids - set(BREAKS))}"
    assert not set(BREAKS) - ids, f"fixtures of rules that are not registered: {sorted(set(BREAKS) - ids)}"


@pytest.mark.parametrize("rule_id", sorted(BREAKS))
def test_the_fixture_breaks_its_rule_and_nothing_else(rule_id, request):
    b = BREAKS[rule_id]
    if b.catalog:
        request.getfixturevalue("no_nvme_type")
    values = copy.deepcopy(CLEAN)
    b.change(values)
    found = problems(values, **b.context)
    shown = [f"[{i.rule}] {i}" for i in found]
    assert f"disagg:{b.key}" in [i.key for i in found if i.rule == rule_id], shown
    assert {i.rule for i in found} == {rule_id}, f"the fixture of {rule_id} breaks more than its rule: {shown}"
    for i in found:
        assert i.problem and i.fix, i


def _normal(key: str) -> str:
    """`gpuPools[1].efa` -> `gpuPools[].efa`, `serving.decode.replicas` -> `serving.<role>.replicas`, a trailing
    list index dropped (`availabilityZones[1]` is about `availabilityZones`)."""
    key = re.sub(r"\[\d+\]", "[]", key.removeprefix("disagg:")).removesuffix("[]")
    return re.sub(r"^serving\.(prefill|decode)\.", "serving.<role>.", key)


@pytest.mark.parametrize("rule_id", sorted(BREAKS))
def test_the_problem_names_a_key_its_rule_is_about(rule_id):
    assert _normal(BREAKS[rule_id].key) in registry()[rule_id].keys


def _resolves(path: str) -> bool:
    current: Any = StackConfig
    for part in path.replace("<role>", "prefill").replace("[]", "").split("."):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        found = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if found is None:
            return False
        model = _model_in(found.annotation, __import__("typing"))
        current = model if model is not None else found.annotation
    return True


def test_every_rule_names_keys_of_the_config_and_says_what_must_hold():
    for r in registry().values():
        assert r.summary, r.id
        for key in r.keys:
            assert _resolves(key), f"{r.id}: {key} is not a key of the config"
