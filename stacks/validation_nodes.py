"""What each `disagg:nodeProvisioning` mode cannot do with a key that the others honour, said with the fix.

A GPU pool has the same keys in every mode; a key a mode cannot honour is refused rather than silently dropped. Keys
left at their defaults are not reported: a default that does not apply (the RAID0 of `nvmeCache` on Auto Mode) is
documented in docs/aws.md instead. Rules of the registry (stacks/rules.py).
"""

from __future__ import annotations

from stacks.config.base import Issue, key_path
from stacks.config.stack import StackConfig
from stacks.plan import pool_efa
from stacks.rules import rule

KARPENTER = "karpenter"
AUTO_MODE = "autoMode"
_OTHER_MODES = "or set disagg:nodeProvisioning to managedNodeGroups"
_FIX_MODE = "or set disagg:nodeProvisioning to karpenter or managedNodeGroups"


# ---- Karpenter ---------------------------------------------------------------------------------------------------


@rule("karpenter.no-reservation-group", "gpuPools[].capacity.reservationResourceGroupArn", "nodeProvisioning", scope="pool")
def karpenter_no_reservation_group(cfg: StackConfig, i: int, p):
    """Under Karpenter a pool targets a reservation by id (Karpenter selects none by resource group)."""
    arn = p.capacity.reservation_resource_group_arn
    if cfg.node_provisioning == KARPENTER and arn is not None:
        yield Issue(
            key_path("gpuPools", i, "capacity", "reservationResourceGroupArn"),
            arn,
            "Karpenter selects capacity reservations by id, owner or tags, not by resource group "
            "(EC2NodeClass capacityReservationSelectorTerms)",
            f"set capacity.reservationId to a reservation of the group, {_OTHER_MODES}",
        )


@rule("karpenter.one-node-repair", "gpuPools[].nodeRepair", "nodeProvisioning")
def karpenter_one_node_repair(cfg: StackConfig):
    """Under Karpenter every GPU pool has the same nodeRepair (one feature gate for the whole controller)."""
    if cfg.node_provisioning != KARPENTER:
        return
    if len({p.node_repair for p in cfg.gpu_pools}) > 1:
        i = next(i for i, p in enumerate(cfg.gpu_pools) if not p.node_repair)
        yield Issue(
            key_path("gpuPools", i, "nodeRepair"),
            False,
            "Karpenter's node repair is one feature gate for the whole controller, and another pool turns it on, "
            "so this pool's nodes would be repaired too",
            "give every GPU pool the same nodeRepair",
        )


# ---- EKS Auto Mode -----------------------------------------------------------------------------------------------


@rule("auto-mode.on-demand-only", "gpuPools[].capacity.type", "nodeProvisioning", scope="pool")
def auto_mode_on_demand_only(cfg: StackConfig, i: int, p):
    """Under EKS Auto Mode a pool runs On-Demand (the built-in NodeClass selects no reservation or block)."""
    if cfg.node_provisioning == AUTO_MODE and p.capacity.type != "onDemand":
        yield Issue(
            key_path("gpuPools", i, "capacity", "type"),
            p.capacity.type,
            "the pools of this stack use EKS Auto Mode's built-in NodeClass, which selects no capacity "
            "reservation or Capacity Block, so the pool would never launch into it",
            f"use capacity.type onDemand, {_FIX_MODE}",
        )


@rule("auto-mode.no-placement-group", "gpuPools[].placementGroup", "gpuPools[].placementGroupName", "nodeProvisioning", scope="pool")
def auto_mode_no_placement_group(cfg: StackConfig, i: int, p):
    """Under EKS Auto Mode no pool asks for a placement group (Auto Mode launches into none)."""
    if cfg.node_provisioning != AUTO_MODE:
        return
    if p.placement_group_name is not None or p.placement_group:
        key = "placementGroupName" if p.placement_group_name is not None else "placementGroup"
        yield Issue(
            key_path("gpuPools", i, key),
            p.placement_group_name if p.placement_group_name is not None else True,
            "EKS Auto Mode launches no instance into a placement group (EKS user guide device-management-efa)",
            f"remove {key}, {_FIX_MODE}",
        )


@rule("auto-mode.no-nvme-cache", "gpuPools[].nvmeCache", "nodeProvisioning", scope="pool")
def auto_mode_no_nvme_cache(cfg: StackConfig, i: int, p):
    """Under EKS Auto Mode no pool turns nvmeCache on (the stack cannot build the RAID0 there)."""
    if cfg.node_provisioning == AUTO_MODE and "nvme_cache" in p.model_fields_set and p.nvme_cache:
        yield Issue(
            key_path("gpuPools", i, "nvmeCache"),
            True,
            "EKS Auto Mode takes no user data or nodeadm NodeConfig and manages node storage itself, so the "
            "stack cannot build the instance-store RAID0",
            f"remove nvmeCache, {_FIX_MODE}",
        )


