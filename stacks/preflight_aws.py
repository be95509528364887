"""The deploy checks' questions, asked of AWS with boto3 (stacks/preflight.py says what is checked).

boto3 uses the default credential chain (environment, shared config/`AWS_PROFILE`, SSO, instance or web identity
role), which is what the stack's explicit AWS provider uses too: it sets only the region, so preview and checks run
as the same identity. Every call is read-only:

    ec2:DescribeInstanceTypeOfferings, ec2:DescribeCapacityReservations, servicequotas:GetServiceQuota
    (and GetAWSDefaultServiceQuota), sts:GetCallerIdentity, eks:DescribeCluster

The raw responses are turned into answers by the `parse_*` functions, which the recorded answers of the offline
render and the tests use too (tooling/fakes.py), so a recorded response goes through exactly the code a live one does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from stacks.preflight import Reservation, Unanswered

# Error codes that mean "this identity may not ask": reported with the permission to grant.
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException"}


def parse_offerings(pages: Sequence[dict[str, Any]]) -> dict[str, set[str]]:
    """DescribeInstanceTypeOfferings (LocationType availability-zone) pages -> zone -> instance types."""
    out: dict[str, set[str]] = {}
    for page in pages:
        for o in page.get("InstanceTypeOfferings", []):
            out.setdefault(o["Location"], set()).add(o["InstanceType"])
    return out


def parse_quota(response: dict[str, Any]) -> float:
    """GetServiceQuota / GetAWSDefaultServiceQuota -> the quota's value (vCPUs for the EC2 instance quotas)."""
    return float(response["Quota"]["Value"])


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_reservation(response: dict[str, Any]) -> Reservation | None:
    """DescribeCapacityReservations for one id -> the reservation (None when the response holds none)."""
    items = response.get("CapacityReservations", [])
    if not items:
        return None
    r = items[0]
    return Reservation(
        id=r["CapacityReservationId"],
        instance_type=r["InstanceType"],
        availability_zone=r["AvailabilityZone"],
        total_instances=int(r.get("TotalInstanceCount", 0)),
        available_instances=int(r.get("AvailableInstanceCount", 0)),
        state=r["State"],
        reservation_type=r.get("ReservationType", "default"),
        platform=r.get("InstancePlatform", ""),
        tenancy=r.get("Tenancy", "default"),
        start=_utc(r.get("StartDate")),
        end=_utc(r.get("EndDate")),
        placement_group_arn=r.get("PlacementGroupArn"),
    )


def _denied(action: str, err: Exception) -> Unanswered:
    return Unanswered(f"{type(err).__name__}: {err}", f"allow {action} for the identity running the preview (read-only)")


class AwsAnswers:
    """Answers from the live account. `session` defaults to a boto3 Session with the default credential chain."""

    def __init__(self, region: str, session: Any = None):
        self.region = region
        self._session = session
        self._clients: dict[str, Any] = {}

    def _client(self, service: str):
        if service not in self._clients:
            import boto3

            session = self._session or boto3.session.Session()
            self._clients[service] = session.client(service, region_name=self.region)
        return self._clients[service]

    def _call(self, action: str, fn, *args, expected: tuple[str, ...] = (), **kwargs):
        """Call `fn`; error codes in `expected` (or starting with one) reach the caller as ClientError, every other
        failure becomes an `Unanswered` with its fix, so no traceback ever ends a preview."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(*args, **kwargs)
        except NoCredentialsError as err:
            raise Unanswered(str(err), "run with AWS credentials for the stack's account (the same the AWS provider uses)") from None
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if any(code.startswith(e) for e in expected):
                raise
            if code in _DENIED:
                raise _denied(action, err) from None
            raise Unanswered(f"{action}: {err}", "retry; if it persists, check the request in CloudTrail") from None
        except BotoCoreError as err:
            raise Unanswered(f"{type(err).__name__}: {err}", "check network access to the AWS APIs and retry") from None

    def offered(self, zones: Sequence[str], types: Sequence[str]) -> dict[str, set[str]]:
        ec2 = self._client("ec2")

        def pages():
            paginator = ec2.get_paginator("describe_instance_type_offerings")
            return list(
                paginator.paginate(
                    LocationType="availability-zone",
                    Filters=[{"Name": "instance-type", "Values": list(types)}, {"Name": "location", "Values": list(zones)}],
                )
            )

        return parse_offerings(self._call("ec2:DescribeInstanceTypeOfferings", pages))

    def vcpu_quota(self, code: str) -> float:
        from botocore.exceptions import ClientError

        sq = self._client("service-quotas")
        try:
            return parse_quota(
                self._call(
                    "servicequotas:GetServiceQuota", sq.get_service_quota, ServiceCode="ec2", QuotaCode=code,
                    expected=("NoSuchResourceException",),
                )
            )
        except ClientError as err:
            # An account that never changed a quota may have no applied value yet: the AWS default applies.
            if err.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                raise
        return parse_quota(
            self._call("servicequotas:GetAWSDefaultServiceQuota", sq.get_aws_default_service_quota, ServiceCode="ec2", QuotaCode=code)
        )

    def reservation(self, reservation_id: str) -> Reservation | None:
        from botocore.exceptions import ClientError

        ec2 = self._client("ec2")
        try:
            # One id per call: DescribeCapacityReservations fails the whole call when any listed id is unknown.
            response = self._call(
                "ec2:DescribeCapacityReservations", ec2.describe_capacity_reservations, CapacityReservationIds=[reservation_id],
                expected=("InvalidCapacityReservationId",),
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code", "").startswith("InvalidCapacityReservationId"):
                return None
            raise
        return parse_reservation(response)

    def caller_arn(self) -> str:
        sts = self._client("sts")
        return self._call("sts:GetCallerIdentity", sts.get_caller_identity)["Arn"]

    def cluster_exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        eks = self._client("eks")
        try:
            self._call("eks:DescribeCluster", eks.describe_cluster, name=name, expected=("ResourceNotFoundException",))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        return True

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)
