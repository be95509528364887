"""The render's summary: what the stack provisions, how the serving roles pack onto it, what it costs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stacks.config.stack import StackConfig
from components.builders.observability import dashboard_titles, rule_groups
from stacks.plan import plan
from stacks.platform_args import platform_args
from tooling.sizing import report as sizing

MAX_DIAGRAM_NODES = 8  # per pool; larger pools are drawn as one box so the diagram stays readable


def price_notes(cfg: StackConfig) -> list[str]:
    """What the cost figures are not: an estimate standing in for an unpublished price, or a price of another region
    than the stack's (facts/catalog.py says where each price row comes from)."""
    from facts.catalog import instance_type

    notes = []
    types = sorted({p.instance_type for p in cfg.gpu_pools} | {cfg.system_pool.instance_type})
    for name in types:
        it = instance_type(name)
        if it.price_estimate:
            notes.append(f"{name}: {it.on_demand_usd_per_hour:.2f} USD/h is an estimate, not a published price ({it.price_source})")
    regions = {instance_type(n).price_region: instance_type(n).price_date for n in types}
    for region, date in sorted(regions.items()):
        if region != cfg.region:
            notes.append(
                f"prices are {region} list prices of {date}; this stack runs in {cfg.region}, where On-Demand prices differ"
            )
    return notes


def summary_json(
    cfg: StackConfig, records: list[dict[str, Any]], manifests: dict[str, Any], deploy_warnings: list[str] | None = None
) -> dict[str, Any]:
    p = plan(cfg)
    roles = {}
    for r in p.roles:
        provisioned = sum(pp.serving_nodes * pp.gpus_per_node for pp in p.pools if pp.name in r.pools)
        roles[r.role] = {
            "replicas": r.replicas,
            "max_replicas": r.max_replicas,
            "tensor_parallel": r.tensor_parallel,
            "pipeline_parallel": r.pipeline_parallel,
            "data_parallel": r.data_parallel,
            "expert_parallel": r.expert_parallel,
            "gpus_per_replica": r.gpus_per_replica,
            "nodes_per_replica": r.nodes_per_replica,
            "pods_per_replica": r.pods_per_replica,
            "gpus_per_pod": r.gpus_per_pod,
            "efa_per_pod": r.efa_per_pod,
            "pods_per_node": r.pods_per_node,
            "pools": list(r.pools),
            "instance_type": r.instance_type,
            "nodes_needed": r.nodes_needed,
            "nodes_needed_at_max": r.nodes_needed_at_max,
            "gpus_requested": r.gpus_requested,
            "gpus_provisioned": provisioned,
            "gpu_packing": round(r.gpus_requested / provisioned, 4) if provisioned else 0.0,
        }
    trt = cfg.serving.engine.kind == "tensorrt-llm"
    return {
        "stack": cfg.name,
        "region": p.region,
        "cluster_name": p.cluster_name,
        "kubernetes_version": p.kubernetes_version,
        "workload_api": p.workload_api,
        # TensorRT-LLM moves KV with its cache transceiver (NIXL), and its router role is its disaggregated orchestrator.
        "kv_transfer": {"connector": cfg.serving.kv_transfer.connector if not trt else "TensorRT-LLM cache transceiver (NIXL)", "backend": p.kv_backend},
        "model": {
            "id": cfg.serving.model.id,
            "served_name": cfg.serving.model.served_name or cfg.serving.model.id,
            "parameters_billions": cfg.serving.model.parameters_billions,
            "weight_dtype": cfg.serving.model.weight_dtype,
        },
        "gpu_pools": [
            {
                "name": pp.name,
                "role": pp.role,
                "instance_type": pp.instance_type,
                "nodes": pp.nodes,
                "max_nodes": pp.max_nodes,
                "gpus_per_node": pp.gpus_per_node,
                "gpu_model": pp.gpu_model,
                "efa_interfaces_per_node": pp.efa_interfaces_per_node,
                "capacity": pp.capacity,
                "availability_zones": list(pp.availability_zones),
                "placement_group": pp.placement_group,
                "usd_per_node_hour": pp.usd_per_node_hour,
                "nodes_at_max": pp.nodes_at_max,
            }
            for pp in p.pools
        ],
        "system_pool": {"instance_type": p.system_instance_type, "nodes": p.system_nodes},
        "roles": roles,
        "router": {"kind": cfg.serving.router.kind if not trt else "trtllm-serve disaggregated", "replicas": cfg.serving.router.replicas, "service_type": cfg.serving.router.service_type},
        "gpus_provisioned": p.gpus_provisioned,
        "gpus_requested": p.gpus_requested,
        "gpu_packing": p.gpu_packing,
        "hourly_cost_usd": p.hourly_cost_usd,
        "cost_breakdown_usd_per_hour": p.cost_breakdown,
        "node_provisioning": p.node_provisioning,
        "gpus_at_max": p.gpus_at_max,
        # What node autoscaling may reach (every GPU pool at maxNodes under karpenter/autoMode; today's cost with managed
        # node groups, which nothing scales): the PR comment warns when this ceiling rises.
        "hourly_cost_at_max_usd": p.hourly_cost_at_max_usd,
        "cost_breakdown_at_max_usd_per_hour": p.cost_breakdown_at_max,
        "price_notes": price_notes(cfg),
        "deploy_check_warnings": list(deploy_warnings or []),
        "sizing": sizing.role_sizing(cfg),
        "observability": _observability(cfg),
        "resource_count": len(records),
        "resource_types": dict(sorted(Counter(r["type"] for r in records).items())),
        "manifest_count": len(manifests),
    }


