"""Helm values of every platform add-on, as plain dicts computed from the typed config.

Only the values that differ from the chart defaults (pinned in facts/versions.py) are set, each for a reason
given beside it. Tolerations of the daemons that must run on GPU nodes come from
`stacks.aws_args.daemon_tolerations`, so an extra taint on a pool is tolerated everywhere it must be.
Controllers are pinned to the CPU system pool: GPU nodes cost $55+/h and carry NoSchedule taints anyway.
"""

from __future__ import annotations

from typing import Any

from components.builders.lbc_iam import SERVICE_ACCOUNT as LBC_SERVICE_ACCOUNT
from facts.conventions import EFA_LABEL, GPU_TAINT, POOL_LABEL, SYSTEM_POOL
from stacks.aws_args import daemon_tolerations
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

# Controllers behind fail-closed webhooks (KAI, LWS, Grove): how they are spread over the system nodes. Preferred,
# not required: with a required term a rolling update on a two-node system pool could not place its surge pod.
HOSTNAME_KEY = "kubernetes.io/hostname"

# Deployments the KAI operator creates from kai-config, keyed by the chart's values section that configures them; the
# value is the Deployment name, which the operator also puts on the pods as `app` (KAI v0.17.0
# pkg/operator/operands/common/common.go DeploymentForKAIConfig; names: operands/*/resources.go defaultResourceName,
# the scheduler is "<schedulerName>-<shard>" = kai-scheduler-default, operands/scheduler/resources_for_shard.go).
KAI_OPERANDS = {
    "scheduler": "kai-scheduler-default",
    "binder": "binder",
    "podgrouper": "pod-grouper",
    "podgroupcontroller": "podgroup-controller",
    "queuecontroller": "queue-controller",
    "admission": "admission",
}
KAI_OPERATOR_APP = "kai-operator"  # deployments/kai-scheduler/templates/services/operator.yaml
# Operands whose PodDisruptionBudget the KAI operator creates itself once replicas > 1 (chart values
# <section>.podDisruptionBudget, default enabled; operands/common/common.go ShouldCreatePodDisruptionBudget).
KAI_OPERANDS_WITH_PDB = ("scheduler", "podgrouper", "admission")

# Pod labels of the controller pods, as the charts render them (for our PodDisruptionBudgets and spreading):
# lws v0.10.0 charts/lws/templates/manager/deployment.yaml (control-plane + lws.selectorLabels, release name `lws`);
# grove v0.1.0-alpha.11 operator/charts/values.yaml deployment.labels.
LWS_POD_LABELS = {"control-plane": "controller-manager", "app.kubernetes.io/name": "lws", "app.kubernetes.io/instance": "lws"}
GROVE_POD_LABELS = {
    "app.kubernetes.io/component": "operator-deployment",
    "app.kubernetes.io/name": "grove-operator",
    "app.kubernetes.io/part-of": "grove",
}
GROVE_DEPLOYMENT = "grove-operator"


