"""The deploy checks (stacks/preflight.py): each check fails on a recorded bad answer and passes on a good one; the
AWS calls behind them run against moto where moto has the API (instance type offerings, STS, EKS) and through
botocore's Stubber otherwise (capacity reservations, Service Quotas: moto 5.2.5 has neither for EC2), which checks
every request and recorded response against the botocore service model."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from stacks import preflight
from stacks.config import parse
from tooling.fakes import RecordedAnswers, recorded_for
from stacks.preflight_aws import AwsAnswers, parse_reservation
from tests.conftest import BASE, CONFIGS, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "preflight"
CB_CONFIG = CONFIGS / "Pulumi.capacity-block.yaml"
NOW = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def cb_cfg():
    from tooling.render import load

    return load(CB_CONFIG, "capacity-block")[2]


def keys(issues) -> list[str]:
    return [i.key for i in issues]


def answers_for(cfg_values: dict, **overrides) -> RecordedAnswers:
    """The fake account's answers for a config given as values (what the offline render uses)."""
    engine = {f"disagg:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in cfg_values.items()}
    data = recorded_for(engine)
    data.update(overrides)
    return RecordedAnswers(data)


# --- public endpoint CIDRs (config only) ---------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["198.51.100.0/24", "192.0.2.10/32", "203.0.113.0/25"])
def test_documentation_ranges_are_refused(cidr):
    values = copy.deepcopy(BASE)
    values["cluster"]["publicAccessCidrs"] = ["100.24.16.0/24", cidr]
    (issue,) = preflight.check_public_access_cidrs(parse(values, stack="t"))
    assert issue.key == "disagg:cluster.publicAccessCidrs[1]" and "RFC 5737" in issue.problem
    assert "pulumi config set --path 'disagg:cluster.publicAccessCidrs[1]'" in issue.fix


def test_real_ranges_pass_and_a_wider_range_is_not_a_placeholder():
    values = copy.deepcopy(BASE)
    values["cluster"]["publicAccessCidrs"] = ["100.24.16.0/24", "198.0.0.0/8"]
    values["tags"] = {"environment": "prod"}
    assert preflight.check_public_access_cidrs(parse(values, stack="t")) == []


def test_the_open_internet_is_refused_outside_dev():
    values = copy.deepcopy(BASE)
    values["cluster"]["publicAccessCidrs"] = ["0.0.0.0/0"]
    (issue,) = preflight.check_public_access_cidrs(parse(values, stack="t"))
    assert issue.key == "disagg:cluster.publicAccessCidrs[0]" and "whole internet" in issue.problem
    assert "disagg:tags.environment: dev" in issue.fix
    values["tags"] = {"environment": "dev"}
    assert preflight.check_public_access_cidrs(parse(values, stack="t")) == []


def test_cidrs_of_a_private_only_endpoint_are_not_checked():
    values = copy.deepcopy(BASE)
    values["cluster"] = {"publicAccessCidrs": ["198.51.100.0/24"], "endpointPublicAccess": False}
    assert preflight.check_public_access_cidrs(parse(values, stack="t")) == []


def test_the_committed_prod_file_is_refused_until_its_cidr_is_set():
    from tooling.render import load

    cfg = load(ROOT / "Pulumi.prod.yaml", "prod")[2]
    assert keys(preflight.check_public_access_cidrs(cfg)) == ["disagg:cluster.publicAccessCidrs[0]"]


# --- the EFA engine image (config only) ----------------------------------------------------------------------------


def test_the_committed_prod_file_is_refused_until_its_engine_image_is_set():
    from tooling.render import load

    cfg = load(ROOT / "Pulumi.prod.yaml", "prod")[2]
    (issue,) = preflight.check_engine_images(cfg)
    assert issue.key == "disagg:serving.engine.efaImage" and "123456789012" in issue.problem
    assert "vllm-efa-image workflow" in issue.fix and "pulumi config set --path 'disagg:serving.engine.efaImage'" in issue.fix


def test_the_tensorrt_llm_placeholder_names_its_own_image_and_workflow():
    from tooling.render import load

    cfg = load(ROOT / "tests/configs/Pulumi.trtllm.yaml", "trtllm")[2]
    (issue,) = preflight.check_engine_images(cfg)
    assert "build images/tensorrt-llm-efa with the tensorrt-llm-efa-image workflow" in issue.fix
    assert (ROOT / ".github/workflows/tensorrt-llm-efa-image.yml").is_file() and (ROOT / ".github/workflows/vllm-efa-image.yml").is_file()
    assert "disagg/tensorrt-llm-efa@sha256:" in issue.fix


def test_an_image_the_user_built_passes_and_a_stack_without_efa_needs_none():
    from tooling.render import load

    assert preflight.check_engine_images(load(ROOT / "tests/configs/Pulumi.capacity-block.yaml", "capacity-block")[2]) == []
    assert preflight.check_engine_images(load(ROOT / "Pulumi.dev.yaml", "dev")[2]) == []


# --- instance type offerings ------------------------------------------------------------------------------------------


def test_offerings_pass_on_the_good_answer_and_fail_per_pool_on_the_bad_one():
    cfg = cb_cfg()
    assert preflight.check_offerings(cfg, RecordedAnswers(recorded("good"))) == []
    issues = preflight.check_offerings(cfg, RecordedAnswers(recorded("bad")))
    assert keys(issues) == ["disagg:gpuPools[0].instanceType", "disagg:gpuPools[1].instanceType"]
    assert "not offered in us-east-2b" in issues[0].problem and "us-east-2a" in issues[0].fix


def test_the_system_pool_type_must_be_offered_in_every_stack_zone():
    data = recorded("good")
    data["DescribeInstanceTypeOfferings"][0]["InstanceTypeOfferings"] = [
        o for o in data["DescribeInstanceTypeOfferings"][0]["InstanceTypeOfferings"]
        if not (o["InstanceType"] == "m7i.2xlarge" and o["Location"] == "us-east-2a")
    ]
    issues = preflight.check_offerings(cb_cfg(), RecordedAnswers(data))
    assert keys(issues) == ["disagg:systemPool.instanceType"] and "us-east-2a" in issues[0].problem


# --- vCPU quotas --------------------------------------------------------------------------------------------------------


def test_quotas_pass_on_the_good_answer_and_fail_on_the_bad_one():
    cfg = cb_cfg()
    assert preflight.check_quotas(cfg, RecordedAnswers(recorded("good"))) == []
    (issue,) = preflight.check_quotas(cfg, RecordedAnswers(recorded("bad")))
    # 2 system nodes + an update surge of 2 per zone (DEFAULT strategy), 8 vCPUs each; the reserved GPU pools are not
    # counted against On-Demand quota.
    assert issue.key == "disagg:systemPool.maxNodes" and "48 vCPUs" in issue.problem and "L-1216C47A" in issue.problem
    assert "--quota-code L-1216C47A --desired-value 48 --region us-east-2" in issue.fix


def test_on_demand_p5_pools_count_at_max_nodes_against_the_p_quota():
    values = copy.deepcopy(BASE)
    values["cluster"]["publicAccessCidrs"] = ["100.24.16.0/24"]
    values["gpuPools"][0]["maxNodes"] = 3
    cfg = parse(values, stack="t")
    ok = answers_for(values)
    assert preflight.check_quotas(cfg, ok) == []
    low = copy.deepcopy(ok.recorded)
    low["GetServiceQuota"]["L-417A185B"]["Quota"]["Value"] = 768.0  # 4 p5 nodes fit, prefill at 3 + decode 1 = 4 fit
    assert preflight.check_quotas(cfg, RecordedAnswers(low)) == []
    low["GetServiceQuota"]["L-417A185B"]["Quota"]["Value"] = 192.0
    (issue,) = preflight.check_quotas(cfg, RecordedAnswers(low))
    assert issue.key == "disagg:gpuPools[0].maxNodes" and issue.value == 3
    assert "768 vCPUs" in issue.problem and "prefill 3 x p5.48xlarge = 576" in issue.problem


# --- reservations and Capacity Blocks -------------------------------------------------------------------------------


def test_reservations_pass_on_the_good_answer_and_fail_on_each_mismatch_of_the_bad_one():
    cfg = cb_cfg()
    assert preflight.check_reservations(cfg, RecordedAnswers(recorded("good"))) == []
    issues = preflight.check_reservations(cfg, RecordedAnswers(recorded("bad")))
    assert keys(issues) == [
        "disagg:gpuPools[0].availabilityZones",  # the block is in us-east-2a
        "disagg:gpuPools[0].capacity.reservationId",  # and expired
        "disagg:gpuPools[1].instanceType",  # the reservation holds p5e
        "disagg:gpuPools[1].placementGroupName",  # made inside a placement group the pool does not launch into
    ]


def _with_reservation(rid: str, **fields) -> RecordedAnswers:
    data = recorded("good")
    item = data["DescribeCapacityReservations"][rid]["CapacityReservations"][0]
    for k, v in fields.items():
        if v is None:
            item.pop(k, None)
        else:
            item[k] = v
    return RecordedAnswers(data)


BLOCK, ODCR = "cr-0123456789abcdef0", "cr-0fedcba9876543210"


@pytest.mark.parametrize(
    "rid, fields, key, words",
    [
        (ODCR, {"TotalInstanceCount": 0}, "disagg:gpuPools[1].nodes", "holds 0 instances"),
        (ODCR, {"State": "scheduled"}, "disagg:gpuPools[1].capacity.reservationId", "scheduled, not active"),
        (ODCR, {"State": "cancelled"}, "disagg:gpuPools[1].capacity.reservationId", "cancelled"),
        (ODCR, {"ReservationType": "capacity-block"}, "disagg:gpuPools[1].capacity.type", "is a Capacity Block"),
        (BLOCK, {"ReservationType": "default"}, "disagg:gpuPools[0].capacity.type", "On-Demand Capacity Reservation"),
        (BLOCK, {"State": "payment-failed"}, "disagg:gpuPools[0].capacity.reservationId", "payment-failed"),
        (BLOCK, {"State": "active", "EndDate": "2026-09-01T00:30:00Z"}, "disagg:gpuPools[0].capacity.reservationId", "40 minutes"),
        (ODCR, {"EndDate": "2026-08-31T00:00:00Z"}, "disagg:gpuPools[1].capacity.reservationId", "ended"),
        (ODCR, {"InstancePlatform": "Windows"}, "disagg:gpuPools[1].capacity.reservationId", "Windows"),
        (ODCR, {"Tenancy": "dedicated"}, "disagg:gpuPools[1].capacity.reservationId", "dedicated tenancy"),
        (BLOCK, {"InstanceType": "p5en.48xlarge"}, "disagg:gpuPools[0].instanceType", "holds p5en.48xlarge"),
    ],
)
def test_each_reservation_mismatch_is_one_problem(rid, fields, key, words):
    issues = preflight.check_reservations(cb_cfg(), _with_reservation(rid, **fields))
    assert keys(issues) == [key], [str(i) for i in issues]
    assert words in issues[0].problem and issues[0].fix


def test_a_scheduled_block_is_fine_before_it_starts():
    # EKS creates the node group at once and launches when the block becomes active (capacity-blocks-mng).
    assert preflight.check_reservations(cb_cfg(), _with_reservation(BLOCK, State="scheduled")) == []


def test_an_unknown_reservation_id_is_named():
    data = recorded("good")
    del data["DescribeCapacityReservations"][ODCR]
    (issue,) = preflight.check_reservations(cb_cfg(), RecordedAnswers(data))
    assert issue.key == "disagg:gpuPools[1].capacity.reservationId" and "no capacity reservation" in issue.problem


def test_a_reservation_in_the_pools_placement_group_passes(tmp_path):
    from tooling.render import load
    from tests.conftest import stack_file

    values = {k.removeprefix("disagg:"): v for k, v in __import__("yaml").safe_load(CB_CONFIG.read_text())["config"].items() if k.startswith("disagg:")}
    values["gpuPools"][1]["placementGroupName"] = "p5e-odcr-pg"
    cfg = load(stack_file(tmp_path / "Pulumi.pg.yaml", values), "pg")[2]
    answers = _with_reservation(ODCR, PlacementGroupArn="arn:aws:ec2:us-east-2:123456789012:placement-group/p5e-odcr-pg")
    assert preflight.check_reservations(cfg, answers) == []
    assert keys(preflight.check_reservations(cb_cfg(), answers)) == ["disagg:gpuPools[1].placementGroupName"]


# --- the deployer in adminPrincipalArns -----------------------------------------------------------------------------


def test_the_deployer_listed_as_admin_of_a_new_cluster_is_refused():
    cfg = cb_cfg()
    assert preflight.check_admin_principals(cfg, RecordedAnswers(recorded("good"))) == []
    (issue,) = preflight.check_admin_principals(cfg, RecordedAnswers(recorded("bad")))
    assert issue.key == "disagg:cluster.adminPrincipalArns[0]" and "ResourceInUseException" in issue.problem


def test_on_an_existing_cluster_the_listed_deployer_is_fine():
    data = recorded("bad")
    data["DescribeCluster"] = {"capacity-block": {"cluster": {"name": "capacity-block"}}}
    assert preflight.check_admin_principals(cb_cfg(), RecordedAnswers(data)) == []


@pytest.mark.parametrize(
    "listed, caller, same",
    [
        ("arn:aws:iam::123456789012:role/platform-admin", "arn:aws:sts::123456789012:assumed-role/platform-admin/s", True),
        ("arn:aws:iam::123456789012:role/team/platform-admin", "arn:aws:sts::123456789012:assumed-role/platform-admin/s", True),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice", True),
        ("arn:aws:iam::123456789012:role/alice", "arn:aws:iam::123456789012:user/alice", False),
        ("arn:aws:iam::210987654321:role/platform-admin", "arn:aws:sts::123456789012:assumed-role/platform-admin/s", False),
    ],
)
def test_principal_matching(listed, caller, same):
    assert (preflight.principal_of(listed) == preflight.principal_of(caller)) is same


# --- unanswered questions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, check, key",
    [
        ("DescribeInstanceTypeOfferings", preflight.check_offerings, "disagg:gpuPools"),
        ("GetServiceQuota", preflight.check_quotas, "disagg:systemPool.maxNodes"),
        ("DescribeCapacityReservations", preflight.check_reservations, "disagg:gpuPools[0].capacity.reservationId"),
        ("DescribeCluster", preflight.check_admin_principals, "disagg:cluster.adminPrincipalArns"),
    ],
)
def test_a_question_the_account_does_not_answer_is_a_problem_with_a_fix(operation, check, key):
    data = recorded("good")
    data["errors"] = {operation: {"Code": "AccessDenied", "Message": "not authorized"}}
    issues = check(cb_cfg(), RecordedAnswers(data))
    assert issues and issues[0].key == key
    assert "could not be checked (AccessDenied" in issues[0].problem and operation in issues[0].fix


