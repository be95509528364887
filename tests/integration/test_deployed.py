"""Post-deploy checks that only a real AWS deploy can prove. Skipped unless pointed at one:

    pulumi stack output kubeconfig --show-secrets -s dev > /tmp/kubeconfig
    DISAGG_INTEGRATION_KUBECONFIG=/tmp/kubeconfig DISAGG_INTEGRATION_STACK=dev \\
        .venv/bin/python -m pytest -m integration tests/integration

Expectations come from the same plan the render uses (stacks/plan.py), so a deploy is checked against
what its own config asked for. Needs kubectl and the AWS CLI (for the kubeconfig's token) on PATH.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from facts.conventions import POOL_LABEL
from components.builders.serving.common import role_selector, selector_args, served_model_name, workload_name
from stacks.serving_args import serving_spec
from facts.conventions import ROLES, ROUTER
from stacks.plan import plan
from tooling.render import ROOT, load

from tests.integration.deployed import KUBECONFIG, MARKS, STACK

pytestmark = MARKS


def kubectl(*args: str, timeout: int = 120) -> str:
    proc = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def kjson(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


def engine_pods(cfg) -> list[dict]:
    """Every prefill and decode pod (workers of multi-node groups included), found by the builders' selectors."""
    return [pod for r in ROLES for pod in kjson("get", "pods", "-n", cfg.namespace, "-l", ",".join(selector_args(role_selector(serving_spec(cfg), r))))["items"]]


@pytest.fixture(scope="module")
def deployed():
    _, _, cfg = load(ROOT / f"Pulumi.{STACK}.yaml", STACK)
    return cfg, plan(cfg)


def test_gpu_nodes_joined_with_gpus_and_efa(deployed):
    cfg, p = deployed
    for pool in p.pools:
        nodes = kjson("get", "nodes", "-l", f"{POOL_LABEL}={pool.name}")["items"]
        assert len(nodes) == pool.nodes, f"pool {pool.name}: {len(nodes)} nodes joined, {pool.nodes} expected"
        for n in nodes:
            name = n["metadata"]["name"]
            ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}.get("Ready")
            assert ready == "True", f"{name} is not Ready"
            alloc = n["status"]["allocatable"]
            assert int(alloc.get("nvidia.com/gpu", 0)) == pool.gpus_per_node, f"{name}: GPUs {alloc.get('nvidia.com/gpu')}"
            if pool.efa_interfaces_per_node:
                assert int(alloc.get("vpc.amazonaws.com/efa", 0)) == pool.efa_interfaces_per_node, f"{name}: EFA {alloc.get('vpc.amazonaws.com/efa')}"
            assert n["metadata"]["labels"]["topology.kubernetes.io/zone"] in pool.availability_zones


def test_serving_queue_has_gpu_quota(deployed):
    cfg, p = deployed
    queue = kjson("get", "queues.scheduling.run.ai", cfg.platform.kai.queue.name)
    assert queue["spec"]["resources"]["gpu"]["quota"] >= p.gpus_requested


def test_every_gpu_pod_running_on_its_role_pool(deployed):
    cfg, p = deployed
    for role in p.roles:
        mine = kjson("get", "pods", "-n", cfg.namespace, "-l", ",".join(selector_args(role_selector(serving_spec(cfg), role.role))))["items"]
        assert len(mine) == role.replicas * role.pods_per_replica, f"{role.role}: {len(mine)} pods"
        for pod in mine:
            assert pod["status"]["phase"] == "Running", f"{pod['metadata']['name']} is {pod['status']['phase']}"
            assert pod["spec"]["schedulerName"] == "kai-scheduler"


def test_efa_provider_visible_inside_gpu_pods(deployed):
    """The NIXL LIBFABRIC backend silently falls back to TCP without EFA in the pod: check the provider is there."""
    cfg, p = deployed
    if p.kv_backend != "LIBFABRIC":
        pytest.skip("this stack's KV transfer does not run over EFA")
    for pod in engine_pods(cfg)[:2]:
        out = kubectl("exec", "-n", cfg.namespace, pod["metadata"]["name"], "--", "sh", "-c", "fi_info -p efa -t FI_EP_RDM | head -5")
        assert "provider: efa" in out, f"{pod['metadata']['name']}: no EFA provider: {out}"


def test_router_serves_the_model(deployed):
    cfg, p = deployed
    # The client Service by its name (the router's headless metrics Service carries the same component label).
    name, port = workload_name(serving_spec(cfg), ROUTER), cfg.serving.router.port
    body = kubectl("get", "--raw", f"/api/v1/namespaces/{cfg.namespace}/services/{name}:{port}/proxy/v1/models")
    served = served_model_name(serving_spec(cfg))
    assert served in body, f"router does not list {served}: {body[:500]}"
