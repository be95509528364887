"""The instance catalog: sourced hardware facts, prices and the lookup API."""

import dataclasses
import datetime as dt

import pytest

from facts import catalog
from facts.catalog import CATALOG, PRICE_REGION, InstanceType, instance_type, known_instance_types, service_price

REQUIRED = [
    "p6-b200.48xlarge", "p6-b300.48xlarge",
    "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p4d.24xlarge", "p4de.24xlarge",
    *[f"g6e.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")],
    *[f"g5.{s}" for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge")],
    "m7i.xlarge", "m7i.2xlarge", "m7i.4xlarge", "m6i.xlarge", "m6i.2xlarge", "c7i.2xlarge",
]
GPU_MODELS = {"H100", "H200", "B200", "B300", "A100", "L40S", "A10G"}


@pytest.mark.parametrize("name", REQUIRED)
def test_required_entries_exist(name):
    assert instance_type(name).name == name


def test_p5_48xlarge_facts():
    p5 = instance_type("p5.48xlarge")
    assert (p5.gpus, p5.gpu_model, p5.gpu_memory_gib) == (8, "H100", 80)
    assert (p5.efa_interfaces, p5.network_cards, p5.efa_per_gpu) == (32, 32, 4)
    assert (p5.vcpus, p5.memory_gib) == (192, 2048)
    assert (p5.nvme_disks, p5.nvme_gb) == (8, 30400)
    assert p5.max_pods == 100
    # The guide quotes 55-98 USD/h depending on date and region; the June 2025 cut put us-east-1 at the low end.
    assert 50 <= p5.on_demand_usd_per_hour <= 100


def test_p5en_has_half_the_efa_of_p5():
    p5en = instance_type("p5en.48xlarge")
    assert (p5en.gpu_model, p5en.gpu_memory_gib) == ("H200", 141)
    assert (p5en.efa_interfaces, p5en.network_cards, p5en.efa_per_gpu) == (16, 16, 2)


def test_p5e_is_h200_with_p5_networking():
    p5e = instance_type("p5e.48xlarge")
    assert (p5e.gpus, p5e.gpu_model, p5e.gpu_memory_gib) == (8, "H200", 141)
    assert (p5e.efa_interfaces, p5e.network_cards) == (32, 32)


def test_p5e_price_is_flagged_as_an_estimate():
    # No On-Demand p5e price is published; the stand-in must say so rather than look like a quote.
    assert "NOT an observed p5e price" in instance_type("p5e.48xlarge").price_source


def test_p6_b200_facts():
    """Karpenter's DescribeInstanceTypes / vpclimits / pricing data at the pinned commit (catalog sources)."""
    b200 = instance_type("p6-b200.48xlarge")
    assert (b200.gpus, b200.gpu_model, b200.gpu_memory_gib) == (8, "B200", pytest.approx(183359 / 1024))
    assert (b200.vcpus, b200.memory_gib) == (192, 2048)
    # 8 network cards, one EFA each: one EFA per GPU, a quarter of p5's.
    assert (b200.efa_interfaces, b200.network_cards, b200.efa_per_gpu, b200.primary_card_efa) == (8, 8, 1, True)
    assert (b200.nvme_disks, b200.nvme_gb, b200.max_pods) == (8, 30400, 198)
    assert b200.on_demand_usd_per_hour == pytest.approx(113.9328)


def test_p6_b300_facts():
    b300 = instance_type("p6-b300.48xlarge")
    assert (b300.gpus, b300.gpu_model, b300.gpu_memory_gib, b300.memory_gib) == (8, "B300", pytest.approx(275040 / 1024), 4096)
    # 17 cards, 16 EFA: card 0 is ENA-only, so the interface layout differs (launch_template.efa_network_interfaces).
    assert (b300.efa_interfaces, b300.network_cards, b300.efa_per_gpu, b300.primary_card_efa) == (16, 17, 2, False)
    assert b300.on_demand_usd_per_hour == pytest.approx(142.416)


def test_every_price_row_says_its_region_and_date_and_whether_it_is_an_estimate():
    for it in CATALOG.values():
        assert it.price_region == PRICE_REGION and it.price_date
    estimates = sorted(n for n, it in CATALOG.items() if it.price_estimate)
    assert estimates == ["p5e.48xlarge"]


def test_vcpu_quota_classes():
    from facts.catalog import vcpu_quota

    assert vcpu_quota("p5.48xlarge").code == vcpu_quota("p6-b200.48xlarge").code == "L-417A185B"
    assert vcpu_quota("g6e.xlarge").code == "L-DB2E81BA"
    assert vcpu_quota("m7i.2xlarge").code == vcpu_quota("c7i.2xlarge").code == "L-1216C47A"
    assert all(vcpu_quota(n) for n in CATALOG)  # every catalog type has a class
    with pytest.raises(KeyError):
        vcpu_quota("x2iedn.32xlarge")


