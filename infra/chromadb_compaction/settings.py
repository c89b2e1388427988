"""Sizing and timing of the deployed pipeline, in one place (explained in docs/deploy.md)."""

from __future__ import annotations

from typing import Final

from receipt_dynamo_stream import compactor_defaults
from receipt_dynamo_stream import settings as stream_defaults

# The stream function's runtime and architecture; its zip is built for them
# (build_stream_zip.py reads both from here).
PYTHON_RUNTIME: Final = "python3.12"
ARCHITECTURE: Final = "arm64"
LOG_RETENTION_DAYS: Final = 30
SERVICE_STREAM: Final = stream_defaults.SERVICE_STREAM
SERVICE_COMPACTOR: Final = stream_defaults.SERVICE_COMPACTOR
METRICS_NAMESPACE: Final = stream_defaults.METRICS_NAMESPACE
XRAY_WRITE_POLICY_ARN: Final = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"

# Stream processor: small, fast, no VPC.
STREAM_MEMORY_MB: Final = 256
STREAM_TIMEOUT_SECONDS: Final = 60
STREAM_BATCH_SIZE: Final = 100
STREAM_BATCHING_WINDOW_SECONDS: Final = 5
STREAM_MAX_RETRIES: Final = 5
STREAM_MAX_RECORD_AGE_SECONDS: Final = 6 * 3600

# Compactor: a container image (its Dockerfile's base image is for this architecture too),
# sized for a ~1 GB snapshot (working copy + tarball + deltas on /tmp).
COMPACTOR_ARCHITECTURE: Final = "x86_64"
COMPACTOR_MEMORY_MB: Final = 4096
COMPACTOR_EPHEMERAL_STORAGE_MB: Final = 10240
# With only a Chroma server as the sink (contract §12) nothing but the batch's deltas is
# held locally; the memory still buys the CPU that reads deltas and encodes the writes.
COMPACTOR_SERVER_MEMORY_MB: Final = 2048
COMPACTOR_SERVER_EPHEMERAL_STORAGE_MB: Final = 2048
COMPACTOR_TIMEOUT_SECONDS: Final = 900
# One lease per collection, spare for retries (stack config compactorReservedConcurrency;
# -1 reserves nothing, for accounts whose concurrency quota is still 10).
COMPACTOR_RESERVED_CONCURRENCY: Final = 4
COMPACTOR_BATCH_SIZE: Final = 1000
COMPACTOR_BATCHING_WINDOW_SECONDS: Final = 30
COMPACTOR_MAX_CONCURRENCY: Final = 2  # per queue: the lease serialises cycles anyway
# The compactor's own defaults (receipt_dynamo_stream.compactor_defaults: no chromadb).
EMBEDDING_DIMENSION: Final = compactor_defaults.EMBEDDING_DIMENSION
LOCK_DURATION_SECONDS: Final = compactor_defaults.LOCK_DURATION_SECONDS
HEARTBEAT_INTERVAL_SECONDS: Final = compactor_defaults.HEARTBEAT_INTERVAL_SECONDS
HEARTBEAT_MAX_FAILURES: Final = compactor_defaults.HEARTBEAT_MAX_FAILURES
LOCK_WAIT_SECONDS: Final = compactor_defaults.LOCK_WAIT_SECONDS
LEASE_SAFETY_MARGIN_SECONDS: Final = compactor_defaults.LEASE_SAFETY_MARGIN_SECONDS
# Visibility (s, jittered in the range) of every message the compactor reports failed:
# retried within minutes instead of after VISIBILITY_TIMEOUT_SECONDS (contract §7 rev 3).
RETRY_VISIBILITY_SECONDS: Final = "{}-{}".format(*compactor_defaults.RETRY_VISIBILITY_SECONDS)
CHROMA_WORK_DIR: Final = compactor_defaults.CHROMA_WORK_DIR
# The sink (contract §12) and the server's defaults.
CHROMA_SINK: Final = compactor_defaults.CHROMA_SINK
CHROMA_SINKS: Final = compactor_defaults.CHROMA_SINKS
CHROMA_PORT: Final = compactor_defaults.CHROMA_PORT
CHROMA_TENANT: Final = compactor_defaults.CHROMA_TENANT
CHROMA_DATABASE: Final = compactor_defaults.CHROMA_DATABASE

# Queues: a message must outlive its receives (maxReceiveCount x visibility < retention).
VISIBILITY_TIMEOUT_SECONDS: Final = 6 * COMPACTOR_TIMEOUT_SECONDS
MAX_RECEIVE_COUNT: Final = 5
RETENTION_SECONDS: Final = 14 * 24 * 3600
MAX_MESSAGE_SIZE: Final = 262144

# ECR lifecycle: the image the compactor runs and the previous builds a rollback may name.
ECR_KEEP_IMAGES: Final = 10

# Bucket lifecycle.
DELTA_EXPIRATION_DAYS: Final = 7
NONCURRENT_VERSION_EXPIRATION_DAYS: Final = 30

# EFS access point identity (non-root).
EFS_UID: Final = 1000
EFS_GID: Final = 1000
EFS_MOUNT_PATH: Final = compactor_defaults.CHROMA_ROOT
EFS_ROOT_DIRECTORY: Final = "/chroma"
