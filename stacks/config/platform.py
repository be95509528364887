"""Config of the cluster platform: operators, schedulers and the add-ons users expect next to them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from stacks.config.base import DnsLabel, Model


class AddonConfig(Model):
    """Switch, version override and values overrides of one Helm add-on."""

    enabled: bool = Field(True, description="Install this add-on.")
    version: str | None = Field(None, description="Chart version override. Default: the pin of the versions table (prefer bumping the table).")
    timeout_seconds: PositiveInt | None = Field(
        None, description="Helm install/upgrade timeout in seconds. Default: sized per add-on (GPU Operator 1800, others 600)."
    )
    values: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Helm values deep-merged over the ones this stack renders (maps merge key by key, lists and scalars replace). "
            "Unsupported territory: nothing checks these keys against the chart, and a value here can undo a setting the "
            "stack relies on (see docs/platform.md). Default: none."
        ),
    )


class GpuOperatorConfig(AddonConfig):
    mig_manager: bool = Field(False, description="Run the MIG manager (only for MIG-partitioned GPUs; full-GPU inference leaves it off). Default false.")


class EfaDevicePluginConfig(AddonConfig):
    pass


class NetworkOperatorConfig(AddonConfig):
    """NVIDIA Network Operator: for ConnectX (InfiniBand/RoCE) fabrics only, never for EFA."""

    enabled: bool = Field(False, description="Install the NVIDIA Network Operator. Default false: AWS EFA is not a ConnectX NIC and is served by the EFA device plugin.")
    pools: list[DnsLabel] = Field(
        default_factory=list,
        description="GPU pools whose nodes carry ConnectX NICs (must not be EFA pools). Their nodes are targeted by the NicClusterPolicy.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Extra node labels selecting ConnectX nodes joined from outside the stack (hybrid or on-premises nodes).",
    )
    rdma_shared_device_name: str = Field("rdma_shared_device_a", description="Resource name of the RDMA shared device (`rdma/<name>`).")


class QueueConfig(Model):
    name: DnsLabel = Field(
        "serving",
        description="Leaf KAI queue the serving pods are labelled with; must differ from parentName and from KAI's own `default-queue`. Default `serving`.",
    )
    parent_name: DnsLabel = Field(
        "disagg", description="Parent KAI queue; must not be KAI's own `default-parent-queue` or `default-queue`. Default `disagg`."
    )
    gpu_quota: NonNegativeInt | None = Field(
        None,
        description=(
            "GPU quota of the serving queue. Default: every GPU of the GPU pools (at `maxNodes` with Karpenter or EKS Auto Mode). It must cover the GPUs the serving roles ask for: "
            "`inference`-priority pods only use in-quota GPUs."
        ),
    )


class KaiConfig(AddonConfig):
    queue: QueueConfig = Field(default_factory=QueueConfig, description="The KAI queues of the serving workloads.")
    topology_name: DnsLabel = Field("aws-network", description="Name of the KAI Topology over the AWS network topology labels.")


class LwsConfig(AddonConfig):
    enabled: bool | None = Field(None, description="Install LeaderWorkerSet. Default: on when `workloadApi` is `lws`.")


class GroveConfig(AddonConfig):
    enabled: bool | None = Field(None, description="Install Grove. Default: on when `workloadApi` is `grove`.")
    topology_aware_scheduling: bool = Field(True, description="Turn on Grove topology-aware scheduling and bind it to the AWS topology. Default true.")


class GrafanaConfig(Model):
    enabled: bool = Field(
        True,
        description=(
            "Run Grafana (from kube-prometheus-stack) with the stack's dashboards and a generated admin password "
            "(stack output `grafanaAdminPassword`, a secret). Default true."
        ),
    )


class SloConfig(Model):
    """Latency objectives the SLO burn-rate alerts measure against (per serving deployment)."""

    ttft_seconds: float = Field(
        2.5,
        description=(
            "Time-to-first-token objective in seconds; must be a bucket bound of the engines' TTFT histograms "
            "(vllm:time_to_first_token_seconds, trtllm_time_to_first_token_seconds; e.g. 0.5, 1.0, 2.5, 5.0). Default 2.5."
        ),
    )
    itl_seconds: float = Field(
        0.1,
        description=(
            "Inter-token-latency objective in seconds; must be a bucket bound of vllm:inter_token_latency_seconds "
            "and trtllm_time_per_output_token_seconds (e.g. 0.05, 0.1, 0.2). Default 0.1."
        ),
    )
    target: float = Field(
        0.99,
        gt=0.5,
        lt=1.0,
        description="Share of requests that must meet the objective (0.99 = 1% error budget). Default 0.99.",
    )


class AmpConfig(Model):
    """Amazon Managed Service for Prometheus as the metrics store."""

    enabled: bool = Field(
        False,
        description=(
            "Create an AMP workspace and remote-write every sample to it (SigV4, credentials through EKS Pod Identity); "
            "in-cluster Prometheus then keeps only `localRetention` for alerts, KEDA and Grafana. Default false."
        ),
    )
    local_retention: str = Field(
        "6h",
        pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$",
        description=(
            "In-cluster retention while AMP holds the history; must cover the longest alert window (6h of the SLO "
            "burn-rate rules). Default 6h."
        ),
    )


class MonitoringConfig(AddonConfig):
    kind: Literal["kubePrometheusStack"] = Field(
        "kubePrometheusStack", description="Metrics stack: kube-prometheus-stack in the cluster (scrapes DCGM, engines, router)."
    )
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig, description="Grafana and the stack's dashboards.")
    alerts: bool = Field(
        True, description="Install the stack's PrometheusRules (GPU XID, KV transfer, SLO burn, gang pods pending, node NotReady). Default true."
    )
    slo: SloConfig = Field(default_factory=SloConfig, description="Objectives of the TTFT/ITL burn-rate alerts.")
    amp: AmpConfig = Field(default_factory=AmpConfig, description="Ship metrics to Amazon Managed Service for Prometheus.")


class PlatformConfig(Model):
    """Everything installed into the cluster before the workloads."""

    workload_api: Literal["lws", "grove"] = Field("lws", description="How serving roles are expressed: `lws` (one LeaderWorkerSet per role, default) or `grove` (one PodCliqueSet).")
    gpu_operator: GpuOperatorConfig = Field(default_factory=GpuOperatorConfig, description="NVIDIA GPU Operator (device plugin, DCGM exporter, GFD, NFD).")
    efa_device_plugin: EfaDevicePluginConfig = Field(default_factory=EfaDevicePluginConfig, description="AWS EFA Kubernetes device plugin (on EFA pools).")
    network_operator: NetworkOperatorConfig = Field(default_factory=NetworkOperatorConfig, description="NVIDIA Network Operator (ConnectX fabrics only).")
    kai: KaiConfig = Field(default_factory=KaiConfig, description="KAI Scheduler, its queues and topology.")
    lws: LwsConfig = Field(default_factory=LwsConfig, description="LeaderWorkerSet controller.")
    grove: GroveConfig = Field(default_factory=GroveConfig, description="NVIDIA Grove operator.")
    metrics_server: AddonConfig = Field(default_factory=AddonConfig, description="metrics-server (resource metrics for kubectl top and HPA).")
    load_balancer_controller: AddonConfig = Field(default_factory=AddonConfig, description="AWS Load Balancer Controller (NLB for the router).")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, description="Metrics stack scraping DCGM and the engines.")
    keda: AddonConfig = Field(default_factory=AddonConfig, description="KEDA, which scales prefill and decode on engine metrics.")
    controller_replicas: int = Field(
        2,
        ge=1,
        le=5,
        description=(
            "Replicas of the KAI, LWS and Grove controllers (each behind a fail-closed webhook), spread over the system "
            "nodes with a PodDisruptionBudget allowing one down. Default 2."
        ),
    )

    @property
    def lws_enabled(self) -> bool:
        return self.lws.enabled if self.lws.enabled is not None else self.workload_api == "lws"

    @property
    def grove_enabled(self) -> bool:
        return self.grove.enabled if self.grove.enabled is not None else self.workload_api == "grove"
