"""The compactor's network and file system: a VPC with private subnets in two zones,
endpoints for DynamoDB, S3 and SQS (no internet route needed), and an encrypted EFS with
a non-root access point reachable over NFS from the compactor only.

With a Chroma server as a sink (contract §12) the compactor reads the server's token
through a Secrets Manager endpoint (``secrets_endpoint``) and reaches the server either
inside the VPC's range (a private server on ``private_server_port``, e.g. over peering) or
on the internet through a NAT gateway (``internet_egress``: a public server such as Chroma
Cloud while the snapshot still needs the VPC for EFS). With only a server as the sink there
is no EFS (``efs=False``)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings

ZONES = 2


class CompactorNetwork(pulumi.ComponentResource):
    def __init__(
        self,
        resource_name: str,
        *,
        cidr: str,
        efs: bool = True,
        private_server_port: int | None = None,
        internet_egress: bool = False,
        secrets_endpoint: bool = False,
        opts: pulumi.ResourceOptions | None = None,
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
        route_table = self._private_subnets(resource_name, cidr, zones, child)
        self.compactor_security_group = self._compactor_security_group(
            resource_name, cidr, efs=efs, private_server_port=private_server_port, child=child
        )
        endpoint_security_group = self._endpoint_security_group(resource_name, child)
        self._vpc_endpoints(
            resource_name,
            region.region,
            route_table,
            endpoint_security_group,
            secrets_endpoint=secrets_endpoint,
            child=child,
        )
        if internet_egress:
            self._nat_gateway(resource_name, cidr, zones[0], route_table, child)
        self.file_system: aws.efs.FileSystem | None = None
        self.access_point: aws.efs.AccessPoint | None = None
        self.mount_targets: list[aws.efs.MountTarget] = []
        if efs:
            self._file_system(resource_name, child)
        self.register_outputs({"file_system_id": self.file_system.id if self.file_system else None})

    def _private_subnets(
        self,
        resource_name: str,
        cidr: str,
        zones: Sequence[str],
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.RouteTable:
        """One private subnet per zone (``self.subnets``), sharing one route table."""
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
        return route_table

    def _compactor_security_group(
        self,
        resource_name: str,
        cidr: str,
        *,
        efs: bool,
        private_server_port: int | None,
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.SecurityGroup:
        """Outbound only: NFS to EFS, HTTPS to the endpoints (and a server), and a private
        server's own port."""
        egress = [
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=["0.0.0.0/0"]
            )
        ]
        if efs:
            egress.insert(
                0,
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=2049, to_port=2049, cidr_blocks=[cidr]
                ),
            )
        if private_server_port is not None and private_server_port != 443:
            port = private_server_port
            egress.append(
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=port, to_port=port, cidr_blocks=[cidr]
                )
            )
        return aws.ec2.SecurityGroup(
            f"{resource_name}-compactor",
            vpc_id=self.vpc.id,
            description="Compactor Lambda: outbound to "
            + ("EFS" if efs else "the Chroma server")
            + " and the VPC endpoints",
            egress=egress,
            opts=child,
        )

    def _vpc_endpoints(
        self,
        resource_name: str,
        region: str,
        route_table: aws.ec2.RouteTable,
        endpoint_security_group: aws.ec2.SecurityGroup,
        *,
        secrets_endpoint: bool,
        child: pulumi.ResourceOptions,
    ) -> None:
        """Gateway endpoints for DynamoDB and S3; interface endpoints for SQS and, for a
        server's token, Secrets Manager."""
        interface_endpoints = ["sqs"] + (["secretsmanager"] if secrets_endpoint else [])
        for service in ("dynamodb", "s3"):
            aws.ec2.VpcEndpoint(
                f"{resource_name}-{service}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=[route_table.id],
                opts=child,
            )
        for service in interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{resource_name}-{service}",
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in self.subnets],
                security_group_ids=[endpoint_security_group.id],
                opts=child,
            )

    def _nat_gateway(
        self,
        resource_name: str,
        cidr: str,
        zone: str,
        route_table: aws.ec2.RouteTable,
        child: pulumi.ResourceOptions,
    ) -> None:
        """A public subnet with a NAT gateway, and the private subnets' default route
        through it: outbound HTTPS to a public Chroma server (nothing can reach in)."""
        prefix = cidr.split(".")[:2]
        gateway = aws.ec2.InternetGateway(f"{resource_name}-igw", vpc_id=self.vpc.id, opts=child)
        public = aws.ec2.Subnet(
            f"{resource_name}-public",
            vpc_id=self.vpc.id,
            availability_zone=zone,
            cidr_block=f"{prefix[0]}.{prefix[1]}.{ZONES * 16}.0/24",
            map_public_ip_on_launch=False,
            opts=child,
        )
        public_routes = aws.ec2.RouteTable(
            f"{resource_name}-public",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{resource_name}-public",
            subnet_id=public.id,
            route_table_id=public_routes.id,
            opts=child,
        )
        address = aws.ec2.Eip(f"{resource_name}-nat", domain="vpc", opts=child)
        nat = aws.ec2.NatGateway(
            f"{resource_name}-nat", subnet_id=public.id, allocation_id=address.id, opts=child
        )
        aws.ec2.Route(
            f"{resource_name}-private-default",
            route_table_id=route_table.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
            opts=child,
        )

    def _endpoint_security_group(
        self, resource_name: str, child: pulumi.ResourceOptions
    ) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(
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

    def _file_system(self, resource_name: str, child: pulumi.ResourceOptions) -> None:
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
