"""The snapshot and delta bucket: versioned, encrypted, private, TLS only, with lifecycle
rules for deltas and old object versions. With ``protect`` (stack config
``destroyProtection``) Pulumi refuses to delete it and AWS refuses to delete it while it
holds objects; without, ``pulumi destroy`` empties it (every object version) and deletes
it."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.iam import bucket_tls_only_policy


class SnapshotBucket(pulumi.ComponentResource):
    def __init__(
        self,
        resource_name: str,
        *,
        protect: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("receipt:compaction:SnapshotBucket", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            resource_name,
            force_destroy=not protect,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.s3.BucketVersioning(
            f"{resource_name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        self._lock_down(resource_name, child)
        self._lifecycle(resource_name, child)
        self.register_outputs({"bucket": self.bucket.bucket})

    def _lock_down(self, resource_name: str, child: pulumi.ResourceOptions) -> None:
        """Encrypted, never public, TLS only."""
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{resource_name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{resource_name}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{resource_name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(bucket_tls_only_policy(arn))),
            opts=child,
        )

    def _lifecycle(self, resource_name: str, child: pulumi.ResourceOptions) -> None:
        """Deltas expire, and so do object versions no longer current."""
        aws.s3.BucketLifecycleConfiguration(
            f"{resource_name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                *[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id=f"expire-{collection}-deltas",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                            prefix=f"{collection}/delta/"
                        ),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                            days=settings.DELTA_EXPIRATION_DAYS
                        ),
                    )
                    for collection in ("lines", "words")
                ],
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=settings.NONCURRENT_VERSION_EXPIRATION_DAYS
                    ),
                ),
            ],
            opts=child,
        )
