"""Instance catalog: every EC2 instance fact the stack uses, in one place, with its sources.

Nothing else in the project may hard-code a GPU count, an EFA count, a disk layout or a price; read them here
(`from facts.catalog import instance_type`).

Units (as the sources report them, converted in one place, `_entry`):

* `gpu_memory_gib` -- per GPU, GiB = the EC2 DescribeInstanceTypes `GpuInfo.Gpus[].MemoryInfo.SizeInMiB` value
  (Karpenter label `karpenter.k8s.aws/instance-gpu-memory`, MiB) / 1024. H100 = 80, H200 = 141, A100 = 40 or 80;
  L40S = 44.7 and A10G = 22.35 here although NVIDIA markets them as "48 GB" / "24 GB": EC2 reports the usable size.
* `memory_gib` -- instance memory, MiB from DescribeInstanceTypes (`karpenter.k8s.aws/instance-memory`) / 1024.
* `nvme_gb` -- total instance-store size in decimal GB exactly as EC2 reports `InstanceStorageInfo.TotalSizeInGB`
  (`karpenter.k8s.aws/instance-local-nvme`); p5 = 30400 (8 disks; AWS markets them as "8 x 3.84 TB").
* `efa_interfaces` -- `NetworkInfo.EfaInfo.MaximumEfaInterfaces` (Karpenter resource `vpc.amazonaws.com/efa`).
* `network_cards` -- length of `NetworkInfo.NetworkCards` (Karpenter `zz_generated.vpclimits.go`).
* `max_pods` -- VPC CNI limit without prefix delegation: ENIs on the default network card x (IPv4 per ENI - 1) + 2,
  the value Karpenter publishes as the `pods` resource (p5: 2 x (50 - 1) + 2 = 100; EFA-only cards carry no pod IPs).
* `primary_card_efa` -- whether network card 0 supports EFA (`NetworkInfo.NetworkCards[0]`'s interface types). On
  p6-b300.48xlarge card 0 is ENA-only and its 16 EFA interfaces sit on cards 1-16 (moto 5.2.5's recorded
  DescribeInstanceTypes data, `moto/ec2/resources/instance_types.json.gz`: card 0 `InterfaceTypes: [interface]`,
  cards 1-16 `[interface, efa, efa-only]`), which changes the launch template's interface layout.

Prices are Linux On-Demand, shared tenancy, USD per instance-hour, as published by the AWS Price List API at
`price_date` for `price_region` (every row says both; today all rows are us-east-1, `PRICE_REGION`).
`price_estimate` marks a row whose figure is not a published price of that type (p5e); the render's summary says
so, and says when the stack runs in another region than the prices were read for. They are list prices: Savings Plans, Capacity Blocks and reservations cost
something else. P5 prices changed a lot (June 2025: p5.48xlarge 98.32 -> 55.04 USD/h, p4d 32.77 -> 21.96), so
re-read `price_date` before quoting a figure and bump the snapshot with the rest of the table.

Every entry names its `spec_source` and `price_source`; where a value could not be confirmed, the source text says so.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

PRICE_REGION = "us-east-1"

# karpenter-provider-aws regenerates these three files from the EC2 and Price List APIs ("chore: Update data from
# AWS APIs"); pinned to the commit that was read so the figures can be re-checked.
_KARPENTER = "https://github.com/aws/karpenter-provider-aws/blob/1d927085dd81a9df9301e613f371dac5b4d16bfe"
_SPEC_KARPENTER = (
    f"{_KARPENTER}/website/content/en/docs/reference/instance-types.md (EC2 DescribeInstanceTypes: vCPU, memory, "
    f"GPU count/name/memory, local NVMe total, EFA, pods) + {_KARPENTER}/pkg/providers/instancetype/"
    "zz_generated.vpclimits.go (generated 2026-08-06: network cards, ENIs, IPv4 per ENI -> max pods)"
)
# Per-disk layout ("N x SIZE GB NVMe SSD") is not in the Karpenter data; it comes from the AWS Price List `storage`
# attribute as reproduced in a generated Ec2InstanceType table (Amazon, Apache-2.0), cross-checked against the totals.
_SPEC_DISKS = (
    "disk count: AWS Price List 'storage' attribute (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html "
    "lists the same instance-store layout; page not read directly)"
)
_PRICE_SNAPSHOT = (
    f"{_KARPENTER}/pkg/providers/pricing/zz_generated.pricing_aws.go (AWS Price List API snapshot 'generated at "
    "2026-07-20T13:44:30Z for us-east-1', Linux On-Demand); list page https://aws.amazon.com/ec2/pricing/on-demand/"
)
_PRICE_DATE = "2026-07-20"

# Which types carry the EKS network topology labels, and how many layers. EKS's cloud controller calls
# ec2:DescribeInstanceTopology for each node and writes one label per returned network node,
# topology.k8s.aws/network-node-layer-<i> (kubernetes/cloud-provider-aws pkg/providers/v1/instances_v2.go
# getAdditionalLabels); types the API does not cover get none. The EC2 list (read 2026-08 through a verbatim quote,
# the page itself was not reachable offline): 3 network nodes for p3dn, p4d, p4de, p5, p5e, p5en, p6e-gb200, every
# g6e and g7e size, hpc6a/6id/7a/7g/8a, trn1, trn1n, trn2, trn2u; 4 for p6-b200 and p6-b300. g5 is not listed.
TOPOLOGY_SOURCE = (
    "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-topology-prerequisites.html (Instance types: "
    "number of network nodes returned) + kubernetes/cloud-provider-aws pkg/providers/v1/instances_v2.go"
)

# AWS publishes no On-Demand price for p5e.48xlarge in any region of the Price List snapshot above (nor in any
# earlier revision of that file): P5e is sold through EC2 Capacity Blocks for ML / capacity reservations
# (https://aws.amazon.com/ec2/capacityblocks/pricing/ lists it in US East (Ohio)). The catalog therefore carries the
# p5en.48xlarge figure (same 8 x H200) as a conservative stand-in so cost estimates are never 0 -- an estimate, not a
# quote.
_P5E_STAND_IN = 63.296
_P5E_PRICE_SOURCE = (
    "NOT an observed p5e price -- not confirmed offline: p5e.48xlarge has no On-Demand entry in "
    f"{_KARPENTER}/pkg/providers/pricing/zz_generated.pricing_aws.go (AWS Price List snapshot 2026-07-20, any "
    "region); P5e is sold via Capacity Blocks (https://aws.amazon.com/ec2/capacityblocks/pricing/). Value = "
    "p5en.48xlarge us-east-1 On-Demand price (same 8 x H200) used as a stand-in estimate."
)


@dataclass(frozen=True)
class InstanceType:
    name: str  # "p5.48xlarge"
    gpus: int  # 0 for CPU types
    gpu_model: str | None  # "H100", "H200", "A100", "L40S", "A10G"; None for CPU types
    gpu_memory_gib: float  # per GPU, GiB as EC2 reports it (MiB / 1024); 0 for CPU types
    vcpus: int
    memory_gib: float
    efa_interfaces: int  # max EFA interfaces (0 = no EFA support)
    network_cards: int  # max network cards
    nvme_disks: int  # instance-store NVMe volumes (0 = none)
    nvme_gb: int  # total instance-store GB (decimal, as EC2 reports it)
    max_pods: int  # VPC CNI max pods without prefix delegation
    on_demand_usd_per_hour: float  # Linux On-Demand in price_region
    price_source: str  # URL or doc the price comes from
    price_date: str  # ISO date the price was read/valid
    spec_source: str  # where the hardware facts come from
    price_region: str = PRICE_REGION  # the region the price is published for
    price_estimate: bool = False  # True: not a published price of this type (a stand-in)
    primary_card_efa: bool = True  # network card 0 supports EFA (False: ENA-only card 0, EFA on cards 1..N)
    # Layers of the AWS network topology this type reports (DescribeInstanceTopology NetworkNodes), which EKS puts on
    # the node as topology.k8s.aws/network-node-layer-1..N; 0 = the type gets no such labels (TOPOLOGY_SOURCE).
    network_topology_layers: int = 0

    def __post_init__(self) -> None:
        # A catalog entry that contradicts itself would silently mis-size pods and NIC layouts downstream.
        problems = []
        if (self.gpus > 0) != (self.gpu_model is not None) or (self.gpus > 0) != (self.gpu_memory_gib > 0):
            problems.append("gpus, gpu_model and gpu_memory_gib must be all set (GPU type) or all empty (CPU type)")
        if min(self.gpus, self.efa_interfaces, self.nvme_disks, self.nvme_gb) < 0:
            problems.append("counts must not be negative")
        if self.vcpus <= 0 or self.memory_gib <= 0 or self.network_cards <= 0 or self.max_pods <= 0:
            problems.append("vcpus, memory_gib, network_cards and max_pods must be positive")
        if (self.nvme_disks == 0) != (self.nvme_gb == 0):
            problems.append("nvme_disks and nvme_gb must be both zero or both positive")
        if self.network_topology_layers not in (0, 3, 4):
            problems.append("network_topology_layers must be 0 (no topology labels), 3 or 4")
        if self.on_demand_usd_per_hour <= 0:
            problems.append("on_demand_usd_per_hour must be positive")
        if not self.price_source.strip() or not self.spec_source.strip():
            problems.append("price_source and spec_source are required")
        if not self.price_region.strip():
            problems.append("price_region is required")
        efa_cards = self.network_cards if self.primary_card_efa else self.network_cards - 1
        if self.efa_interfaces > max(efa_cards, 0):
            problems.append(f"{self.efa_interfaces} EFA interfaces do not fit {efa_cards} EFA-capable network cards")
        try:
            _dt.date.fromisoformat(self.price_date)
        except ValueError:
            problems.append(f"price_date {self.price_date!r} is not an ISO date")
        if problems:
            raise ValueError(f"catalog entry {self.name}: " + "; ".join(problems))

    @property
    def efa_per_gpu(self) -> int:
        """Whole EFA interfaces per GPU (p5: 32 // 8 = 4, p5en: 2). 0 without GPU or EFA, and also when the type has
        fewer interfaces than GPUs (p4d: 4 EFA for 8 GPUs) -- size such pods from `efa_interfaces` directly."""
        if self.gpus == 0 or self.efa_interfaces == 0:
            return 0
        return self.efa_interfaces // self.gpus

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def supports_efa(self) -> bool:
        return self.efa_interfaces > 0


def _entry(
    name: str,
    *,
    gpus: int,
    gpu_model: str | None,
    gpu_mib: int,
    vcpus: int,
    memory_mib: int,
    efa: int,
    cards: int,
    nvme_disks: int,
    nvme_gb: int,
    max_pods: int,
    price: float,
    price_source: str = _PRICE_SNAPSHOT,
    price_estimate: bool = False,
    primary_card_efa: bool = True,
    spec_note: str = "",
    topology_layers: int = 0,
) -> InstanceType:
    """The table below is written in the units of its sources (MiB); the conversion to GiB happens only here."""
    spec = _SPEC_KARPENTER + ("; " + _SPEC_DISKS if nvme_disks else "") + ("; " + spec_note if spec_note else "")
    return InstanceType(
        name=name,
        gpus=gpus,
        gpu_model=gpu_model,
        gpu_memory_gib=gpu_mib / 1024,
        vcpus=vcpus,
        memory_gib=memory_mib / 1024,
        efa_interfaces=efa,
        network_cards=cards,
        nvme_disks=nvme_disks,
        nvme_gb=nvme_gb,
        max_pods=max_pods,
        on_demand_usd_per_hour=price,
        price_source=price_source,
        price_date=_PRICE_DATE,
        spec_source=spec + ("; network topology layers: " + TOPOLOGY_SOURCE if topology_layers else ""),
        price_region=PRICE_REGION,
        price_estimate=price_estimate,
        primary_card_efa=primary_card_efa,
        network_topology_layers=topology_layers,
    )


_ENTRIES = (
    # --- P: NVSwitch GPU types with EFA on every network card (the disaggregated-serving targets) ---------------------
    _entry("p5.48xlarge", gpus=8, gpu_model="H100", gpu_mib=81920, vcpus=192, memory_mib=2097152,
           efa=32, cards=32, nvme_disks=8, nvme_gb=30400, max_pods=100, price=55.04, topology_layers=3),
    _entry("p5e.48xlarge", gpus=8, gpu_model="H200", gpu_mib=144384, vcpus=192, memory_mib=2097152,
           efa=32, cards=32, nvme_disks=8, nvme_gb=30400, max_pods=100, price=_P5E_STAND_IN,
           price_source=_P5E_PRICE_SOURCE, price_estimate=True, topology_layers=3),
    # p5en: Intel host, same 3200 Gbps over half the network cards of p5/p5e (16 instead of 32), so half the EFA NICs.
    _entry("p5en.48xlarge", gpus=8, gpu_model="H200", gpu_mib=144384, vcpus=192, memory_mib=2097152,
           efa=16, cards=16, nvme_disks=8, nvme_gb=30400, max_pods=198, price=63.296,
           spec_note="p5en disk count 8 not confirmed offline per disk (30400 GB total = 8 x 3800 GB as on p5/p5e)", topology_layers=3),
    # p6-b200: 8 x B200 (183359 MiB each), Intel host, 3200 Gbps over 8 network cards with one EFA each (so 1 EFA per
    # GPU, not 4 as on p5), 4 ENIs on card 0 -> 4 x (50 - 1) + 2 = 198 pods.
    _entry("p6-b200.48xlarge", gpus=8, gpu_model="B200", gpu_mib=183359, vcpus=192, memory_mib=2097152,
           efa=8, cards=8, nvme_disks=8, nvme_gb=30400, max_pods=198, price=113.9328,
           spec_note="disk layout 8 x 3800 GB also in moto 5.2.5's recorded DescribeInstanceTypes", topology_layers=4),
    # p6-b300: 8 x B300 (275040 MiB each), 4 TiB host memory, 6400 Gbps: 17 network cards, card 0 ENA-only (350 Gbps)
    # and 16 EFA cards of 400 Gbps (see `primary_card_efa` above).
    _entry("p6-b300.48xlarge", gpus=8, gpu_model="B300", gpu_mib=275040, vcpus=192, memory_mib=4194304,
           efa=16, cards=17, nvme_disks=8, nvme_gb=30400, max_pods=198, price=142.416, primary_card_efa=False, topology_layers=4,
           spec_note=(
               "per-card interface types: moto 5.2.5 moto/ec2/resources/instance_types.json.gz (recorded "
               "DescribeInstanceTypes) -- NetworkCards[0].InterfaceTypes = [interface]"
           )),
    _entry("p4d.24xlarge", gpus=8, gpu_model="A100", gpu_mib=40960, vcpus=96, memory_mib=1179648,
           efa=4, cards=4, nvme_disks=8, nvme_gb=8000, max_pods=737, price=21.957642, topology_layers=3),
    _entry("p4de.24xlarge", gpus=8, gpu_model="A100", gpu_mib=81920, vcpus=96, memory_mib=1179648,
           efa=4, cards=4, nvme_disks=8, nvme_gb=8000, max_pods=737, price=27.44705, topology_layers=3),
    # --- G6e: L40S. EFA only from 8xlarge up (EC2 EFA-supported types); 12xlarge (4 GPUs) costs more than 16xlarge ---
    _entry("g6e.xlarge", gpus=1, gpu_model="L40S", gpu_mib=45776, vcpus=4, memory_mib=32768,
           efa=0, cards=1, nvme_disks=1, nvme_gb=250, max_pods=58, price=1.861, topology_layers=3),
    _entry("g6e.2xlarge", gpus=1, gpu_model="L40S", gpu_mib=45776, vcpus=8, memory_mib=65536,
           efa=0, cards=1, nvme_disks=1, nvme_gb=450, max_pods=58, price=2.24208, topology_layers=3),
    _entry("g6e.4xlarge", gpus=1, gpu_model="L40S", gpu_mib=45776, vcpus=16, memory_mib=131072,
           efa=0, cards=1, nvme_disks=1, nvme_gb=600, max_pods=234, price=3.00424, topology_layers=3),
    _entry("g6e.8xlarge", gpus=1, gpu_model="L40S", gpu_mib=45776, vcpus=32, memory_mib=262144,
           efa=1, cards=1, nvme_disks=1, nvme_gb=900, max_pods=234, price=4.52856, topology_layers=3),
    _entry("g6e.12xlarge", gpus=4, gpu_model="L40S", gpu_mib=45776, vcpus=48, memory_mib=393216,
           efa=1, cards=1, nvme_disks=2, nvme_gb=3800, max_pods=292, price=10.49264, topology_layers=3),
    _entry("g6e.16xlarge", gpus=1, gpu_model="L40S", gpu_mib=45776, vcpus=64, memory_mib=524288,
           efa=1, cards=1, nvme_disks=1, nvme_gb=1900, max_pods=737, price=7.57719, topology_layers=3),
    _entry("g6e.24xlarge", gpus=4, gpu_model="L40S", gpu_mib=45776, vcpus=96, memory_mib=786432,
           efa=2, cards=2, nvme_disks=2, nvme_gb=3800, max_pods=492, price=15.06559, topology_layers=3),
    _entry("g6e.48xlarge", gpus=8, gpu_model="L40S", gpu_mib=45776, vcpus=192, memory_mib=1572864,
           efa=4, cards=4, nvme_disks=4, nvme_gb=7600, max_pods=492, price=30.13118, topology_layers=3),
    # --- G5: A10G. EFA only from 8xlarge up, one interface even on the 8-GPU 48xlarge ---------------------------------
    _entry("g5.xlarge", gpus=1, gpu_model="A10G", gpu_mib=22888, vcpus=4, memory_mib=16384,
           efa=0, cards=1, nvme_disks=1, nvme_gb=250, max_pods=58, price=1.006),
    _entry("g5.2xlarge", gpus=1, gpu_model="A10G", gpu_mib=22888, vcpus=8, memory_mib=32768,
           efa=0, cards=1, nvme_disks=1, nvme_gb=450, max_pods=58, price=1.212),
    _entry("g5.4xlarge", gpus=1, gpu_model="A10G", gpu_mib=22888, vcpus=16, memory_mib=65536,
           efa=0, cards=1, nvme_disks=1, nvme_gb=600, max_pods=234, price=1.624),
    _entry("g5.8xlarge", gpus=1, gpu_model="A10G", gpu_mib=22888, vcpus=32, memory_mib=131072,
           efa=1, cards=1, nvme_disks=1, nvme_gb=900, max_pods=234, price=2.448),
    _entry("g5.12xlarge", gpus=4, gpu_model="A10G", gpu_mib=22888, vcpus=48, memory_mib=196608,
           efa=1, cards=1, nvme_disks=1, nvme_gb=3800, max_pods=737, price=5.672),
    _entry("g5.16xlarge", gpus=1, gpu_model="A10G", gpu_mib=22888, vcpus=64, memory_mib=262144,
           efa=1, cards=1, nvme_disks=1, nvme_gb=1900, max_pods=234, price=4.096),
    _entry("g5.24xlarge", gpus=4, gpu_model="A10G", gpu_mib=22888, vcpus=96, memory_mib=393216,
           efa=1, cards=1, nvme_disks=1, nvme_gb=3800, max_pods=737, price=8.144),
    _entry("g5.48xlarge", gpus=8, gpu_model="A10G", gpu_mib=22888, vcpus=192, memory_mib=786432,
           efa=1, cards=1, nvme_disks=2, nvme_gb=7600, max_pods=345, price=16.288),
    # --- CPU types for the system node group (EBS only: no instance store, no EFA) ------------------------------------
    _entry("m7i.xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=4, memory_mib=16384,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=58, price=0.2016),
    _entry("m7i.2xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=8, memory_mib=32768,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=58, price=0.4032),
    _entry("m7i.4xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=16, memory_mib=65536,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=234, price=0.8064),
    _entry("m6i.xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=4, memory_mib=16384,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=58, price=0.192),
    _entry("m6i.2xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=8, memory_mib=32768,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=58, price=0.384),
    _entry("c7i.2xlarge", gpus=0, gpu_model=None, gpu_mib=0, vcpus=8, memory_mib=16384,
           efa=0, cards=1, nvme_disks=0, nvme_gb=0, max_pods=58, price=0.357),
)

CATALOG: dict[str, InstanceType] = {it.name: it for it in sorted(_ENTRIES, key=lambda it: it.name)}
if len(CATALOG) != len(_ENTRIES):  # a duplicated row would silently shadow the other
    raise ValueError("duplicate instance type in the catalog")


def instance_type(name: str) -> InstanceType:
    """The catalog entry for `name`; KeyError(name) for a type the catalog does not know."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(name) from None


def known_instance_types(gpu: bool | None = None) -> list[str]:
    """Sorted names; `gpu=True` only GPU types, `gpu=False` only CPU types, None all."""
    return sorted(n for n, it in CATALOG.items() if gpu is None or it.is_gpu == gpu)


# --- Non-instance hourly prices the cost summary adds (same region, same rules) ---------------------------------------


@dataclass(frozen=True)
class ServicePrice:
    name: str
    usd_per_hour: float
    source: str
    price_date: str


SERVICE_PRICES: dict[str, ServicePrice] = {
    # Standard-support price; a cluster that drifts into extended support pays 0.60 USD/h instead.
    "eks-control-plane": ServicePrice(
        "eks-control-plane",
        0.10,
        "https://aws.amazon.com/eks/pricing/ (0.10 USD per cluster-hour in standard support; not confirmed offline "
        "from the AWS page itself -- extended-support 0.60 USD/h confirmed from the AWS notice quoted in "
        "https://github.com/WGBH-MLA/chowda/issues/217)",
        "2026-08-21",
    ),
    # Hourly charge only; the 0.045 USD/GB data-processing charge depends on traffic and is not estimated.
    "nat-gateway": ServicePrice(
        "nat-gateway",
        0.045,
        "https://aws.amazon.com/vpc/pricing/ (us-east-1 NAT gateway-hour; not confirmed offline from the AWS page "
        "itself -- figure consistent across 2026 third-party pricing write-ups)",
        "2026-08-21",
    ),
}


def service_price(name: str) -> float:
    """USD per hour in PRICE_REGION for a non-instance line of the cost summary; KeyError for unknown names."""
    try:
        return SERVICE_PRICES[name].usd_per_hour
    except KeyError:
        raise KeyError(f"no service price {name!r}; known: {', '.join(sorted(SERVICE_PRICES))}") from None


# --- On-Demand vCPU quotas (Service Quotas, service code `ec2`) --------------------------------------------------------
# EC2 limits running On-Demand instances per region by vCPUs per instance class, one quota per class. The P and G/VT
# codes are the ones the Service Quotas console files increases against (console URLs
# https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/<code>); L-1216C47A with its full name is the
# AWS CLI documentation's own `get-aws-default-service-quota` example
# (https://docs.aws.amazon.com/cli/latest/userguide/cli_service-quotas_code_examples.html). Not confirmed offline
# from the quota list itself for P and G: the same codes and names recur in public preflight scripts verified against
# live accounts in 2026.


@dataclass(frozen=True)
class VcpuQuota:
    code: str
    name: str


VCPU_QUOTAS: dict[str, VcpuQuota] = {
    "P": VcpuQuota("L-417A185B", "Running On-Demand P instances"),
    "G": VcpuQuota("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "standard": VcpuQuota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
}
_STANDARD_CLASSES = set("acdhimrtz")


def vcpu_quota(name: str) -> VcpuQuota:
    """The On-Demand vCPU quota an instance type counts against, by the letter its family starts with
    (p5, p6-b200 -> P; g6e, vt1 -> G and VT; m7i, c7i -> Standard). KeyError for a class this table does not know."""
    letter = name.split(".", 1)[0][:1].lower()
    if letter == "p":
        return VCPU_QUOTAS["P"]
    if letter in ("g", "v"):
        return VCPU_QUOTAS["G"]
    if letter in _STANDARD_CLASSES:
        return VCPU_QUOTAS["standard"]
    raise KeyError(f"no On-Demand vCPU quota known for {name}")
