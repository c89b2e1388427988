"""Errors of the ChromaDB side; each names what is wrong and where."""

from __future__ import annotations


class ReceiptChromaError(Exception):
    """Base class of this package's errors."""


class ChromaClientError(ReceiptChromaError):
    """A client was used against its mode, or its directory is unusable."""


class UnsafeArchiveError(ReceiptChromaError):
    """An archive holds absolute paths, ``..``, links or special files."""


class DeltaError(ReceiptChromaError):
    """A compaction run's delta is missing, malformed or does not belong to the run."""


class DeltaFetchError(DeltaError):
    """A delta could not be downloaded by its presigned URL (the caller then downloads it
    through the S3 API)."""


class DeltaReaderTimeoutError(DeltaError):
    """The delta reader helper process did not answer in time; it was killed."""


class DeltaUrlUnreachableError(DeltaFetchError):
    """The presigned URL got no HTTP answer at all (no route, DNS, timeout): S3 is not
    reachable that way from here, for any delta."""


class SinkUnavailableError(ReceiptChromaError):
    """The Chroma server cannot be reached (or its token cannot be read): the cycle fails
    all of its messages with this one error and emits ``SinkUnavailable`` (contract §12)."""


class CredentialsRefusedError(SinkUnavailableError):
    """The Chroma server (or a gateway in front of it) refused the token: HTTP 401/403."""


class CollectionConfigurationError(SinkUnavailableError):
    """A server collection exists without the contract §4 configuration (cosine space):
    no message can be applied to it until an operator recreates it."""


class OperationError(ReceiptChromaError):
    """A collection operation failed (never reported as a silent zero)."""


class SnapshotError(ReceiptChromaError):
    """A snapshot could not be read, verified or written."""


class SnapshotCorruptError(SnapshotError):
    """A snapshot's tarball does not match its recorded hash, or does not open."""


class SnapshotUnavailableError(SnapshotError):
    """The pointer names a version that cannot be had, or the stores disagree (contract §6).

    The cycle fails its messages rather than bootstrapping over data.
    """


class SnapshotVersionMissingError(SnapshotUnavailableError):
    """A version, its manifest or one of the objects its manifest names is not in S3."""


class SnapshotVersionCorruptError(SnapshotCorruptError, SnapshotUnavailableError):
    """A manifest or an object does not match its recorded sha256, or is malformed: the
    version is never opened (contract §6)."""


class SnapshotCheckError(SnapshotError):
    """A persist directory fails the publish check: no such collection, or another
    dimension than the configured one."""


class SnapshotDestinationError(SnapshotError):
    """A download was asked to write into an existing file or a non-empty directory."""


class SnapshotIndexError(SnapshotError):
    """A planned HNSW flush did not leave the index complete."""
