"""`pulumi preview` of a new stack sees the same resources as `pulumi up`.

At preview nothing exists yet: every id, ARN, endpoint and kubeconfig is unknown and no `apply` on them runs. A
resource created inside such an apply, or a count or name read from one, shows at up and not at preview (or the
reverse): the preview would lie about what `up` creates, and a policy or a reviewer reading it would miss it.
The preview-mode render (`--preview`, tooling/fakes.py `unknown_at_preview`) answers as the engine does then.
"""

from __future__ import annotations

from tooling.harness import UNKNOWN
from tests.conftest import leaves


def _ref(ref: str | None) -> str | None:
    """A provider reference `urn::id` without its id (unknown at preview)."""
    return ref.rsplit("::", 1)[0] if ref else ref


def test_preview_registers_the_urns_up_registers(rendered, previewed):
    for name, up in rendered.items():
        pv = previewed[name]
        only_up, only_preview = sorted(set(up.urns) - set(pv.urns)), sorted(set(pv.urns) - set(up.urns))
        assert not only_up and not only_preview, (
            f"{name}: preview and up register different resources (one is created or named from a value only known "
            f"after create):\n  only at up: {only_up}\n  only at preview: {only_preview}"
        )


def test_preview_sees_the_graph_up_creates(rendered, previewed):
    """Same types, parents, providers, dependencies and options; every input the preview has, up has too (an input
    present only at preview reads an output the fake cloud never returns), and every value the preview knows is the
    value up registers."""
    problems = []
    for name, up in rendered.items():
        pv = {r["urn"]: r for r in previewed[name].records}
        for u in up.records:
            p = pv[u["urn"]]
            for key in ("type", "parent", "custom", "remote", "dependencies", "options"):
                if u[key] != p[key]:
                    problems.append(f"{name}: {u['urn']}: {key} differs: up {u[key]!r}, preview {p[key]!r}")
            if _ref(u["provider"]) != _ref(p["provider"]) or {k: _ref(v) for k, v in u["providers"].items()} != {
                k: _ref(v) for k, v in p["providers"].items()
            }:
                problems.append(f"{name}: {u['urn']}: provider differs")
            at_up = dict(leaves(u["inputs"]))
            for path, value in leaves(p["inputs"]):
                if path not in at_up:
                    problems.append(f"{name}: {u['urn']}: input {path} is set at preview and missing at up")
                elif value != UNKNOWN and at_up[path] != value:
                    problems.append(f"{name}: {u['urn']}: input {path} is {value!r} at preview, {at_up[path]!r} at up")
    assert not problems, "\n".join(problems)


def test_the_preview_knows_what_config_decides_and_nothing_the_cloud_computes(previewed):
    """The mode is real: ids, ARNs and the endpoint are unknown; names, counts and the model come from config."""
    r = previewed["prod"]
    assert all(rec["id"] is None for rec in r.records if rec["custom"])
    assert r.outputs["vpcId"] == UNKNOWN and r.outputs["clusterEndpoint"] == UNKNOWN
    assert r.outputs["clusterName"] == "prod" and r.outputs["modelName"] == "llama-3.3-70b"
    gpu_ngs = [x for x in r.of_type("aws:eks/nodeGroup:NodeGroup") if x["name"] != "prod-system-ng"]
    assert gpu_ngs and all(ng["inputs"]["subnetIds"] == UNKNOWN or UNKNOWN in ng["inputs"]["subnetIds"] for ng in gpu_ngs)
    assert all(ng["inputs"]["scalingConfig"]["desiredSize"] == 1 for ng in gpu_ngs)
    # Kubernetes objects are built from config alone: not one unknown value in any manifest.
    assert r.manifests and not any(v == UNKNOWN for doc in r.manifests.values() for _, v in leaves(doc))
