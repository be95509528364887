"""Custom resources of the platform: KAI queues and Topology, Grove's ClusterTopologyBinding, NicClusterPolicy."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.builders import platform_values as pv
from components.builders.addons import ADDON_KEYS, addon_specs
from components.builders.platform_objects import (
    AWS_TOPOLOGY,
    NIC_CLUSTER_POLICY_NAME,
    cluster_topology_binding,
    kai_queues,
    kai_topology,
    nic_cluster_policy,
    platform_objects,
)
from facts.conventions import POOL_LABEL
from stacks.aws_args import pool_labels as gpu_pool_labels
from stacks.config import parse
from stacks.plan import plan
from stacks.platform_args import platform_args, serving_gpu_quota
from facts.versions import pin
from tests.conformance.test_manifests import CRD_ENV, _strict
from tests.conftest import BASE


def cfg_of(**platform):
    v = copy.deepcopy(BASE)
    v["platform"] = platform
    return parse(v, stack="t")


def connectx_cfg(**network_operator):
    v = copy.deepcopy(BASE)
    for p in v["gpuPools"]:
        p["instanceType"] = "g6e.12xlarge"
        p["efa"] = False
    v["gpuPools"][1]["taints"] = [{"key": "example.com/dedicated", "value": "x", "effect": "NoSchedule"}]
    v["serving"] = {
        "model": {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"},
        "prefill": {"tensorParallel": 1, "replicas": 1},
        "decode": {"tensorParallel": 1, "replicas": 1},
    }
    v["platform"] = {"networkOperator": {"enabled": True, **network_operator}}
    return parse(v, stack="t")


def args_of(cfg):
    return platform_args(cfg, stack="t")


def enabled(cfg) -> set[str]:
    return {s.key for s in addon_specs(args_of(cfg))}


# --- KAI queues -------------------------------------------------------------------------------------------------------
def test_serving_queue_quota_is_every_gpu_of_the_pools():
    cfg = cfg_of()
    _, leaf = kai_queues(args_of(cfg))
    assert plan(cfg).gpus_provisioned == 16  # 2 x p5.48xlarge
    assert leaf["spec"]["resources"]["gpu"]["quota"] == 16
    assert serving_gpu_quota(cfg) == 16


def test_quota_follows_the_pools():
    v = copy.deepcopy(BASE)
    v["gpuPools"][1]["nodes"] = 3
    cfg = parse(v, stack="t")
    assert kai_queues(args_of(cfg))[1]["spec"]["resources"]["gpu"]["quota"] == 32


def test_configured_quota_wins():
    _, leaf = kai_queues(args_of(cfg_of(kai={"queue": {"gpuQuota": 24}})))
    assert leaf["spec"]["resources"]["gpu"]["quota"] == 24


def test_queue_hierarchy_and_names_come_from_config():
    parent, leaf = kai_queues(args_of(cfg_of(kai={"queue": {"name": "llm", "parentName": "team-a"}})))
    assert parent["metadata"]["name"] == "team-a" and "parentQueue" not in parent["spec"]
    assert leaf["metadata"]["name"] == "llm" and leaf["spec"]["parentQueue"] == "team-a"
    assert parent["spec"]["resources"]["gpu"]["quota"] >= leaf["spec"]["resources"]["gpu"]["quota"]


def test_cpu_and_memory_never_block_inference_pods():
    # Inference priority only uses in-quota resources; a 0 CPU/memory quota would block every serving pod.
    for q in kai_queues(args_of(cfg_of())):
        for r in ("cpu", "memory"):
            assert q["spec"]["resources"][r]["quota"] == -1


# --- topology ---------------------------------------------------------------------------------------------------------
def test_kai_topology_levels_broad_to_narrow_over_the_aws_labels():
    levels = [lvl["nodeLabel"] for lvl in kai_topology(args_of(cfg_of()))["spec"]["levels"]]
    assert levels == [
        "topology.kubernetes.io/zone",
        "topology.k8s.aws/network-node-layer-1",
        "topology.k8s.aws/network-node-layer-2",
        "topology.k8s.aws/network-node-layer-3",
        "kubernetes.io/hostname",
    ]


def test_kai_topology_name_from_config():
    assert kai_topology(args_of(cfg_of(kai={"topologyName": "p5-fabric"})))["metadata"]["name"] == "p5-fabric"


def test_cluster_topology_binding_matches_the_kai_topology_exactly():
    cfg = cfg_of(workloadApi="grove")
    topo, ctb = kai_topology(args_of(cfg)), cluster_topology_binding(args_of(cfg))
    # Grove checks drift by deep equality of [{nodeLabel: key}] against the KAI Topology's levels.
    assert topo["spec"]["levels"] == [{"nodeLabel": lvl["key"]} for lvl in ctb["spec"]["levels"]]
    binding = ctb["spec"]["schedulerTopologyBindings"]
    assert binding == [{"schedulerName": "kai-scheduler", "topologyReference": topo["metadata"]["name"]}]
    profiles = [p["name"] for p in pv.grove_values(args_of(cfg))["config"]["scheduler"]["profiles"]]
    assert binding[0]["schedulerName"] in profiles
    assert ctb["metadata"]["name"] == cfg.platform.kai.topology_name


def test_grove_domains_are_unique_valid_and_include_block():
    domains = [lvl.domain for lvl in AWS_TOPOLOGY]
    keys = [lvl.key for lvl in AWS_TOPOLOGY]
    assert len(set(domains)) == len(domains) and len(set(keys)) == len(keys)
    assert all(re.match(r"^[a-z][a-z0-9-]*$", d) for d in domains)
    assert domains[0] == "zone" and domains[-1] == "host"
    # A prefill/decode pair packs into one network block (layer-2) or rack (layer-3).
    assert {lvl.domain: lvl.key for lvl in AWS_TOPOLOGY}["block"] == "topology.k8s.aws/network-node-layer-2"


# --- which objects, after which release --------------------------------------------------------------------------------
def test_objects_of_the_default_stack():
    cfg = cfg_of()
    objs = {o.key: o for o in platform_objects(args_of(cfg), enabled(cfg))}
    kai_pdbs = {f"pdb-{app}" for app in ("kai-operator", "binder", "podgroup-controller", "queue-controller")}
    assert set(objs) == {"queue-parent", "queue-serving", "topology", "pdb-lws", *kai_pdbs}
    assert {objs[k].release for k in ("queue-parent", "queue-serving", "topology", *kai_pdbs)} == {"kai-scheduler"}
    assert objs["queue-serving"].after == ("queue-parent",)
    # Every KAI custom resource waits for KAI's webhook-readiness gate.
    assert {objs[k].gate for k in ("queue-parent", "queue-serving", "topology")} == {"kai-scheduler"}


def test_grove_adds_its_binding_after_the_kai_topology():
    cfg = cfg_of(workloadApi="grove")
    objs = {o.key: o for o in platform_objects(args_of(cfg), enabled(cfg))}
    assert objs["cluster-topology"].release == "grove"
    assert "topology" in objs["cluster-topology"].after


def test_no_binding_without_topology_aware_scheduling():
    cfg = cfg_of(workloadApi="grove", grove={"topologyAwareScheduling": False})
    assert "cluster-topology" not in {o.key for o in platform_objects(args_of(cfg), enabled(cfg))}


def test_every_object_names_an_installed_release_and_earlier_objects():
    cfg = connectx_cfg(pools=["prefill"])
    on = enabled(cfg) | {"grove"}
    seen: set[str] = set()
    for o in platform_objects(args_of(cfg), on):
        assert o.release in ADDON_KEYS and o.release in on
        assert set(o.after) <= seen
        seen.add(o.key)
    assert "nic-cluster-policy" in seen


# --- NicClusterPolicy (no reference CRD in $DISAGG_CRD_DIR: checked here against the v26.4.1 CRD's fields) -----------
# Field names of mellanox.com/v1alpha1 NicClusterPolicy at network-operator v26.4.1 (config/crd/bases/
# mellanox.com_nicclusterpolicies.yaml): spec keys, rdmaSharedDevicePlugin keys (image required).
NCP_SPEC_FIELDS = {
    "deploymentNodeAffinity", "deploymentTolerations", "docaTelemetryService", "global", "ibKubernetes",
    "nicConfigurationOperator", "nicFeatureDiscovery", "nodeAffinity", "nvIpam", "ofedDriver",
    "rdmaSharedDevicePlugin", "secondaryNetwork", "spectrumXOperator", "sriovDevicePlugin", "tolerations",
}
RDMA_FIELDS = {"config", "containerResources", "image", "imagePullSecrets", "repository", "useCdi", "version"}
TOLERATION_FIELDS = {"effect", "key", "operator", "tolerationSeconds", "value"}


def test_nic_cluster_policy_shape():
    ncp = nic_cluster_policy(args_of(connectx_cfg(pools=["prefill", "decode"])))
    assert ncp["apiVersion"] == "mellanox.com/v1alpha1" and ncp["kind"] == "NicClusterPolicy"
    assert ncp["metadata"] == {"name": NIC_CLUSTER_POLICY_NAME} == {"name": "nic-cluster-policy"}
    spec = ncp["spec"]
    assert set(spec) <= NCP_SPEC_FIELDS
    rdma = spec["rdmaSharedDevicePlugin"]
    assert set(rdma) <= RDMA_FIELDS and rdma["image"]
    assert f"{rdma['repository']}/{rdma['image']}" == pin("rdma-shared-device-plugin").image
    assert all(set(t) <= TOLERATION_FIELDS for t in spec["tolerations"])
    terms = spec["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert all(set(e) == {"key", "operator", "values"} for t in terms for e in t["matchExpressions"])


def test_rdma_plugin_image_moves_with_the_network_operator_release():
    assert pin("rdma-shared-device-plugin").version == f"network-operator-v{pin('network-operator').version}"


def test_rdma_plugin_config_is_json_for_connectx_only():
    cfg = connectx_cfg(pools=["prefill"], rdmaSharedDeviceName="rdma_ib")
    conf = json.loads(nic_cluster_policy(args_of(cfg))["spec"]["rdmaSharedDevicePlugin"]["config"])
    (entry,) = conf["configList"]
    assert entry["resourceName"] == "rdma_ib"
    assert entry["selectors"] == {"vendors": ["15b3"]}  # Mellanox only; EFA (1d0f) is never claimed


def match(term: dict, labels: dict) -> bool:
    return all(labels.get(e["key"]) in e["values"] for e in term["matchExpressions"])


def test_nic_cluster_policy_targets_the_configured_pools_and_external_nodes():
    cfg = connectx_cfg(pools=["decode"], nodeSelector={"example.com/fabric": "roce"})
    terms = nic_cluster_policy(args_of(cfg))["spec"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    selected = {p.name for p in cfg.gpu_pools if any(match(t, gpu_pool_labels(p)) for t in terms)}
    assert selected == {"decode"}
    assert any(match(t, {"example.com/fabric": "roce"}) for t in terms)
    assert not any(match(t, {POOL_LABEL: "system"}) for t in terms)


# --- against the upstream CRDs (the conformance test checks the rendered ones too) -------------------------------------
def crd_schemas_of(*files: str) -> dict[tuple[str, str], dict]:
    """The strict schemas of a few CRD files (the conformance test loads them all, which is slow)."""
    out = {}
    for f in files:
        crd = yaml.safe_load((Path(os.environ[CRD_ENV]) / f).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for ver in crd["spec"]["versions"]:
            schema = _strict(ver["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}
            out[(f"{group}/{ver['name']}", kind)] = schema
    return out


@pytest.mark.skipif(not os.environ.get(CRD_ENV), reason=f"set {CRD_ENV} to the upstream CRDs")
@pytest.mark.parametrize("platform", [{}, {"workloadApi": "grove"}, {"kai": {"queue": {"gpuQuota": 16, "name": "q"}, "topologyName": "t"}}])
def test_objects_validate_against_upstream_crds(platform):
    cfg = cfg_of(**platform)
    schemas = crd_schemas_of("queues.scheduling.run.ai.yaml", "topologies.kai.scheduler.yaml", "clustertopologybindings.grove.io.yaml")
    docs = [*kai_queues(args_of(cfg)), kai_topology(args_of(cfg)), cluster_topology_binding(args_of(cfg))]
    for doc in docs:
        schema = schemas[(doc["apiVersion"], doc["kind"])]
        errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
        assert not errors, (doc["kind"], errors)


# --- topology profiles: never a level a pool's nodes lack -------------------------------------------------------------
from components.builders.platform_objects import platform_packs, role_packs, topology_levels, topology_profiles  # noqa: E402
from components.platform import object_options  # noqa: E402
from facts import catalog  # noqa: E402


def pools_of(prefill: str, decode: str, **platform):
    v = copy.deepcopy(BASE)
    v["gpuPools"][0]["instanceType"] = prefill
    v["gpuPools"][1]["instanceType"] = decode
    for p in v["gpuPools"]:
        p["efa"] = False
    v["serving"] = {
        "model": {"id": "Qwen/Qwen3-8B", "parametersBillions": 8.2, "weightDtype": "bf16"},
        "prefill": {"tensorParallel": 1, "replicas": 1},
        "decode": {"tensorParallel": 1, "replicas": 1},
        "kvTransfer": {"backend": "UCX"},
    }
    v["platform"] = platform
    return parse(v, stack="t")


def test_catalog_says_which_types_carry_topology_labels():
    assert catalog.instance_type("p5.48xlarge").network_topology_layers == 3
    assert catalog.instance_type("g6e.xlarge").network_topology_layers == 3
    assert catalog.instance_type("g5.12xlarge").network_topology_layers == 0
    assert "ec2-instance-topology-prerequisites" in catalog.instance_type("p5.48xlarge").spec_source
    with pytest.raises(ValueError, match="network_topology_layers"):
        catalog.InstanceType(**{**catalog.instance_type("p5.48xlarge").__dict__, "network_topology_layers": 2})


def test_three_layer_pools_pack_on_the_block():
    packs = platform_packs(args_of(cfg_of()))
    assert {p.topology_name for p in packs.values()} == {"aws-network"}
    assert {(p.domain, p.node_label) for p in packs.values()} == {("block", "topology.k8s.aws/network-node-layer-2")}


def test_pools_without_topology_labels_get_zone_and_host_only():
    cfg = pools_of("g5.12xlarge", "g5.12xlarge", workloadApi="grove")
    packs = platform_packs(args_of(cfg))
    assert {(p.topology_name, p.domain, p.node_label) for p in packs.values()} == {("aws-network-zonal", "zone", "topology.kubernetes.io/zone")}
    (topo,) = [o.manifest for o in platform_objects(args_of(cfg), enabled(cfg)) if o.manifest["kind"] == "Topology"]
    assert [lv["nodeLabel"] for lv in topo["spec"]["levels"]] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_grove_shares_the_topology_every_pool_satisfies_lws_picks_per_role():
    grove = platform_packs(args_of(pools_of("p5.48xlarge", "g5.12xlarge", workloadApi="grove")))
    assert grove["prefill"] == grove["decode"] and grove["prefill"].domain == "zone"
    lws = platform_packs(args_of(pools_of("p5.48xlarge", "g5.12xlarge", workloadApi="lws")))
    assert (lws["prefill"].domain, lws["decode"].domain) == ("block", "zone")
    assert topology_profiles(args_of(pools_of("p5.48xlarge", "g5.12xlarge"))) == [3, 0]


@pytest.mark.parametrize("workload_api", ["lws", "grove"])
def test_packs_of_the_config_pools_are_the_platforms(workload_api):
    # Serving's fallback facts read the packs off the config's pools; the Platform reads them off its args.
    cfg = pools_of("p5.48xlarge", "g5.12xlarge", workloadApi=workload_api)
    from_config = role_packs(cfg.gpu_pools, topology=cfg.platform.kai.topology_name, workload_api=workload_api)
    assert from_config == platform_packs(args_of(cfg))
    assert len({p.layers for p in from_config.values()}) == (1 if workload_api == "grove" else 2)


def test_four_layer_types_get_their_own_topology(monkeypatch):
    # No 4-layer type is in the catalog yet (p6-b200/p6-b300 are): a stand-in entry exercises the profile.
    p5 = catalog.instance_type("p5.48xlarge")
    monkeypatch.setitem(catalog.CATALOG, "p5.48xlarge", catalog.InstanceType(**{**p5.__dict__, "network_topology_layers": 4}))
    packs = platform_packs(args_of(cfg_of()))
    assert {p.topology_name for p in packs.values()} == {"aws-network-4layer"}
    assert packs["prefill"].node_label == "topology.k8s.aws/network-node-layer-3"  # one above the instance's switch
    keys = [lv.key for lv in topology_levels(4)]
    assert keys[-2] == "topology.k8s.aws/network-node-layer-4" and keys[0] == "topology.kubernetes.io/zone"


def test_topology_levels_are_immutable_so_a_change_recreates_it_old_one_first():
    cfg = cfg_of()
    (topo,) = [o for o in platform_objects(args_of(cfg), enabled(cfg)) if o.manifest["kind"] == "Topology"]
    assert topo.key == "topology"  # the three-layer Topology keeps its resource name (URN)
    opts = object_options(topo, [])
    assert opts.replace_on_changes == ["spec"] and opts.delete_before_replace is True
    (queue,) = [o for o in platform_objects(args_of(cfg), enabled(cfg)) if o.key == "queue-parent"]
    assert object_options(queue, []).replace_on_changes is None


# --- queue names -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "queue,key,fragment",
    [
        ({"name": "same", "parentName": "same"}, "platform.kai.queue.name", "same name"),
        ({"name": "default-queue"}, "platform.kai.queue.name", "KAI's chart creates itself"),
        ({"parentName": "default-parent-queue"}, "platform.kai.queue.parentName", "KAI's chart creates itself"),
    ],
)
def test_queue_names_are_validated(queue, key, fragment):
    from stacks.config import ConfigError

    with pytest.raises(ConfigError) as err:
        cfg_of(kai={"queue": queue})
    assert any(i.key == f"disagg:{key}" and fragment in i.problem for i in err.value.issues), err.value
