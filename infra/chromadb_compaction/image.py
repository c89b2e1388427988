"""The compactor's container image, built and pushed inside ``pulumi up``.

A Lambda with ``package_type="Image"`` cannot be created before its image exists in ECR,
so a program that only creates the repository fails on an empty account. Here the image
is built (``docker buildx``, the docker-build provider) from the repository root with
``infra/chromadb_compaction/lambdas/Dockerfile`` for ``linux/amd64`` (the function's
architecture, whatever the deploying machine is) and pushed with the registry's own
credentials; the function references the pushed digest (``ref``), so it is created only
after the push and is updated whenever the image content changes.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

DOCKERFILE = "infra/chromadb_compaction/lambdas/Dockerfile"
PLATFORM = docker_build.Platform.LINUX_AMD64  # the compactor function is x86_64


class CompactorImage(pulumi.ComponentResource):
    repository: aws.ecr.Repository
    image: docker_build.Image
    ref: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        context: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``context`` is the repository root, relative to the Pulumi project (``..``)."""
        super().__init__("receipt:compaction:CompactorImage", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            resource_name,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.image = docker_build.Image(
            f"{resource_name}-image",
            context=docker_build.BuildContextArgs(location=context),
            dockerfile=docker_build.DockerfileArgs(location=f"{context}/{DOCKERFILE}"),
            platforms=[PLATFORM],
            push=True,
            tags=[self.repository.repository_url.apply(lambda url: f"{url}:latest")],
            registries=[
                docker_build.RegistryArgs(
                    address=self.repository.repository_url,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                )
            ],
            opts=child,
        )
        self.ref = self.image.ref
        self.register_outputs({"repository_url": self.repository.repository_url, "ref": self.ref})