def test_p4_facts():
    p4d, p4de = instance_type("p4d.24xlarge"), instance_type("p4de.24xlarge")
    assert (p4d.gpu_model, p4d.gpu_memory_gib, p4d.efa_interfaces, p4d.network_cards) == ("A100", 40, 4, 4)
    assert (p4de.gpu_model, p4de.gpu_memory_gib, p4de.efa_interfaces) == ("A100", 80, 4)
    # 4 EFA for 8 GPUs: fewer than one whole interface per GPU.
    assert p4d.efa_per_gpu == 0


def test_efa_starts_at_8xlarge_for_g5_and_g6e():
    for family in ("g5", "g6e"):
        assert not instance_type(f"{family}.4xlarge").supports_efa
        assert instance_type(f"{family}.8xlarge").supports_efa
    assert instance_type("g6e.48xlarge").efa_interfaces == 4


def test_gpu_memory_is_in_gib_as_ec2_reports_it():
    # EC2 reports MiB; 45776 MiB (L40S) and 22888 MiB (A10G) are below the marketed 48 / 24 GB.
    assert instance_type("g6e.xlarge").gpu_memory_gib == pytest.approx(45776 / 1024)
    assert instance_type("g5.xlarge").gpu_memory_gib == pytest.approx(22888 / 1024)


@pytest.mark.parametrize("it", CATALOG.values(), ids=list(CATALOG))
def test_entry_invariants(it: InstanceType):
    if it.is_gpu:
        assert it.gpus > 0 and it.gpu_memory_gib > 0 and it.gpu_model in GPU_MODELS
    else:
        assert (it.gpus, it.gpu_model, it.gpu_memory_gib, it.efa_per_gpu) == (0, None, 0, 0)
    assert it.efa_per_gpu * it.gpus <= it.efa_interfaces
    assert it.supports_efa == (it.efa_interfaces > 0)
    assert (it.nvme_disks == 0) == (it.nvme_gb == 0)
    assert it.vcpus > 0 and it.memory_gib > 0 and it.max_pods > 0 and it.network_cards > 0
    assert it.on_demand_usd_per_hour > 0


@pytest.mark.parametrize("it", CATALOG.values(), ids=list(CATALOG))
def test_every_entry_carries_its_sources(it: InstanceType):
    assert it.price_source.strip() and it.spec_source.strip()
    assert "http" in it.price_source and "http" in it.spec_source
    assert dt.date.fromisoformat(it.price_date).isoformat() == it.price_date


def test_cpu_types_are_ebs_only_system_candidates():
    assert known_instance_types(gpu=False) == sorted(
        ["m7i.xlarge", "m7i.2xlarge", "m7i.4xlarge", "m6i.xlarge", "m6i.2xlarge", "c7i.2xlarge"]
    )
    assert all(instance_type(n).nvme_disks == 0 for n in known_instance_types(gpu=False))


def test_catalog_is_keyed_by_name_and_sorted():
    assert list(CATALOG) == sorted(CATALOG)
    assert all(k == v.name for k, v in CATALOG.items())


def test_known_instance_types_filters():
    gpu, cpu, every = known_instance_types(gpu=True), known_instance_types(gpu=False), known_instance_types()
    assert every == sorted(CATALOG) and sorted(gpu + cpu) == every
    assert "p5.48xlarge" in gpu and "p5.48xlarge" not in cpu
    assert all(instance_type(n).is_gpu for n in gpu) and not any(instance_type(n).is_gpu for n in cpu)


def test_unknown_instance_type_raises_key_error_with_the_name():
    with pytest.raises(KeyError) as err:
        instance_type("p9.96xlarge")
    assert err.value.args == ("p9.96xlarge",)


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        instance_type("p5.48xlarge").gpus = 4  # type: ignore[misc]


def _valid_fields(**overrides):
    fields = dataclasses.asdict(instance_type("m7i.xlarge"))
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    "overrides",
    [
        {"gpu_model": "H100"},  # a CPU type with a GPU model
        {"gpus": 8},  # GPUs without model or memory
        {"nvme_disks": 2},  # disks without capacity
        {"price_date": "July 2026"},
        {"price_source": " "},
        {"on_demand_usd_per_hour": 0.0},
        {"price_region": ""},
        {"efa_interfaces": 2},  # more EFA interfaces than network cards
    ],
)
def test_inconsistent_entries_are_rejected(overrides):
    with pytest.raises(ValueError, match="m7i.xlarge"):
        InstanceType(**_valid_fields(**overrides))


def test_price_region_and_service_prices():
    assert PRICE_REGION == "us-east-1"
    assert service_price("eks-control-plane") > 0 and service_price("nat-gateway") > 0
    assert all(p.source.startswith("https://") for p in catalog.SERVICE_PRICES.values())
    with pytest.raises(KeyError, match="nat-gateway"):
        service_price("transit-gateway")