def _observability(cfg: StackConfig) -> dict[str, Any]:
    # The summary names the deployment as its stack; the Pulumi stack name only reaches the AWS tags, not shown here.
    args = platform_args(cfg, stack=cfg.name)
    mon = args.monitoring
    return {
        "dashboards": [{"uid": uid, "title": title} for uid, title in dashboard_titles(args)],
        "alerts": [r["alert"] for g in rule_groups(args) for r in g["rules"]] if mon.enabled and mon.alerts else [],
        "amp": mon.enabled and mon.amp,
    }


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _dp(r: dict) -> str:
    """` x DP 2 (EP)` after TP x PP when a replica has data-parallel ranks (wide expert parallelism)."""
    if r.get("data_parallel", 1) == 1:
        return " (EP)" if r.get("expert_parallel") else ""
    return f" x DP {r['data_parallel']}" + (" (EP)" if r.get("expert_parallel") else "")


def summary_md(s: dict[str, Any]) -> str:
    lines = [
        f"# disagg stack `{s['stack']}`",
        "",
        f"Region **{s['region']}**, EKS cluster **{s['cluster_name']}** (Kubernetes {s['kubernetes_version']}), "
        f"workloads as **{s['workload_api']}**, "
        + (
            f"KV transfer **{s['kv_transfer']['connector']} / {s['kv_transfer']['backend']}**."
            if s["kv_transfer"]["backend"] != "none"
            else "**aggregated** serving (every replica serves whole requests, no KV transfer)."
        ),
        f"Model **{s['model']['id']}** ({s['model']['parameters_billions']:g}B, {s['model']['weight_dtype']}).",
        "",
        f"**{s['gpus_requested']} of {s['gpus_provisioned']} GPUs requested ({_pct(s['gpu_packing'])} packing)**, "
        f"about **${s['hourly_cost_usd']:,.2f}/h** On-Demand"
        + (
            f" (up to **${s['hourly_cost_at_max_usd']:,.2f}/h** with every GPU pool at maxNodes, {s['gpus_at_max']} GPUs)"
            if s.get("node_provisioning", "managedNodeGroups") in _PROVISIONERS
            else ""
        )
        + f", {s['resource_count']} resources, {s['manifest_count']} Kubernetes objects.",
        "",
        "## GPU pools",
        "",
        "| pool | role | instance | nodes | GPUs/node | EFA/node | capacity | zones | placement group | $/node-h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in s["gpu_pools"]:
        lines.append(
            f"| {p['name']} | {p['role']} | {p['instance_type']} | {p['nodes']} | {p['gpus_per_node']} x {p['gpu_model']} | "
            f"{p['efa_interfaces_per_node']} | {p['capacity']} | {', '.join(p['availability_zones'])} | "
            f"{'yes' if p['placement_group'] else 'no'} | {p['usd_per_node_hour']:.2f} |"
        )
    lines += [
        "",
        f"System pool: {s['system_pool']['nodes']} x {s['system_pool']['instance_type']}. "
        f"Router: {s['router']['replicas']} x {s['router']['kind']} ({s['router']['service_type']}).",
        "",
        "## Serving roles",
        "",
        "| role | replicas (max) | TP x PP | GPUs/replica | nodes/replica | GPUs/pod | EFA/pod | pods/node | GPUs used / pool GPUs | packing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s["roles"].items():
        lines.append(
            f"| {name} | {r['replicas']} ({r['max_replicas']}) | {r['tensor_parallel']} x {r['pipeline_parallel']}{_dp(r)} | {r['gpus_per_replica']} | "
            f"{r['nodes_per_replica']} | {r['gpus_per_pod']} | {r['efa_per_pod']} | {r['pods_per_node']} | "
            f"{r['gpus_requested']} / {r['gpus_provisioned']} | {_pct(r['gpu_packing'])} |"
        )
    lines += ["", *sizing.markdown(s["sizing"])]
    lines += _node_autoscaling(s)
    lines += ["", "## Cost per hour (On-Demand list prices)", "", "| item | $/h |", "|---|---|"]
    for item, usd in s["cost_breakdown_usd_per_hour"].items():
        lines.append(f"| {item} | {usd:,.2f} |")
    lines.append(f"| **total** | **{s['hourly_cost_usd']:,.2f}** |")
    if s.get("price_notes"):
        lines += ["", *(f"Note: {n}." for n in s["price_notes"])]
    reserved = [p["name"] for p in s["gpu_pools"] if p["capacity"] != "onDemand"]
    if reserved:
        lines += [
            "",
            f"Pools {', '.join(reserved)} run on reserved capacity (a capacity reservation or a Capacity Block), billed at "
            "the reservation's own rate for its whole term whether nodes run or not; the figures above are On-Demand list prices.",
        ]
    if s.get("deploy_check_warnings"):
        lines += [
            "",
            "## Deploy checks",
            "",
            "`pulumi preview` and `pulumi up` stop on each of these before creating anything. The offline render only "
            "reports them, and it asks the fake cloud, not your account, about offerings, quotas and reservations: "
            f"`python -m ops preflight --stack {s['stack']}` runs every check against your account:",
            "",
            *(f"- {w}" for w in s["deploy_check_warnings"]),
        ]
    obs = s.get("observability") or {}
    if obs.get("dashboards") or obs.get("alerts"):
        lines += ["", "## Dashboards and alerts", ""]
        if obs.get("dashboards"):
            lines += [
                "Grafana (folder `disagg`): `kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80`, "
                "user `admin`, password `pulumi stack output grafanaAdminPassword --show-secrets`.",
                "",
                "| dashboard | uid |",
                "|---|---|",
                *[f"| {d['title']} | `{d['uid']}` |" for d in obs["dashboards"]],
            ]
        if obs.get("alerts"):
            lines += ["", f"Alert rules (PrometheusRule `monitoring/disagg`): {', '.join(f'`{a}`' for a in obs['alerts'])}."]
        if obs.get("amp"):
            lines += ["", "Metrics are remote-written to Amazon Managed Service for Prometheus (stack output `ampWorkspaceId`)."]
    lines += ["", "## Pools, nodes and pods", "", "```mermaid", *_diagram(s), "```", ""]
    lines += ["## Resources by type", "", "| type | count |", "|---|---|"]
    lines += [f"| `{t}` | {n} |" for t, n in s["resource_types"].items()]
    return "\n".join(lines) + "\n"


_PROVISIONERS = {"karpenter": "Karpenter", "autoMode": "EKS Auto Mode"}


def _node_autoscaling(s: dict[str, Any]) -> list[str]:
    """With Karpenter or EKS Auto Mode the GPU pools grow with the replicas: what each pool runs at `replicas` and
    may grow to at `autoscaling.maxReplicas` (its `maxNodes`), in nodes, GPUs and $/h."""
    mode = s.get("node_provisioning", "managedNodeGroups")
    if mode not in _PROVISIONERS:
        return []
    lines = [
        "",
        f"## Node autoscaling ({_PROVISIONERS[mode]})",
        "",
        f"GPU nodes are added for pending serving pods and removed an hour after they are empty, so the GPU pools cost "
        f"between **${s['hourly_cost_usd']:,.2f}/h** ({s['gpus_provisioned']} GPUs, the nodes `replicas` need) and "
        f"**${s['hourly_cost_at_max_usd']:,.2f}/h** ({s['gpus_at_max']} GPUs, every pool at `maxNodes`) with the rest "
        "of the stack.",
        "",
        "| pool | role | nodes (min..max) | GPUs (min..max) | $/h (min..max) |",
        "|---|---|---|---|---|",
    ]
    for p in s["gpu_pools"]:
        lo, hi = p["nodes"], p["nodes_at_max"]
        lines.append(
            f"| {p['name']} | {p['role']} | {lo}..{hi} | {lo * p['gpus_per_node']}..{hi * p['gpus_per_node']} | "
            f"{lo * p['usd_per_node_hour']:,.2f}..{hi * p['usd_per_node_hour']:,.2f} |"
        )
    lines.append(
        f"| **stack total** | | | **{s['gpus_provisioned']}..{s['gpus_at_max']}** | "
        f"**{s['hourly_cost_usd']:,.2f}..{s['hourly_cost_at_max_usd']:,.2f}** |"
    )
    if mode == "autoMode":
        lines += ["", "EKS Auto Mode adds its management fee per instance-hour on top of the EC2 price; it is not in these figures."]
    return lines


def _diagram(s: dict[str, Any]) -> list[str]:
    """Mermaid: each pool's nodes, and on each node the pods the roles place there (first-fit, as packed)."""
    out = ["flowchart LR"]
    for role_name, r in s["roles"].items():
        pools = [p for p in s["gpu_pools"] if p["name"] in r["pools"]]
        nodes = [(p, i) for p in pools for i in range(p["nodes"])]
        # Place pods: a multi-node replica takes nodes_per_replica whole nodes; otherwise pods_per_node per node.
        placement: dict[int, list[str]] = {}
        pod_label = f"{r['gpus_per_pod']} GPU, {r['efa_per_pod']} EFA"
        n = 0
        for rep in range(r["replicas"]):
            if r["nodes_per_replica"] > 1:
                for k in range(r["nodes_per_replica"]):
                    placement.setdefault(n, []).append(f"{role_name}-{rep} pod {k} ({pod_label})")
                    n += 1
            else:
                node = rep // max(r["pods_per_node"], 1)
                placement.setdefault(node, []).append(f"{role_name}-{rep} ({pod_label})")
        for p in pools:
            pid = f"pool_{p['name'].replace('-', '_')}"
            out.append(f'  subgraph {pid}["pool {p["name"]}: {p["nodes"]} x {p["instance_type"]}, {", ".join(p["availability_zones"])}"]')
            pool_nodes = [i for i, (pp, _) in enumerate(nodes) if pp is p]
            if len(pool_nodes) > MAX_DIAGRAM_NODES:
                pods = sum(len(placement.get(i, [])) for i in pool_nodes)
                out.append(f'    {pid}_all["{len(pool_nodes)} nodes x {p["gpus_per_node"]} GPU: {pods} {role_name} pods"]')
            else:
                for i in pool_nodes:
                    nid = f"{pid}_n{i}"
                    out.append(f'    {nid}["node {i}: {p["gpus_per_node"]} GPU, {p["efa_interfaces_per_node"]} EFA"]')
            out.append("  end")
            if len(pool_nodes) <= MAX_DIAGRAM_NODES:
                for i in pool_nodes:
                    for j, pod in enumerate(placement.get(i, [])):
                        out.append(f'  {pid}_n{i} --> {pid}_n{i}_p{j}("{pod}")')
    return out
