"""The compactor's container image: its ECR repository and, unless the stack names a
prebuilt image, the build that pushes to it inside ``pulumi up``.

A Lambda with ``package_type="Image"`` cannot be created before its image exists in ECR,
so a program that only creates the repository fails on an empty account. Here the image
is built (``docker buildx``, the docker-build provider) from the repository root with
``infra/chromadb_compaction/lambdas/Dockerfile`` for the function's architecture
(``settings.COMPACTOR_ARCHITECTURE``, whatever the deploying machine is) and pushed with
the registry's own credentials; the function references the pushed digest (``ref``), so it
is created only after the push and is updated whenever the image content changes.

The repository stays when a prebuilt image is configured: it holds the previous builds a
rollback may name. A lifecycle rule keeps the newest ``ECR_KEEP_IMAGES`` of them; with
``destroyProtection`` the repository is protected, otherwise ``pulumi destroy`` deletes it
with its images.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from chromadb_compaction import settings

DOCKERFILE = "infra/chromadb_compaction/lambdas/Dockerfile"
# Lambda's architecture names → the platform docker builds for.
PLATFORMS = {
    "x86_64": docker_build.Platform.LINUX_AMD64,
    "arm64": docker_build.Platform.LINUX_ARM64,
}


def lifecycle_policy(keep: int) -> dict[str, object]:
    """Expire every image but the newest ``keep``: the one the function runs (the newest
    build, tagged ``latest``) and the previous builds, untagged by each push, that a
    rollback may name."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the newest {keep} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep,
                },
                "action": {"type": "expire"},
            }
        ]
    }


class CompactorImage(pulumi.ComponentResource):
    repository: aws.ecr.Repository
    image: docker_build.Image | None
    ref: pulumi.Output[str] | None

    def __init__(
        self,
        resource_name: str,
        *,
        context: str,
        build: bool = True,
        protect: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``context`` is the repository root, relative to the Pulumi project (``..``);
        ``build`` false keeps only the repository (a prebuilt image is configured)."""
        super().__init__("receipt:compaction:CompactorImage", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            resource_name,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            # Without protection `pulumi destroy` deletes the repository with its images.
            force_delete=not protect,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{resource_name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(lifecycle_policy(settings.ECR_KEEP_IMAGES)),
            opts=child,
        )
        self.image = None
        self.ref = None
        if build:
            token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
            self.image = docker_build.Image(
                f"{resource_name}-image",
                context=docker_build.BuildContextArgs(location=context),
                dockerfile=docker_build.DockerfileArgs(location=f"{context}/{DOCKERFILE}"),
                platforms=[PLATFORMS[settings.COMPACTOR_ARCHITECTURE]],
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
        self.register_outputs({"repository_url": self.repository.repository_url})