# --- the AWS calls ----------------------------------------------------------------------------------------------------


@pytest.fixture
def session(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-2")


def test_offerings_against_moto_s_recorded_ec2_data(session):
    # moto 5.2.5 ships EC2's DescribeInstanceTypeOfferings answers per region: p6-b300 is not offered in us-east-2.
    a = AwsAnswers("us-east-2", session)
    offered = a.offered(["us-east-2a", "us-east-2b"], ["p5.48xlarge", "p6-b300.48xlarge"])
    assert offered == {"us-east-2a": {"p5.48xlarge"}, "us-east-2b": {"p5.48xlarge"}}
    values = copy.deepcopy(BASE)
    values.update(region="us-east-2", availabilityZones=["us-east-2a", "us-east-2b"])
    for p in values["gpuPools"]:
        p.update(instanceType="p6-b300.48xlarge", availabilityZones=["us-east-2a"])
    issues = preflight.check_offerings(parse(values, stack="t"), a)
    assert keys(issues) == ["disagg:gpuPools[0].instanceType", "disagg:gpuPools[1].instanceType"]


def test_caller_and_cluster_against_moto(session):
    a = AwsAnswers("us-east-2", session)
    assert a.caller_arn() == "arn:aws:sts::123456789012:user/moto"
    assert a.cluster_exists("prod") is False
    iam = session.client("iam")
    role = iam.create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session.client("eks").create_cluster(name="prod", roleArn=role, resourcesVpcConfig={"subnetIds": []})
    assert a.cluster_exists("prod") is True


def _stubbed(service: str):
    client = boto3.client(service, region_name="us-east-2", aws_access_key_id="x", aws_secret_access_key="y")
    return client, Stubber(client)


class _Session:
    def __init__(self, **clients):
        self.clients = clients

    def client(self, service, region_name=None):
        return self.clients[service]


def _dates(item: dict) -> dict:
    out = dict(item)
    for k in ("StartDate", "EndDate"):
        if k in out:
            out[k] = dt.datetime.fromisoformat(out[k].replace("Z", "+00:00"))
    return out


@pytest.mark.parametrize("fixture", ["good", "bad"])
def test_recorded_reservations_replayed_through_the_ec2_api_model(fixture):
    """The recorded responses are valid DescribeCapacityReservations output (Stubber validates them against botocore's
    model) and parse to the answers the checks got from the recording."""
    ec2, stub = _stubbed("ec2")
    data = recorded(fixture)
    for rid, response in data["DescribeCapacityReservations"].items():
        stub.add_response(
            "describe_capacity_reservations",
            {"CapacityReservations": [_dates(i) for i in response["CapacityReservations"]]},
            {"CapacityReservationIds": [rid]},
        )
    with stub:
        a = AwsAnswers("us-east-2", _Session(ec2=ec2))
        for rid, response in data["DescribeCapacityReservations"].items():
            assert a.reservation(rid) == parse_reservation(response)
        stub.assert_no_pending_responses()


def test_an_unknown_reservation_id_is_none_and_a_denied_call_unanswered():
    ec2, stub = _stubbed("ec2")
    stub.add_client_error("describe_capacity_reservations", "InvalidCapacityReservationId.NotFound", "no such id")
    stub.add_client_error("describe_capacity_reservations", "UnauthorizedOperation", "You are not authorized")
    with stub:
        a = AwsAnswers("us-east-2", _Session(ec2=ec2))
        assert a.reservation("cr-0000000000000000a") is None
        with pytest.raises(preflight.Unanswered) as err:
            a.reservation("cr-0000000000000000b")
    assert "ec2:DescribeCapacityReservations" in err.value.fix


@pytest.mark.parametrize("fixture", ["good", "bad"])
def test_recorded_quotas_replayed_through_the_service_quotas_model(fixture):
    sq, stub = _stubbed("service-quotas")
    data = recorded(fixture)
    for code, response in data["GetServiceQuota"].items():
        stub.add_response("get_service_quota", response, {"ServiceCode": "ec2", "QuotaCode": code})
    with stub:
        a = AwsAnswers("us-east-2", _Session(**{"service-quotas": sq}))
        for code, response in data["GetServiceQuota"].items():
            assert a.vcpu_quota(code) == response["Quota"]["Value"]


def test_an_account_without_an_applied_quota_gets_the_aws_default():
    sq, stub = _stubbed("service-quotas")
    stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied value")
    stub.add_response(
        "get_aws_default_service_quota",
        {"Quota": {"QuotaCode": "L-417A185B", "QuotaName": "Running On-Demand P instances", "Value": 0.0}},
        {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )
    with stub:
        assert AwsAnswers("us-east-2", _Session(**{"service-quotas": sq})).vcpu_quota("L-417A185B") == 0.0


def test_the_whole_check_list_against_aws_answers_for_the_capacity_block_stack(session):
    """Every check through AwsAnswers: moto for offerings/STS/EKS, the good recording (stubbed) for the rest."""
    ec2_stub_client, ec2_stub = _stubbed("ec2")
    sq, sq_stub = _stubbed("service-quotas")
    data = recorded("good")
    for rid in ("cr-0123456789abcdef0", "cr-0fedcba9876543210"):
        response = data["DescribeCapacityReservations"][rid]
        ec2_stub.add_response("describe_capacity_reservations", {"CapacityReservations": [_dates(i) for i in response["CapacityReservations"]]})
    sq_stub.add_response("get_service_quota", data["GetServiceQuota"]["L-1216C47A"])

    class Mixed(AwsAnswers):
        def now(self):
            return NOW

    ec2 = session.client("ec2")

    class Clients:
        def client(self, service, region_name=None):
            return {"ec2": _Ec2(ec2, ec2_stub_client), "service-quotas": sq}.get(service) or session.client(service)

    with ec2_stub, sq_stub:
        found = dict((c.title, i) for c, i in preflight.results(cb_cfg(), Mixed("us-east-2", Clients())))
        ec2_stub.assert_no_pending_responses()
        sq_stub.assert_no_pending_responses()
    assert len(found) == 6 and all(v == [] for v in found.values()), found


class _Ec2:
    """moto's EC2 for offerings, the stubbed client for capacity reservations."""

    def __init__(self, moto_client, stubbed):
        self._moto, self._stubbed = moto_client, stubbed

    def get_paginator(self, name):
        return self._moto.get_paginator(name)

    def describe_capacity_reservations(self, **kwargs):
        return self._stubbed.describe_capacity_reservations(**kwargs)


# --- python -m ops preflight ----------------------------------------------------------------------------------------


def test_cli_reports_each_failing_check_and_exits_1():
    from ops import preflight as cli

    out = io.StringIO()
    code = cli.main(None, config=str(CB_CONFIG), recorded=str(FIXTURES / "bad.json"), out=out)
    text = out.getvalue()
    assert code == 1
    assert "preflight capacity-block (us-east-2): 2 of 6 checks pass" in text
    assert "FAIL  instance types offered in the pools' zones" in text and "ok    public endpoint CIDRs" in text and "ok    the EFA engine image is not a placeholder" in text
    assert text.count("          - disagg:") == 8


def test_cli_passes_on_the_good_answers():
    from ops import preflight as cli

    out = io.StringIO()
    assert cli.main(None, config=str(CB_CONFIG), recorded=str(FIXTURES / "good.json"), out=out) == 0
    assert "6 of 6 checks pass" in out.getvalue() and "FAIL" not in out.getvalue()


def test_cli_refuses_answers_of_another_region_and_an_invalid_stack(tmp_path, capsys):
    from ops import preflight as cli

    with pytest.raises(SystemExit, match="region us-east-2"):
        cli.main("prod", recorded=str(FIXTURES / "good.json"))
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  disagg:region: nowhere\n")
    assert cli.main(None, config=str(bad)) == 2
    assert "disagg:region" in capsys.readouterr().err


def test_ops_registers_the_preflight_command():
    from ops.__main__ import parser

    args = parser().parse_args(["preflight", "--stack", "prod", "--recorded", "x.json"])
    assert (args.stack, args.recorded) == ("prod", "x.json") and args.fn.__name__ == "cmd_preflight"