@rule("auto-mode.no-ami-pin", "gpuPools[].amiReleaseVersion", "nodeProvisioning", scope="pool")
def auto_mode_no_ami_pin(cfg: StackConfig, i: int, p):
    """Under EKS Auto Mode no pool pins an AMI release (EKS chooses and patches the node image)."""
    if cfg.node_provisioning == AUTO_MODE and p.ami_release_version is not None:
        yield Issue(
            key_path("gpuPools", i, "amiReleaseVersion"),
            p.ami_release_version,
            "EKS Auto Mode chooses and patches the node image itself; no AMI can be pinned",
            f"remove amiReleaseVersion, {_FIX_MODE}",
        )


@rule("auto-mode.no-root-volume", "gpuPools[].rootVolumeGb", "nodeProvisioning", scope="pool")
def auto_mode_no_root_volume(cfg: StackConfig, i: int, p):
    """Under EKS Auto Mode no pool sizes its root volume (the built-in NodeClass sizes node storage)."""
    if cfg.node_provisioning == AUTO_MODE and "root_volume_gb" in p.model_fields_set:
        yield Issue(
            key_path("gpuPools", i, "rootVolumeGb"),
            p.root_volume_gb,
            "the built-in NodeClass sizes the node's storage (its ephemeralStorage), not the pool",
            f"remove rootVolumeGb, {_FIX_MODE}",
        )


@rule("auto-mode.no-nvme-model-cache", "serving.modelCache.kind", "nodeProvisioning")
def auto_mode_no_nvme_model_cache(cfg: StackConfig):
    """Under EKS Auto Mode the model cache is a pvc (Auto Mode nodes build no NVMe array)."""
    if cfg.node_provisioning == AUTO_MODE and cfg.serving.model_cache.kind == "nvme":
        yield Issue(
            key_path("serving", "modelCache", "kind"),
            "nvme",
            "the nvme cache is a hostPath on the RAID0 that nodeadm builds on the AL2023 NVIDIA AMI; EKS Auto Mode "
            "nodes run an image EKS manages and build no array at that path",
            f"use kind pvc with a ReadWriteMany storage class (EFS or FSx for Lustre), {_FIX_MODE}",
        )


@rule("auto-mode.no-gpu-operator", "platform.gpuOperator.enabled", "nodeProvisioning")
def auto_mode_no_gpu_operator(cfg: StackConfig):
    """Under EKS Auto Mode the GPU Operator is off (Auto Mode runs the driver and device plugin itself)."""
    if cfg.node_provisioning == AUTO_MODE and cfg.platform.gpu_operator.enabled:
        yield Issue(
            key_path("platform", "gpuOperator", "enabled"),
            True,
            "EKS Auto Mode runs the NVIDIA driver and device plugin on its GPU nodes itself (EKS user guide "
            "automode/auto-accelerated); a second device plugin would advertise the same GPUs twice",
            f"set platform.gpuOperator.enabled to false, {_FIX_MODE}",
        )


@rule("auto-mode.no-mig", "platform.gpuOperator.migManager", "nodeProvisioning")
def auto_mode_no_mig(cfg: StackConfig):
    """Under EKS Auto Mode the MIG manager is off (it does not run on Auto Mode nodes)."""
    if cfg.node_provisioning == AUTO_MODE and cfg.platform.gpu_operator.mig_manager:
        yield Issue(
            key_path("platform", "gpuOperator", "migManager"),
            True,
            "MIG partitions are made by the GPU Operator's MIG manager, which does not run on EKS Auto Mode nodes",
            f"set platform.gpuOperator.migManager to false and serve whole GPUs, {_FIX_MODE}",
        )


@rule("auto-mode.no-efa-device-plugin", "platform.efaDevicePlugin.enabled", "nodeProvisioning")
def auto_mode_no_efa_device_plugin(cfg: StackConfig):
    """Under EKS Auto Mode with EFA pools the EFA device plugin is off (Auto Mode node images run it)."""
    if cfg.node_provisioning != AUTO_MODE or not cfg.platform.efa_device_plugin.enabled:
        return
    if any(pool_efa(p) for p in cfg.gpu_pools):
        yield Issue(
            key_path("platform", "efaDevicePlugin", "enabled"),
            True,
            "EKS Auto Mode node images already run the EFA device plugin (aws/eks-charts#1358), and the chart's "
            "DaemonSet refuses Auto Mode nodes (affinity eks.amazonaws.com/compute-type NotIn auto)",
            f"set platform.efaDevicePlugin.enabled to false, {_FIX_MODE}",
        )
