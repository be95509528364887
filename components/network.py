"""Network: the VPC, its subnets, NAT and the S3 gateway endpoint (or an existing VPC from config)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_args import NetworkArgs
from components.builders.network import nat_routes, nat_zones, s3_service_name, subnet_layout, subnet_tags

TYPE = "disagg:aws:Network"


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: dict[str, pulumi.Output[str]]  # by availability zone
    public_subnet_ids: dict[str, pulumi.Output[str]]
    # What nodes need before they can pull images and join: NAT routes and the S3 endpoint. Node groups depend on
    # these, so they come up after egress works and are deleted before it goes away.
    egress: list[pulumi.Resource]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        self.egress = []
        if args.existing_vpc_id:
            # Bring-your-own VPC: nothing is created. The subnets must already carry the discovery tags and routes
            # (docs/aws.md, "Existing VPC").
            self.vpc_id = pulumi.Output.from_input(args.existing_vpc_id)
            self.private_subnet_ids = {az: pulumi.Output.from_input(s) for az, s in args.existing_private_subnet_ids.items()}
            self.public_subnet_ids = {az: pulumi.Output.from_input(s) for az, s in args.existing_public_subnet_ids.items()}
        else:
            self._create(name, args)
        self.register_outputs({"vpcId": self.vpc_id})

    def _create(self, name: str, net: NetworkArgs) -> None:
        zones, cluster = list(net.zones), net.cluster_name
        child = pulumi.ResourceOptions(parent=self)
        # The VPC and its subnets are protected always: deleting or replacing one takes down every node and load
        # balancer in it. Lift it for a deliberate teardown with `pulumi state unprotect --all --yes` (docs/aws.md).
        kept = pulumi.ResourceOptions(parent=self, protect=True)
        layout = subnet_layout(net.vpc_cidr, zones, net.private_prefix, net.public_prefix)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=net.vpc_cidr,
            # EKS needs both: nodes register by private DNS name and the cluster's private endpoint resolves in the VPC.
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{cluster}-vpc"},
            opts=kept,
        )
        self.vpc_id = vpc.id
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{cluster}-igw"}, opts=child)

        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, tags={"Name": f"{cluster}-public"}, opts=child)
        public_default = aws.ec2.Route(
            f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child
        )

        public: dict[str, aws.ec2.Subnet] = {}
        private: dict[str, aws.ec2.Subnet] = {}
        for az in zones:
            public[az] = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=layout.public[az],
                # Only NAT gateways and internet-facing load balancers live here; both get their addresses explicitly.
                map_public_ip_on_launch=False,
                tags=subnet_tags(cluster, "public", az),
                opts=kept,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-{az}", subnet_id=public[az].id, route_table_id=public_rt.id, opts=child)
            private[az] = aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=layout.private[az],
                tags=subnet_tags(cluster, "private", az),
                opts=kept,
            )

        nats: dict[str, aws.ec2.NatGateway] = {}
        for az in nat_zones(zones, net.nat_gateways):
            eip = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags={"Name": f"{cluster}-nat-{az}"}, opts=child)
            nats[az] = aws.ec2.NatGateway(
                f"{name}-nat-{az}",
                allocation_id=eip.allocation_id,
                subnet_id=public[az].id,
                tags={"Name": f"{cluster}-nat-{az}"},
                # A NAT gateway only passes traffic once its subnet routes to the internet gateway.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[public_default]),
            )

        private_rts: list[aws.ec2.RouteTable] = []
        for az, nat_az in nat_routes(zones, net.nat_gateways).items():
            rt = aws.ec2.RouteTable(f"{name}-private-{az}", vpc_id=vpc.id, tags={"Name": f"{cluster}-private-{az}"}, opts=child)
            route = aws.ec2.Route(
                f"{name}-private-{az}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nats[nat_az].id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=private[az].id, route_table_id=rt.id, opts=child)
            private_rts.append(rt)
            self.egress.append(route)

        if net.s3_gateway_endpoint:
            # Model weights pulled from S3 go through the gateway endpoint, not the NAT gateway: no NAT data
            # processing charge (0.045 USD/GB) on hundreds of GB per node, and no NAT bandwidth limit.
            endpoint = aws.ec2.VpcEndpoint(
                f"{name}-s3",
                vpc_id=vpc.id,
                service_name=s3_service_name(net.region),
                vpc_endpoint_type="Gateway",
                route_table_ids=[rt.id for rt in private_rts],
                tags={"Name": f"{cluster}-s3"},
                opts=child,
            )
            self.egress.append(endpoint)

        self.private_subnet_ids = {az: s.id for az, s in private.items()}
        self.public_subnet_ids = {az: s.id for az, s in public.items()}

    def subnets_for(self, zones: list[str]) -> list[pulumi.Output[str]]:
        """Private subnet ids of the given zones, in the given order."""
        return [self.private_subnet_ids[az] for az in zones]

    def exports(self) -> dict[str, Any]:
        return {
            "vpcId": self.vpc_id,
            "privateSubnetIds": dict(self.private_subnet_ids),
            "publicSubnetIds": dict(self.public_subnet_ids),
        }
