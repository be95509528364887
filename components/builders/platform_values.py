"""Helm values of every platform add-on, as plain dicts computed from the typed config.

Only the values that differ from the chart defaults (pinned in stacks/versions.py) are set, each for a reason
given beside it. Tolerations of the daemons that must run on GPU nodes come from
`components.builders.scheduling.daemon_tolerations`, so an extra taint on a pool is tolerated everywhere it must be.
Controllers are pinned to the CPU system pool: GPU nodes cost $55+/h and carry NoSchedule taints anyway.
"""

from __future__ import annotations

from typing import Any

from components.builders.lbc_iam import SERVICE_ACCOUNT as LBC_SERVICE_ACCOUNT
from components.builders.scheduling import (
    EFA_LABEL,
    GPU_TAINT,
    POOL_LABEL,
    SYSTEM_POOL,
    daemon_tolerations,
)
from stacks.config.aws import GpuPoolConfig
from stacks.config.stack import StackConfig
from stacks.plan import pool_efa

SYSTEM_NODE_SELECTOR = {POOL_LABEL: SYSTEM_POOL}
# The EFA device plugin only runs where the AWS layer labelled the node as having EFA interfaces.
EFA_NODE_SELECTOR = {EFA_LABEL: "true"}

# kube-prometheus-stack: one fixed release and fullname, so the Prometheus address is known without a lookup.
MONITORING_NAMESPACE = "monitoring"
MONITORING_RELEASE = "kube-prometheus-stack"
PROMETHEUS_PORT = 9090

KAI_SCHEDULER_NAME = "kai-scheduler"

# Upstream default of the GPU Operator's `daemonsets.tolerations`; kept so GPU nodes tainted by other tooling
# (any value of nvidia.com/gpu) stay served. Our own taints are added on top.
_GPU_ANY_VALUE = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
# Upstream default of the NFD worker; replacing the list must not drop it.
_CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "", "effect": "NoSchedule"}
# Upstream default of node-exporter's `tolerations` (prometheus-node-exporter chart, kube-prometheus-stack 88.5.3):
# every NoSchedule taint. Helm replaces lists, so setting ours alone would narrow it to the pools' taints and drop
# node-exporter from any node tainted by other tooling; ours only add what it lacks (NoExecute user taints).
_ANY_NO_SCHEDULE = {"operator": "Exists", "effect": "NoSchedule"}


def efa_pools(cfg: StackConfig) -> list[GpuPoolConfig]:
    return [p for p in cfg.gpu_pools if pool_efa(p)]


def monitoring_enabled(cfg: StackConfig) -> bool:
    return cfg.platform.monitoring.enabled


def prometheus_url() -> str:
    """In-cluster address of the Prometheus that KEDA's prometheus triggers and users query."""
    return f"http://{MONITORING_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc.cluster.local:{PROMETHEUS_PORT}"