def spread_affinity(match_labels: dict[str, str]) -> dict[str, Any]:
    """Prefer one replica per system node: a node drain or loss then takes at most one replica of the controller."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": dict(match_labels)}, "topologyKey": HOSTNAME_KEY}}
            ]
        }
    }


def controller_replicas(cfg: StackConfig) -> int:
    return cfg.platform.controller_replicas

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
            # With MOFED enabled the plugin mounts every /dev/infiniband/uverbs* into GPU containers, which hands the EFA
            # devices to pods behind the EFA plugin's per-pod allocation. At the plugin the chart pins (v0.20.0) the
            # flag defaults to false (NVIDIA/k8s-device-plugin v0.20.0 cmd/nvidia-device-plugin/main.go, a BoolFlag
            # without a Value) and the operator turns it on only with GPUDirect Storage (gpu-operator v26.7.0
            # controllers/object_controls.go TransformDevicePlugin). Pinned false so neither a default change at a
            # plugin bump nor a GDS switch can do it silently.
            "env": [{"name": "MOFED_ENABLED", "value": "false"}],
        },
        "dcgmExporter": {
            "enabled": True,
            # The operator creates its ServiceMonitor only if the CRD exists at that reconcile and never retries
            # (gpu-operator v26.7.0 controllers/object_controls.go ServiceMonitor: "skip gracefully"), which tied this
            # release to kube-prometheus-stack. The stack creates the DCGM ServiceMonitor itself
            # (components/builders/observability.py), so both install in parallel.
            "serviceMonitor": {"enabled": False},
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
    replicas = controller_replicas(cfg)
    values: dict[str, Any] = {
        # Also applies to the operator-created scheduler/binder/admission/podgrouper, and (v0.17.0) to the hook jobs:
        # kai-config deployer (post-install) and post-delete cleanup inherit global.nodeSelector/tolerations.
        # global.affinity reaches the kai-operator Deployment (templates/services/operator.yaml) and is the fallback
        # of every operand; each operand's own affinity below wins for podAntiAffinity (operands/common/common.go
        # MergeAffinities), so each spreads by its own `app` label.
        "global": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR), "affinity": spread_affinity({"app": KAI_OPERATOR_APP})},
        # operator.replicaCount sets the kai-operator Deployment (leader election turns on above 1,
        # templates/services/operator.yaml) and kai-config spec.global.replicaCount, the default replicas of every
        # operand (templates/_helpers.tpl kai-config; pkg/apis/kai/v1/*/SetDefaultsWhereNeeded), each of which then
        # runs with --leader-elect (operands/*/resources.go).
        "operator": {"replicaCount": replicas},
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
    for section, app in KAI_OPERANDS.items():
        values.setdefault(section, {})["affinity"] = spread_affinity({"app": app})
    for section in KAI_OPERANDS_WITH_PDB:
        # The chart default (enabled, maxUnavailable 1), set explicitly: the HA story must not hang on a default.
        values[section]["podDisruptionBudget"] = {"enabled": True, "maxUnavailable": 1}
    return values


def lws_values(cfg: StackConfig) -> dict[str, Any]:
    # No gangSchedulingManagement: it only supports volcano; KAI's podgrouper groups LWS natively (api-facts §1).
    # The chart has no PodDisruptionBudget; the platform creates one (platform_objects.controller_pdbs). Leader
    # election is always on (templates/manager/configmap.yaml leaderElect: true).
    return {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        "replicaCount": controller_replicas(cfg),
        "affinity": spread_affinity(LWS_POD_LABELS),
    }


def grove_values(cfg: StackConfig) -> dict[str, Any]:
    return {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # The chart has neither affinity nor topology spread values nor a PodDisruptionBudget
        # (operator/charts/templates/deployment.yaml): the platform creates the PDB (platform_objects), and the
        # replicas are spread only by kube-scheduler's default topology spreading. Leader election is on by default
        # (config.leaderElection.enabled).
        "replicaCount": controller_replicas(cfg),
        "config": {
            # Off by default in the chart, so Helm saw the operator Ready before its webhooks served. The readiness
            # probe is /readyz, which fails until the webhook certificates are injected and the webhook server has
            # started (grove v0.1.0-alpha.11 operator/internal/controller/manager.go SetupHealthAndReadinessEndpoints;
            # probes rendered only with enable, operator/charts/templates/deployment.yaml).
            "server": {"healthProbes": {"enable": True}},
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


# The dashboard sidecar picks up ConfigMaps labelled grafana_dashboard="1" in every namespace (kube-prometheus-stack
# 88.5.3 values.yaml grafana.sidecar.dashboards.label/labelValue/searchNamespace); this annotation names the folder
# (grafana chart sidecar.dashboards.folderAnnotation, with provider.foldersFromFilesStructure).
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
GRAFANA_FOLDER_ANNOTATION = "grafana_folder"
# Service account of the Prometheus pods (kube-prometheus-stack 88.5.3 templates/_helpers.tpl
# kube-prometheus-stack.prometheus.serviceAccountName: <fullname>-prometheus), bound to the AMP role through Pod Identity.
PROMETHEUS_SERVICE_ACCOUNT = f"{MONITORING_RELEASE}-prometheus"
IN_CLUSTER_RETENTION = "7d"

# EFA counters: node-exporter's infiniband collector (v1.12.1, the kube-prometheus-stack 88.5.3 node-exporter) reads
# only the standard and mlx5 hw counters, never EFA's tx_bytes/rdma_read_bytes/... (collector/infiniband_linux.go),
# so a sidecar writes them for its textfile collector (components/builders/efa_exporter.py). The directory is an
# in-memory emptyDir shared by both containers (prometheus-node-exporter 4.56.1 values.yaml sidecarVolumeMount).
EFA_TEXTFILE_DIR = "/run/efa-textfile"
EFA_SYSFS_MOUNT = "/host/sys"
# kube-prometheus-stack's own node-exporter extraArgs (values.yaml prometheus-node-exporter.extraArgs at 88.5.3):
# Helm replaces lists, so setting ours must repeat them.
_NODE_EXPORTER_DEFAULT_ARGS = [
    "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run/containerd/.+|var/lib/docker/.+|var/lib/kubelet/.+)($|/)",
    "--collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs|erofs)$",
]


def node_label_relabeling() -> dict[str, Any]:
    """Prometheus Operator relabeling that puts the scraped pod's node name on every series as `node`, so host
    metrics (DCGM, EFA) join kube-state-metrics' kube_pod_info/kube_node_* on the label they use."""
    return {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"}


def _efa_sidecar(cfg: StackConfig) -> dict[str, Any]:
    from components.builders.efa_exporter import sidecar_command
    from facts.versions import pin

    return {
        "name": "efa-counters",
        # Pinned Python image; the exporter uses the standard library only. Security context, pull policy and the
        # textfile mount come from the chart's defaults for sidecars (templates/daemonset.yaml merges them).
        "image": pin("platform-python").image_ref,
        "command": sidecar_command(EFA_SYSFS_MOUNT + "/class/infiniband", EFA_TEXTFILE_DIR),
        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    }


def kube_prometheus_stack_values(cfg: StackConfig, *, remote_write_url: Any = None, grafana_admin_password: Any = None) -> dict[str, Any]:
    """`remote_write_url` (an Output of the AMP workspace) is given when platform.monitoring.amp is on,
    `grafana_admin_password` (a secret Output of a generated password) when Grafana is."""
    mon = cfg.platform.monitoring
    prom_spec: dict[str, Any] = {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # Select ServiceMonitors/PodMonitors/rules of every release and namespace, not only this release's: the
        # engines' and the GPU Operator's monitors are created elsewhere.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "scrapeConfigSelectorNilUsesHelmValues": False,
        # No storageSpec: an emptyDir, not a PVC. A StatefulSet's PVCs are not deleted by helm uninstall and their
        # EBS volumes would outlive `pulumi destroy`; history that must survive goes to AMP (platform.monitoring.amp).
        "retention": mon.amp.local_retention if mon.amp.enabled else IN_CLUSTER_RETENTION,
    }
    if mon.amp.enabled:
        # SigV4 with the default AWS credential chain: Prometheus v3.14.0 (the chart's image) signs with
        # prometheus/sigv4 v0.4.1 on aws-sdk-go-v2 config v1.32 (LoadDefaultConfig), whose container-credentials
        # provider serves EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI). No static keys, no IRSA annotation.
        prom_spec["remoteWrite"] = [{"url": remote_write_url, "sigv4": {"region": cfg.region}}]
    values: dict[str, Any] = {
        "fullnameOverride": MONITORING_RELEASE,
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
        "prometheus-node-exporter": {
            "tolerations": _dedupe([_ANY_NO_SCHEDULE, *daemon_tolerations(cfg)]),
            "extraArgs": [*_NODE_EXPORTER_DEFAULT_ARGS, f"--collector.textfile.directory={EFA_TEXTFILE_DIR}"],
            "sidecars": [_efa_sidecar(cfg)],
            "sidecarVolumeMount": [{"name": "efa-textfile", "mountPath": EFA_TEXTFILE_DIR, "readOnly": False}],
            "sidecarHostVolumeMounts": [{"name": "efa-sysfs", "hostPath": "/sys", "mountPath": EFA_SYSFS_MOUNT, "readOnly": True}],
            "prometheus": {"monitor": {"relabelings": [node_label_relabeling()]}},
        },
    }
    if mon.grafana.enabled:
        values["grafana"] = {
            "enabled": True,
            "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
            # A stack-generated password (secret in the state, stack output grafanaAdminPassword), never the chart's
            # own random one, which only `helm get` could show. The chart writes it to its Secret
            # (grafana chart 12.11.1 templates/_config.tpl admin-password from .Values.adminPassword).
            "adminPassword": grafana_admin_password,
            "sidecar": {"dashboards": {"folderAnnotation": GRAFANA_FOLDER_ANNOTATION, "provider": {"foldersFromFilesStructure": True}}},
        }
    else:
        values["grafana"] = {"enabled": False}
    return values


def keda_values(cfg: StackConfig) -> dict[str, Any]:
    # Top-level nodeSelector applies to the operator, the metrics API server and the admission webhooks.
    return {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}

