"""Lift the pod templates out of custom resources so checkov scans them.

checkov's kubernetes framework checks built-in kinds only: the pod templates inside a LeaderWorkerSet
(leaderTemplate, workerTemplate) or a Grove PodCliqueSet (each clique's podSpec) would go unchecked. This writes one
Pod per template into OUT, with the template's labels and annotations (its `checkov.io/skip<N>` suppressions and their
reasons) and the namespace of the custom resource, named <object>-<template>.

    python scripts/checkov_lift.py MANIFESTS_DIR OUT_DIR

Prints how many templates it lifted; exits 1 if a custom resource it knows has none (the lift would silently check
nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def templates(doc: dict) -> list[tuple[str, dict, dict]]:
    """(suffix, template metadata, pod spec) of every pod template of a LeaderWorkerSet or PodCliqueSet."""
    kind = doc.get("kind")
    if kind == "LeaderWorkerSet":
        t = doc["spec"]["leaderWorkerTemplate"]
        return [(part.removesuffix("Template").lower(), t[part].get("metadata", {}), t[part]["spec"]) for part in ("leaderTemplate", "workerTemplate") if t.get(part)]
    if kind == "PodCliqueSet":
        return [
            (c["name"], {"labels": c.get("labels", {}), "annotations": c.get("annotations", {})}, c["spec"]["podSpec"])
            for c in doc["spec"]["template"]["cliques"]
        ]
    return []


def lift(manifests: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(manifests.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or doc.get("kind") not in ("LeaderWorkerSet", "PodCliqueSet"):
            continue
        found = templates(doc)
        if not found:
            raise SystemExit(f"{path.name}: a {doc['kind']} without pod templates")
        meta = doc["metadata"]
        for suffix, tmeta, spec in found:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}-{suffix}",
                    "namespace": meta.get("namespace", "default"),
                    "labels": tmeta.get("labels") or {},
                    "annotations": tmeta.get("annotations") or {},
                },
                "spec": spec,
            }
            (out / f"lifted-{doc['kind'].lower()}-{meta['name']}-{suffix}.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))
            count += 1
    return count


if __name__ == "__main__":
    n = lift(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"lifted {n} pod templates out of custom resources in {sys.argv[1]}")