def _dedupe(tolerations: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[tuple, dict[str, str]] = {}
    for t in tolerations:
        seen.setdefault(tuple(sorted(t.items())), t)
    return list(seen.values())


def gpu_daemon_tolerations(cfg: StackConfig) -> list[dict[str, str]]:
    """What every daemon of the GPU Operator (device plugin, DCGM exporter, GFD, validator, MIG manager) tolerates."""
    return _dedupe([_GPU_ANY_VALUE, *daemon_tolerations(cfg)])


def gpu_operator_values(cfg: StackConfig) -> dict[str, Any]:
    go = cfg.platform.gpu_operator
    monitoring = monitoring_enabled(cfg)
    return {
        "operator": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
        # The EKS AL2023 NVIDIA AMI ships the driver, fabric manager and nvidia-container-toolkit, and nodeadm makes
        # `nvidia` containerd's default runtime (amazon-eks-ami install-nvidia-driver.sh, runtime_config_nvidia.go).
        # A second driver/toolkit from the operator would fight the host's.
        "driver": {"enabled": False},
        "toolkit": {"enabled": False},
        # With the toolkit not operator-managed, the operator can neither configure containerd for CDI nor place the
        # nvidia-cdi-hook it points CDI specs at (it sets NVIDIA_CDI_HOOK_PATH only when it runs the toolkit,
        # gpu-operator v26.7.0 controllers/object_controls.go transformDevicePluginCtrForCDI). Injection through the
        # AMI's default nvidia runtime (NVIDIA_VISIBLE_DEVICES) is the path the AMI is built and tested for.
        "cdi": {"enabled": False},
        "devicePlugin": {
            "enabled": True,
            # k8s-device-plugin >= v0.19.0 defaults mofed-enabled to true and then mounts every
            # /dev/infiniband/uverbs* into GPU containers, which takes the EFA devices away from the EFA plugin's
            # per-pod allocation (AWS EKS device-management docs; ai-on-eks gpu-operator values).
            "env": [{"name": "MOFED_ENABLED", "value": "false"}],
        },
        "dcgmExporter": {
            "enabled": True,
            # The ServiceMonitor needs the Prometheus Operator CRDs; the operator skips it without them.
            "serviceMonitor": {"enabled": True, "additionalLabels": {"release": MONITORING_RELEASE}} if monitoring else {"enabled": False},
        },
        "gfd": {"enabled": True},
        "nfd": {"enabled": True},
        # Full-GPU inference leaves MIG off; the manager only matters on MIG-partitioned GPUs.
        "migManager": {"enabled": go.mig_manager},
        "daemonsets": {"tolerations": gpu_daemon_tolerations(cfg)},
        # NFD labels the nodes the operator's daemons select (feature.node.kubernetes.io/pci-10de.present): its worker
        # must run on every GPU node or the device plugin never lands there. The chart default only tolerates
        # nvidia.com/gpu, not the role taints or the user's extras.
        "node-feature-discovery": {
            "worker": {"tolerations": _dedupe([_CONTROL_PLANE, *gpu_daemon_tolerations(cfg)])},
            "master": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
            "gc": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
        },
    }


def efa_device_plugin_values(cfg: StackConfig) -> dict[str, Any]:
    return {
        # The chart only tolerates CriticalAddonsOnly; without the GPU and role taints it never runs on p5 nodes and
        # pods asking for vpc.amazonaws.com/efa stay Pending (api-facts §4, eks-charts aws-efa-k8s-device-plugin).
        "tolerations": daemon_tolerations(cfg, efa_pools(cfg)),
        "nodeSelector": dict(EFA_NODE_SELECTOR),
    }


def network_operator_values(cfg: StackConfig) -> dict[str, Any]:
    # One NFD per cluster: the GPU Operator's NFD also serves the Network Operator's NodeFeatureRules.
    gpu_nfd = cfg.platform.gpu_operator.enabled
    values: dict[str, Any] = {
        "nfd": {"enabled": not gpu_nfd},
        "operator": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
    }
    if not gpu_nfd:
        values["node-feature-discovery"] = {"worker": {"tolerations": _dedupe([_CONTROL_PLANE, *gpu_daemon_tolerations(cfg)])}}
    return values


def kai_values(cfg: StackConfig) -> dict[str, Any]:
    return {
        # Also applies to the operator-created scheduler/binder/admission/podgrouper, and (v0.17.0) to the hook jobs:
        # kai-config deployer (post-install) and post-delete cleanup inherit global.nodeSelector/tolerations.
        "global": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
        "admission": {
            # The AMI's default containerd runtime already is nvidia, so fractional-GPU pods need no RuntimeClass
            # (NVIDIA/aicr kai-scheduler recipe). Not because the class is missing: GPU Operator v26.7.0 still creates
            # RuntimeClass `nvidia` in its pre-requisites state without the toolkit (controllers/object_controls.go
            # RuntimeClasses), and the AMI's containerd has that handler. In v0.17.0 gpuFractionRuntimeClassName wins
            # over the deprecated gpuPodRuntimeClassName (templates/_helpers.tpl renders only the first key present)
            # and the chart's values set it to `nvidia`; an empty value reaches the admission webhook as an explicit
            # empty flag, which turns the enforcement off (cmd/admission/app/options.go), so both are emptied.
            "gpuFractionRuntimeClassName": "",
            "gpuPodRuntimeClassName": "",
        },
        # Kept on: at v0.17.0 the post-delete job inherits global.nodeSelector and runs on the untainted system pool
        # (the hang AICR works around is a hook that could not schedule on tainted nodes). It removes the
        # operator-created deployments and kai-config, which Helm does not own.
        "postCleanup": {"enabled": True},
    }


def lws_values(cfg: StackConfig) -> dict[str, Any]:
    # No gangSchedulingManagement: it only supports volcano; KAI's podgrouper groups LWS natively (api-facts §1).
    return {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}


def grove_values(cfg: StackConfig) -> dict[str, Any]:
    return {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        "config": {
            "topologyAwareScheduling": {"enabled": cfg.platform.grove.topology_aware_scheduling},
            "scheduler": {
                # Serving pods must go through KAI (queue quota, gang scheduling, topology); every clique of a PCS must
                # resolve to the same scheduler, so KAI is the default profile rather than a per-clique opt-in.
                "defaultProfileName": KAI_SCHEDULER_NAME,
                "profiles": [{"name": "default-scheduler"}, {"name": KAI_SCHEDULER_NAME}],
            },
        },
    }


def metrics_server_values(cfg: StackConfig) -> dict[str, Any]:
    return {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}


def load_balancer_controller_values(cfg: StackConfig, vpc_id: Any, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "clusterName": cfg.cluster_name,
        "region": cfg.region,
        # Nodes keep IMDS hop limit 1, so the controller cannot discover the VPC from instance metadata.
        "vpcId": vpc_id,
        "serviceAccount": {"create": True, "name": LBC_SERVICE_ACCOUNT},
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # Load balancers, target groups and security groups the controller creates carry the stack tags, so the
        # teardown sweep finds any that outlive a failed destroy.
        "defaultTags": dict(tags),
        # The service mutator webhook intercepts every Service CREATE with failurePolicy Fail; while the controller is
        # not Ready (first install, upgrades) it would fail the Services of every other chart installed alongside.
        # Services this stack exposes through an NLB set `spec.loadBalancerClass: service.k8s.aws/nlb` themselves.
        "enableServiceMutatorWebhook": False,
    }


def kube_prometheus_stack_values(cfg: StackConfig) -> dict[str, Any]:
    prom_spec = {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # Select ServiceMonitors/PodMonitors/rules of every release and namespace, not only this release's: the
        # engines' and the GPU Operator's monitors are created elsewhere.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "scrapeConfigSelectorNilUsesHelmValues": False,
        # No storageSpec: an emptyDir, not a PVC. A StatefulSet's PVCs are not deleted by helm uninstall and their
        # EBS volumes would outlive `pulumi destroy`; the metrics serve autoscaling and debugging, not archives.
        "retention": "7d",
    }
    return {
        "fullnameOverride": MONITORING_RELEASE,
        # Grafana ships with a well-known admin password (chart default); off until an admin secret is wired in.
        "grafana": {"enabled": False},
        # EKS manages the control plane: etcd, controller-manager and scheduler are not scrapeable, and kube-proxy binds
        # its metrics to 127.0.0.1. Left on they are permanently down targets that fire alerts.
        "kubeEtcd": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheusOperator": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
        "prometheus": {"prometheusSpec": prom_spec},
        "alertmanager": {"alertmanagerSpec": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}},
        "kube-state-metrics": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)},
        # Host metrics of the GPU nodes are the ones that matter (NVMe cache, network); node-exporter must tolerate them.
        "prometheus-node-exporter": {"tolerations": _dedupe([_ANY_NO_SCHEDULE, *daemon_tolerations(cfg)])},
    }


def keda_values(cfg: StackConfig) -> dict[str, Any]:
    # Top-level nodeSelector applies to the operator, the metrics API server and the admission webhooks.
    return {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}

