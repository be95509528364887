"""GPU performance limits the sizing model divides by, with their sources.

Capacity facts (GPUs per instance, memory per GPU, EFA) stay in the instance catalog (`facts.catalog`); this table
holds only what the catalog has no column for: dense tensor-core FLOP/s per dtype, HBM bandwidth and NVLink
bandwidth. Only GPUs with measured per-operation tables in the calibration (`system` set) can be planned on; the
others are listed so the planner can say why it refuses them instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

_H100_DATASHEET = (
    "https://www.nvidia.com/en-us/data-center/h100/ (H100 SXM: BF16 1,979 TFLOPS and FP8 3,958 TFLOPS with "
    "sparsity, i.e. 989.4 / 1,978.9 dense; HBM3 80 GB at 3.35 TB/s; NVLink 900 GB/s); the same constants in "
    "ai-dynamo/aiconfigurator @ 095f58a5 : aic-core/src/aiconfigurator_core/systems/h100_sxm.yaml"
)
_H200_DATASHEET = (
    "https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM: same Tensor Core rates as H100 SXM; HBM3e 141 GB at "
    "4.8 TB/s; NVLink 900 GB/s); the same constants in ai-dynamo/aiconfigurator @ 095f58a5 : "
    "aic-core/src/aiconfigurator_core/systems/h200_sxm.yaml"
)


@dataclass(frozen=True)
class GpuSpec:
    name: str
    catalog_model: str  # `InstanceType.gpu_model` in facts.catalog
    system: str | None  # AIConfigurator system name of the calibrated per-op tables; None = not calibrated
    bf16_flops: float  # dense FLOP/s
    fp8_flops: float  # dense FLOP/s; 0 = no FP8 tensor cores
    hbm_bytes_per_s: float
    nvlink_bytes_per_s: float  # per GPU, one direction
    source: str

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor-core rate a GEMM of `dtype` runs at. Hopper has no FP4/INT4 tensor cores: such weights are
        dequantized to BF16 in the kernel, so they save bytes, not FLOPs."""
        if dtype in ("fp8", "fp8_block", "int8") and self.fp8_flops:
            return self.fp8_flops
        return self.bf16_flops


GPUS: dict[str, GpuSpec] = {
    "H100-SXM": GpuSpec("H100-SXM", "H100", "h100_sxm", 989.4e12, 1978.9e12, 3.35e12, 450e9, _H100_DATASHEET),
    "H200-SXM": GpuSpec("H200-SXM", "H200", "h200_sxm", 989.4e12, 1978.9e12, 4.8e12, 450e9, _H200_DATASHEET),
}

# AIConfigurator system names as they appear in silicon_refs.csv, mapped to ours.
SYSTEMS: dict[str, str] = {spec.system: key for key, spec in GPUS.items() if spec.system}


def gpu_for_system(system: str) -> GpuSpec | None:
    key = SYSTEMS.get(system)
    return GPUS[key] if key else None


# Instance network bandwidth over EFA, Gbps (the instance catalog carries the EFA interface count, not the rate).
# One EFA interface's share is this divided by `InstanceType.efa_interfaces`: 100 Gbps on p5/p5e (32 interfaces),
# 200 Gbps on p5en (16 EFAv3 interfaces). A pod's share is its `efa_per_pod` (stacks.plan.role_plan) times that.
_P5_NET = (
    "https://aws.amazon.com/ec2/instance-types/p5/ (P5, P5e and P5en: up to 3,200 Gbps of EFA networking; P5en with "
    "EFAv3) and https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html (network bandwidth column)"
)
NETWORK_GBPS: dict[str, tuple[float, str]] = {
    "p5.48xlarge": (3200.0, _P5_NET),
    "p5e.48xlarge": (3200.0, _P5_NET),
    "p5en.48xlarge": (3200.0, _P5_NET),
}


def efa_gbps_per_interface(instance_type: str, efa_interfaces: int) -> float:
    """Gbps of one EFA interface of `instance_type`; 0 when the rate is not in NETWORK_GBPS (KV transfer unknown)."""
    total = NETWORK_GBPS.get(instance_type, (0.0, ""))[0]
    return total / efa_interfaces if efa_interfaces else 0.0
