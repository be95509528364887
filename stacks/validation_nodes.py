"""What each `disagg:nodeProvisioning` mode cannot do with a key that the others honour, said with the fix.

A GPU pool has the same keys in every mode; a key a mode cannot honour is refused rather than silently dropped. Keys
left at their defaults are not reported: a default that does not apply (the RAID0 of `nvmeCache` on Auto Mode) is
documented in docs/aws.md instead. Called from stacks/validation.py.
"""

from __future__ import annotations

from stacks.config.base import Issue, key_path
from stacks.config.stack import StackConfig
from stacks.plan import pool_efa

KARPENTER = "karpenter"
AUTO_MODE = "autoMode"
_OTHER_MODES = "or set disagg:nodeProvisioning to managedNodeGroups"


def check_node_provisioning(cfg: StackConfig, add) -> None:
    if cfg.node_provisioning == KARPENTER:
        _check_karpenter(cfg, add)
    elif cfg.node_provisioning == AUTO_MODE:
        _check_auto_mode(cfg, add)


def _check_karpenter(cfg: StackConfig, add) -> None:
    for i, p in enumerate(cfg.gpu_pools):
        arn = p.capacity.reservation_resource_group_arn
        if arn is not None:
            add(
                Issue(
                    key_path("gpuPools", i, "capacity", "reservationResourceGroupArn"),
                    arn,
                    "Karpenter selects capacity reservations by id, owner or tags, not by resource group "
                    "(EC2NodeClass capacityReservationSelectorTerms)",
                    f"set capacity.reservationId to a reservation of the group, {_OTHER_MODES}",
                )
            )
    repair = {p.node_repair for p in cfg.gpu_pools}
    if len(repair) > 1:
        i = next(i for i, p in enumerate(cfg.gpu_pools) if not p.node_repair)
        add(
            Issue(
                key_path("gpuPools", i, "nodeRepair"),
                False,
                "Karpenter's node repair is one feature gate for the whole controller, and another pool turns it on, "
                "so this pool's nodes would be repaired too",
                "give every GPU pool the same nodeRepair",
            )
        )


def _check_auto_mode(cfg: StackConfig, add) -> None:
    fix_mode = "or set disagg:nodeProvisioning to karpenter or managedNodeGroups"
    for i, p in enumerate(cfg.gpu_pools):
        explicit = p.model_fields_set
        if p.capacity.type != "onDemand":
            add(
                Issue(
                    key_path("gpuPools", i, "capacity", "type"),
                    p.capacity.type,
                    "the pools of this stack use EKS Auto Mode's built-in NodeClass, which selects no capacity "
                    "reservation or Capacity Block, so the pool would never launch into it",
                    f"use capacity.type onDemand, {fix_mode}",
                )
            )
        if p.placement_group_name is not None or p.placement_group:
            key = "placementGroupName" if p.placement_group_name is not None else "placementGroup"
            add(
                Issue(
                    key_path("gpuPools", i, key),
                    p.placement_group_name if p.placement_group_name is not None else True,
                    "EKS Auto Mode launches no instance into a placement group (EKS user guide device-management-efa)",
                    f"remove {key}, {fix_mode}",
                )
            )
        if "nvme_cache" in explicit and p.nvme_cache:
            add(
                Issue(
                    key_path("gpuPools", i, "nvmeCache"),
                    True,
                    "EKS Auto Mode takes no user data or nodeadm NodeConfig and manages node storage itself, so the "
                    "stack cannot build the instance-store RAID0",
                    f"remove nvmeCache, {fix_mode}",
                )
            )
        if p.ami_release_version is not None:
            add(
                Issue(
                    key_path("gpuPools", i, "amiReleaseVersion"),
                    p.ami_release_version,
                    "EKS Auto Mode chooses and patches the node image itself; no AMI can be pinned",
                    f"remove amiReleaseVersion, {fix_mode}",
                )
            )
        if "root_volume_gb" in explicit:
            add(
                Issue(
                    key_path("gpuPools", i, "rootVolumeGb"),
                    p.root_volume_gb,
                    "the built-in NodeClass sizes the node's storage (its ephemeralStorage), not the pool",
                    f"remove rootVolumeGb, {fix_mode}",
                )
            )
    if cfg.serving.model_cache.kind == "nvme":
        add(
            Issue(
                key_path("serving", "modelCache", "kind"),
                "nvme",
                "the nvme cache is a hostPath on the RAID0 that nodeadm builds on the AL2023 NVIDIA AMI; EKS Auto Mode "
                "nodes run an image EKS manages and build no array at that path",
                f"use kind pvc with a ReadWriteMany storage class (EFS or FSx for Lustre), {fix_mode}",
            )
        )
    pf = cfg.platform
    if pf.gpu_operator.enabled:
        add(
            Issue(
                key_path("platform", "gpuOperator", "enabled"),
                True,
                "EKS Auto Mode runs the NVIDIA driver and device plugin on its GPU nodes itself (EKS user guide "
                "automode/auto-accelerated); a second device plugin would advertise the same GPUs twice",
                f"set platform.gpuOperator.enabled to false, {fix_mode}",
            )
        )
    if pf.gpu_operator.mig_manager:
        add(
            Issue(
                key_path("platform", "gpuOperator", "migManager"),
                True,
                "MIG partitions are made by the GPU Operator's MIG manager, which does not run on EKS Auto Mode nodes",
                f"set platform.gpuOperator.migManager to false and serve whole GPUs, {fix_mode}",
            )
        )
    if pf.efa_device_plugin.enabled and any(pool_efa(p) for p in cfg.gpu_pools):
        add(
            Issue(
                key_path("platform", "efaDevicePlugin", "enabled"),
                True,
                "EKS Auto Mode node images already run the EFA device plugin (aws/eks-charts#1358), and the chart's "
                "DaemonSet refuses Auto Mode nodes (affinity eks.amazonaws.com/compute-type NotIn auto)",
                f"set platform.efaDevicePlugin.enabled to false, {fix_mode}",
            )
        )
