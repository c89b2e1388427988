"""The compactor's network and file system: a VPC with private subnets in two zones,
endpoints for DynamoDB, S3 and SQS (no internet route needed), and an encrypted EFS with
a non-root access point reachable over NFS from the compactor only."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings

ZONES = 2


class CompactorNetwork(pulumi.ComponentResource):
    def __init__(
        self, resource_name: str, *, cidr: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("receipt:compaction:Network", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region()
        zones = aws.get_availability_zones(state="available").names[:ZONES]
        self.vpc = aws.ec2.Vpc(
            resource_name,
            cidr_block=cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            opts=child,
        )
        prefix = cidr.split(".")[:2]
        self.subnets = [
            aws.ec2.Subnet(
                f"{resource_name}-private-{index}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=f"{prefix[0]}.{prefix[1]}.{index * 16}.0/20",
                map_public_ip_on_launch=False,
                opts=child,
            )
            for index, zone in enumerate(zones)
        ]
        route_table = aws.ec2.RouteTable(f"{resource_name}-private", vpc_id=self.vpc.id, opts=child)
        for index, subnet in enumerate(self.subnets):
            aws.ec2.RouteTableAssociation(
                f"{resource_name}-private-{index}",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=child,
            )
        self.compactor_security_group = aws.ec2.SecurityGroup(
            f"{resource_name}-compactor",
            vpc_id=self.vpc.id,
            description="Compactor Lambda: outbound to EFS and the VPC endpoints",
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=2049, to_port=2049, cidr_blocks=[cidr]
                ),
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=443, to_port=443, cidr_blocks=["0.0.0.0/0"]
                ),
            ],
            opts=child,
        )
        self.efs_security_group = aws.ec2.SecurityGroup(
            f"{resource_name}-efs",
            vpc_id=self.vpc.id,
            description="EFS: NFS from the compactor only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=2049,
                    to_port=2049,
                    security_groups=[self.compactor_security_group.id],
                )
            ],
            opts=child,
        )
        endpoint_security_group = aws.ec2.SecurityGroup(
            f"{resource_name}-endpoints",
            vpc_id=self.vpc.id,
            description="Interface endpoints: HTTPS from the compactor only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    security_groups=[self.compactor_security_group.id],
                )
            ],
            opts=child,
        )
        for service in ("dynamodb", "s3"):
            aws.ec2.VpcEndpoint(
                f"{resource_name}-{service}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{region.region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=[route_table.id],
                opts=child,
            )
        aws.ec2.VpcEndpoint(
            f"{resource_name}-sqs",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{region.region}.sqs",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in self.subnets],
            security_group_ids=[endpoint_security_group.id],
            opts=child,
        )
        self.file_system = aws.efs.FileSystem(
            f"{resource_name}-chroma",
            encrypted=True,
            performance_mode="generalPurpose",
            opts=child,
        )
        self.mount_targets = [
            aws.efs.MountTarget(
                f"{resource_name}-chroma-{index}",
                file_system_id=self.file_system.id,
                subnet_id=subnet.id,
                security_groups=[self.efs_security_group.id],
                opts=child,
            )
            for index, subnet in enumerate(self.subnets)
        ]
        self.access_point = aws.efs.AccessPoint(
            f"{resource_name}-chroma",
            file_system_id=self.file_system.id,
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=settings.EFS_UID, gid=settings.EFS_GID),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=settings.EFS_ROOT_DIRECTORY,
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                    owner_uid=settings.EFS_UID, owner_gid=settings.EFS_GID, permissions="750"
                ),
            ),
            opts=child,
        )
        self.register_outputs({"file_system_id": self.file_system.id})
