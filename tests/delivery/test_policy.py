"""The policy pack's rules over resource records: a stack that follows every convention, then one break at a time.

Records have the shape the render writes to resources.json (camelCase inputs, dependencies by URN, provider
as "urn::id"), so the same rules run in `pulumi preview --policy-pack policy` and over the offline render.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from ops import taggable
from policy import rules
from tests.conftest import ROOT

TAGS = {"disagg.io/stack": "prod", "disagg.io/deployment": "prod", "ManagedBy": "pulumi"}
EFA_SG = "sg-0efa0000000000001"


def urn(stack: str, rtype: str, name: str) -> str:
    return f"urn:pulumi:{stack}::disagg::{rtype}::{name}"


class Stack:
    """A small stack that passes every policy: the p5 layout (EFA) or the dev layout (no EFA)."""

    def __init__(self, stack: str = "prod", *, efa: bool = True):
        self.stack = stack
        self.records: list[dict] = []
        tags = {**TAGS, "disagg.io/stack": stack, "disagg.io/deployment": stack}
        self.provider = self.add("pulumi:providers:aws", f"{stack}-aws", {"region": "us-east-1", "defaultTags": json.dumps({"tags": tags})}, aws=False)
        self.add("aws:ec2/vpc:Vpc", f"{stack}-vpc", {"cidrBlock": "10.0.0.0/16"})
        for az in "ab":
            self.add("aws:ec2/subnet:Subnet", f"private-{az}", {"availabilityZone": f"us-east-1{az}", "tags": {"kubernetes.io/role/internal-elb": "1"}})
            self.add("aws:ec2/subnet:Subnet", f"public-{az}", {"availabilityZone": f"us-east-1{az}", "mapPublicIpOnLaunch": True, "tags": {"kubernetes.io/role/elb": "1"}})
        self.add("aws:ec2/securityGroup:SecurityGroup", "efa", {"description": "EFA"})
        rule = {"securityGroupId": EFA_SG, "referencedSecurityGroupId": EFA_SG, "ipProtocol": "-1"}
        self.add(rules.SG_INGRESS, "efa-self-in", dict(rule))
        self.add(rules.SG_EGRESS, "efa-self-out", dict(rule))
        for role in ("prefill", "decode"):
            nics = [
                {"deviceIndex": 0 if i == 0 else 1, "networkCardIndex": i, "interfaceType": "efa" if i == 0 else "efa-only", "securityGroups": [EFA_SG]}
                for i in range(4)
            ] if efa else [{"deviceIndex": 0, "securityGroups": ["sg-node"]}]
            lt = self.add(rules.LAUNCH_TEMPLATE, f"{role}-lt", {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}, "networkInterfaces": nics})
            self.add(
                "eks:index:ManagedNodeGroup", f"{stack}-{role}",
                {
                    "subnetIds": ["subnet-a"], "instanceTypes": ["p5.48xlarge" if efa else "g6e.xlarge"],
                    "labels": {rules.POOL_LABEL: role, rules.ROLE_LABEL: role},
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
                    "launchTemplate": {"id": f"lt-{role}", "version": "1"},
                },
                deps=[self.urn("aws:ec2/subnet:Subnet", "private-a"), lt["urn"]], aws=False,
            )
        self.add("eks:index:ManagedNodeGroup", f"{stack}-system", {"subnetIds": ["a", "b"], "instanceTypes": ["m7i.xlarge"]},
                 deps=[self.urn("aws:ec2/subnet:Subnet", "private-a"), self.urn("aws:ec2/subnet:Subnet", "private-b")], aws=False)
        self.add("eks:index:Cluster", f"{stack}-eks", {"name": stack, "endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]}, aws=False)
        queue = {rules.QUEUE_LABEL: "serving"}
        for role, gpus in (("prefill", 4), ("decode", 2)):
            limits = {"nvidia.com/gpu": gpus, **({"vpc.amazonaws.com/efa": gpus * 4} if efa else {})}
            self.add(
                "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet", role,
                {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": role, "namespace": "serving", "labels": dict(queue)},
                 "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 1, "workerTemplate": {
                     "metadata": {"labels": {"app": role, **queue}},
                     "spec": {"schedulerName": "kai-scheduler", "nodeSelector": {rules.POOL_LABEL: role},
                              "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                              "containers": [{"name": "vllm", "image": "vllm", "resources": {"limits": dict(limits), "requests": dict(limits)},
                                              "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                                                      {"name": "MAX_NUM_BATCHED_TOKENS", "value": "8192"},
                                                      {"name": "VLLM_KV_TRANSFER_CONFIG", "value": "{\"kv_connector\": \"NixlConnector\"}"}],
                                              "args": ["--model", "nvidia/Llama-3.3-70B-Instruct-FP8"]}]}}}}},
                aws=False,
            )
        self.add(
            "kubernetes:grove.io/v1alpha1:PodCliqueSet", "disagg",
            {"apiVersion": "grove.io/v1alpha1", "kind": "PodCliqueSet", "metadata": {"name": "disagg", "namespace": "serving"},
             "spec": {"template": {"cliques": [
                 {"name": "decode", "labels": dict(queue), "spec": {"roleName": "decode", "replicas": 1, "podSpec": {
                     "schedulerName": "kai-scheduler", "nodeSelector": {rules.ROLE_LABEL: "decode"},
                     "containers": [{"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": 8, **({"vpc.amazonaws.com/efa": 32} if efa else {})}}}]}}},
                 {"name": "router", "spec": {"roleName": "router", "replicas": 2, "podSpec": {"containers": [{"name": "router", "env": [{"name": "PORT", "value": "8000"}]}]}}},
             ]}}},
            aws=False,
        )
        self.add("kubernetes:apps/v1:Deployment", "router",
                 {"kind": "Deployment", "metadata": {"name": "router"}, "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "router", "env": [{"name": "LOG_LEVEL", "value": "info"}]}]}}}}, aws=False)
        self.add("kubernetes:core/v1:Secret", "hf", {"kind": "Secret", "stringData": {"token": rules.SECRET_PLACEHOLDER}}, aws=False)
        self.add("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "node-ecr", {"role": "node", "policyArn": "arn:aws:iam::aws:policy/x"})

    def urn(self, rtype: str, name: str) -> str:
        return urn(self.stack, rtype, name)

    def add(self, rtype: str, name: str, inputs: dict, *, deps: list[str] | None = None, aws: bool = True) -> dict:
        rec = {
            "type": rtype, "name": name, "urn": self.urn(rtype, name), "parent": None,
            "provider": f"{self.records[0]['urn']}::{self.records[0]['name']}-id" if aws and self.records else None,
            "custom": True, "remote": rtype.startswith("eks:"), "dependencies": deps or [], "inputs": inputs,
        }
        self.records.append(rec)
        return rec

    def get(self, name: str) -> dict:
        return next(r for r in self.records if r["name"] == name)

    def check(self) -> list[rules.Violation]:
        return rules.evaluate(self.records, self.stack)


def policies_hit(violations: list[rules.Violation]) -> set[str]:
    return {v.policy for v in violations}


@pytest.mark.parametrize("stack,efa", [("prod", True), ("dev", False), ("pr-7", False)])
def test_a_stack_following_the_conventions_passes(stack, efa):
    s = Stack(stack, efa=efa)
    assert s.check() == []


def worker(s: Stack, role: str = "decode") -> dict:
    return s.get(role)["inputs"]["spec"]["leaderWorkerTemplate"]["workerTemplate"]


def container(s: Stack, role: str = "decode") -> dict:
    return worker(s, role)["spec"]["containers"][0]


def _set_lt_tokens(s, value):
    s.get("decode-lt")["inputs"]["metadataOptions"]["httpTokens"] = value


BREAKS = {
    "imdsv1 allowed": ("launch-template-imdsv2", lambda s: _set_lt_tokens(s, "optional")),
    "no metadata options": ("launch-template-imdsv2", lambda s: s.get("prefill-lt")["inputs"].pop("metadataOptions")),
    "GPU pool in a public subnet": (
        "gpu-nodes-private-subnets",
        lambda s: s.get("prod-decode").__setitem__("dependencies", [s.urn("aws:ec2/subnet:Subnet", "public-a"), s.urn(rules.LAUNCH_TEMPLATE, "decode-lt")]),
    ),
    "GPU subnet maps public IPs": ("gpu-nodes-private-subnets", lambda s: s.get("private-a")["inputs"].__setitem__("mapPublicIpOnLaunch", True)),
    "GPU subnet not tagged for internal LBs": ("gpu-nodes-private-subnets", lambda s: s.get("private-a")["inputs"]["tags"].pop("kubernetes.io/role/internal-elb")),
    "public IP on a GPU NIC": ("gpu-nodes-private-subnets", lambda s: s.get("prefill-lt")["inputs"]["networkInterfaces"][0].__setitem__("associatePublicIpAddress", "true")),
    "EFA group without self egress": ("efa-security-group-self-traffic", lambda s: s.records.remove(s.get("efa-self-out"))),
    "EFA self rule on TCP only": ("efa-security-group-self-traffic", lambda s: s.get("efa-self-in")["inputs"].__setitem__("ipProtocol", "tcp")),
    "EFA rule from another group": ("efa-security-group-self-traffic", lambda s: s.get("efa-self-in")["inputs"].__setitem__("referencedSecurityGroupId", "sg-other")),
    "decode in another AZ": (
        "prefill-decode-one-az",
        lambda s: s.get("prod-decode").__setitem__("dependencies", [s.urn("aws:ec2/subnet:Subnet", "private-b"), s.urn(rules.LAUNCH_TEMPLATE, "decode-lt")]),
    ),
    "GPU pod without EFA": ("gpu-pod-scheduling", lambda s: [container(s)["resources"][k].pop("vpc.amazonaws.com/efa") for k in ("limits", "requests")]),
    "GPU pod on the default scheduler": ("gpu-pod-scheduling", lambda s: worker(s)["spec"].pop("schedulerName")),
    "GPU pod without a queue": (
        "gpu-pod-scheduling",
        lambda s: (worker(s)["metadata"]["labels"].pop(rules.QUEUE_LABEL), s.get("decode")["inputs"]["metadata"]["labels"].pop(rules.QUEUE_LABEL)),
    ),
    "GPUs only in requests": ("gpu-pod-scheduling", lambda s: container(s)["resources"]["limits"].pop("nvidia.com/gpu")),
    "GPU requests differ from limits": ("gpu-pod-scheduling", lambda s: container(s)["resources"]["requests"].__setitem__("nvidia.com/gpu", 1)),
    "clique pinned to decode nodes without GPUs": (
        "gpu-pod-scheduling",
        lambda s: s.get("disagg")["inputs"]["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0].pop("resources"),
    ),
    "Pulumi secret in an env literal": ("no-secret-env-literals", lambda s: container(s)["env"].append({"name": "HF_TOKEN_COPY", "value": rules.SECRET_PLACEHOLDER})),
    "token pasted in env": ("no-secret-env-literals", lambda s: container(s)["env"].__setitem__(0, {"name": "HF_TOKEN", "value": "hf_" + "a" * 34})),
    "secret by name, literal value": ("no-secret-env-literals", lambda s: s.get("router")["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "ROUTER_API_KEY", "value": "abc"})),
    "secret in args": ("no-secret-env-literals", lambda s: container(s)["args"].extend(["--hf-token", rules.SECRET_PLACEHOLDER])),
    "prod endpoint open to the world": ("prod-cluster-endpoint-not-public", lambda s: s.get("prod-eks")["inputs"].__setitem__("publicAccessCidrs", ["0.0.0.0/0"])),
    "prod endpoint public, CIDRs unset": ("prod-cluster-endpoint-not-public", lambda s: s.get("prod-eks")["inputs"].pop("publicAccessCidrs")),
    "provider without ManagedBy": (
        "required-tags",
        lambda s: s.get("prod-aws")["inputs"].__setitem__("defaultTags", json.dumps({"tags": {"disagg.io/stack": "prod", "disagg.io/deployment": "prod"}})),
    ),
    "resource on the default provider": ("required-tags", lambda s: s.get("prod-vpc").__setitem__("provider", None)),
    "stack tag of another stack": ("required-tags", lambda s: s.get("private-a")["inputs"]["tags"].__setitem__("disagg.io/stack", "dev")),
    "ManagedBy someone else": ("required-tags", lambda s: s.get("efa")["inputs"].__setitem__("tags", {"ManagedBy": "terraform"})),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_break_is_caught_by_its_policy_alone(case):
    policy, breaker = BREAKS[case]
    s = Stack("prod")
    breaker(s)
    found = s.check()
    assert policies_hit(found) == {policy}, [str(v) for v in found]


def test_violations_name_the_resource():
    s = Stack("prod")
    _set_lt_tokens(s, "optional")
    (v,) = s.check()
    assert v.urn == s.urn(rules.LAUNCH_TEMPLATE, "decode-lt")
    assert "httpTokens" in v.message and "'optional'" in v.message


def test_missing_defaults_flag_every_taggable_resource_but_only_those():
    s = Stack("prod")
    s.get("prod-aws")["inputs"].pop("defaultTags")
    flagged = {v.urn.rsplit("::", 1)[-1] for v in s.check() if v.policy == "required-tags"}
    assert "prod-vpc" in flagged and "decode-lt" in flagged and "efa-self-in" in flagged
    assert "node-ecr" not in flagged, "RolePolicyAttachment takes no tags"
    assert not any(n.startswith("prod-") and n not in ("prod-vpc",) for n in flagged), "eks components and providers are not AWS taggables"


def test_explicit_tags_are_enough_without_provider_defaults():
    assert rules.required_tags("aws:ec2/vpc:Vpc", {"tags": TAGS}, "prod") == []
    assert rules.required_tags("aws:ec2/vpc:Vpc", {}, "prod", default_tags=TAGS) == []
    assert rules.required_tags("aws:ec2/vpc:Vpc", {}, "prod")
    assert rules.required_tags("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {}, "prod") == []


def test_open_endpoint_is_allowed_outside_prod_and_private_endpoint_in_prod():
    eks = {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}
    assert rules.prod_endpoint_not_public("eks:index:Cluster", eks, "dev") == []
    assert rules.prod_endpoint_not_public("eks:index:Cluster", eks, "prod")
    assert rules.prod_endpoint_not_public("eks:index:Cluster", {"endpointPublicAccess": False}, "prod") == []
    assert rules.prod_endpoint_not_public("eks:index:Cluster", {}, "prod"), "pulumi-eks defaults to a public endpoint"
    assert rules.prod_endpoint_not_public("aws:eks/cluster:Cluster", {"vpcConfig": {"publicAccessCidrs": ["::/0"]}}, "org/prod")


def test_efa_requirement_follows_the_pool_a_pod_is_pinned_to():
    gpu_pools = {"prefill": True, "decode": False}
    pod = {"kind": "Pod", "metadata": {"labels": {rules.QUEUE_LABEL: "q"}},
           "spec": {"schedulerName": "kai-scheduler", "nodeSelector": {rules.POOL_LABEL: "decode"}, "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}
    assert rules.gpu_pod_requirements("kubernetes:core/v1:Pod", pod, "dev", gpu_pools=gpu_pools) == []
    pod["spec"]["nodeSelector"] = {rules.POOL_LABEL: "prefill"}
    assert any("vpc.amazonaws.com/efa" in m for m in rules.gpu_pod_requirements("kubernetes:core/v1:Pod", pod, "dev", gpu_pools=gpu_pools))
    pod["spec"]["nodeSelector"] = {}
    assert rules.gpu_pod_requirements("kubernetes:core/v1:Pod", pod, "dev", gpu_pools=gpu_pools), "unpinned: EFA expected when any pool has it"
    assert rules.gpu_pod_requirements("kubernetes:core/v1:Pod", pod, "dev", gpu_pools={"decode": False}) == []


def test_dev_layout_pods_on_efa_pools_would_fail():
    s = Stack("dev", efa=False)
    s.get("decode-lt")["inputs"]["networkInterfaces"][0]["interfaceType"] = "efa"
    s.get("decode-lt")["inputs"]["networkInterfaces"][0]["securityGroups"] = [EFA_SG]
    found = s.check()
    assert policies_hit(found) == {"gpu-pod-scheduling"}
    assert all("efa" in v.message for v in found)


def test_rules_module_is_import_safe_and_only_main_builds_the_pack():
    code = "import sys, policy.rules; assert 'pulumi_policy' not in sys.modules; assert 'pulumi' not in sys.modules; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    builders = [p.name for p in (ROOT / "policy").glob("*.py") if "PolicyPack(" in p.read_text()]
    assert builders == ["__main__.py"]
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert main.rstrip().splitlines()[-2] == 'if __name__ == "__main__":'
    assert "pulumi-policy==" in (ROOT / "policy" / "requirements.txt").read_text()


def test_taggable_list_matches_the_installed_pulumi_aws():
    committed = taggable.read_list()
    assert committed == taggable.scan(), "pulumi-aws changed: run `python -m ops taggable-types --write`"
    assert taggable.installed_version() in taggable.LIST_PATH.read_text().splitlines()[0]
    for t in ("aws:ec2/vpc:Vpc", "aws:ec2/launchTemplate:LaunchTemplate", "aws:eks/nodeGroup:NodeGroup", rules.SG_INGRESS):
        assert t in rules.TAGGABLE_AWS_TYPES
    for t in ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:ec2/route:Route"):
        assert t not in rules.TAGGABLE_AWS_TYPES


def test_offline_policy_command_fails_on_violations(tmp_path, capsys):
    from ops.__main__ import main as ops_main

    s = Stack("prod")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"stack": "prod", "resources": s.records}))
    assert ops_main(["policy", str(good)]) == 0
    s.get("prod-eks")["inputs"]["publicAccessCidrs"] = ["0.0.0.0/0"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stack": "prod", "resources": s.records}))
    assert ops_main(["policy", str(good), str(bad)]) == 1
    assert "prod-cluster-endpoint-not-public" in capsys.readouterr().out


def test_every_rendered_stack_passes_the_policy_pack(rendered):
    """The real program, rendered under mocks, satisfies every policy in every committed stack file."""
    problems = {}
    for name, r in rendered.items():
        found = rules.evaluate(r.records, r.resources["stack"])
        if found:
            problems[name] = [str(v) for v in found]
    assert problems == {}


def test_the_rules_see_the_real_render(rendered):
    """Guards against a vacuous pass: the rules find the GPU pools, their subnets, EFA and the GPU pods."""
    for name, efa in (("prod", True), ("dev", False)):
        graph = rules.Graph(rendered[name].records)
        pools, roles = rules.gpu_pools_of(graph)
        assert set(roles.values()) == {"prefill", "decode"} and pools and all(v is efa for v in pools.values()), (name, pools)
        for ng in graph.of_type(*rules.NODE_GROUPS):
            if rules.is_gpu_node_group(ng):
                subnets = rules._subnets(graph, ng)
                assert subnets and all(rules._is_private(sn) for sn in subnets), ng["name"]
        gpu_templates = [
            t for r in graph.records for t in rules.pod_templates(r["type"], r.get("inputs") or {})
            if rules._asks_for_gpu(t.spec) or rules._targets_gpu_pool(t.spec, pools)
        ]
        assert len(gpu_templates) >= 2, name


def test_a_broken_render_is_caught(rendered):
    """Breaking the real prod render is reported by the policy that guards each thing."""
    records = copy.deepcopy(rendered["prod"].records)
    for rec in records:
        inputs = rec["inputs"]
        if rec["type"] == rules.AWS_PROVIDER:
            inputs.pop("defaultTags", None)
        if rec["type"] == rules.EKS_COMPONENT:
            inputs["publicAccessCidrs"] = ["0.0.0.0/0"]
            inputs["endpointPublicAccess"] = True
        if rec["type"] == rules.LAUNCH_TEMPLATE:
            inputs["metadataOptions"] = {"httpTokens": "optional"}
        for tmpl in rules.pod_templates(rec["type"], inputs):
            tmpl.spec.pop("schedulerName", None)
    records = [r for r in records if r["type"] != rules.SG_EGRESS]
    hit = policies_hit(rules.evaluate(records, "prod"))
    assert hit == {"required-tags", "prod-cluster-endpoint-not-public", "launch-template-imdsv2", "gpu-pod-scheduling", "efa-security-group-self-traffic"}
