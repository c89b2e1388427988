"""Defaults of the compactor's settings (contract §8) and the names of its sinks: the one
place the compactor, the Pulumi program and the tools take them from. They live in the
light package, which the compactor imports anyway, so that the Pulumi program and the
tools' settings read them without loading chromadb. ``receipt_chroma.compaction.config``
reads the variables.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class SinkKind(StrEnum):
    """Where a cycle's effect goes (``CHROMA_SINK``, contract §12)."""

    SNAPSHOT = "snapshot"  # published snapshot versions (§6)
    SERVER = "server"  # a Chroma server's collection
    BOTH = "both"  # both, for the migration from snapshots to a server


CHROMA_ROOT: Final = "/mnt/chroma"  # the EFS mount
CHROMA_WORK_DIR: Final = "/tmp/chroma"  # local working copies
EMBEDDING_DIMENSION: Final = 1536
LOCK_DURATION_SECONDS: Final = 180
HEARTBEAT_INTERVAL_SECONDS: Final = 30
HEARTBEAT_MAX_FAILURES: Final = 3
LOCK_WAIT_SECONDS: Final = 60
# A holder treats its lease as lost this long before the last confirmed expiry (§7, rev 3),
# so its last write or delete has ended before anyone else can acquire the lease.
LEASE_SAFETY_MARGIN_SECONDS: Final = 10
# Visibility of every message the handler reports failed, jittered in this range
# (seconds): retried within minutes instead of after the queue's visibility timeout.
RETRY_VISIBILITY_SECONDS: Final = (30, 90)
SNAPSHOT_ZSTD_LEVEL: Final = 1  # snapshot objects' compression (§6)
# The HNSW flush policy (§6.2), chosen by measurement (bench/snapshot_cycles.py;
# docs/architecture.md "HNSW flushes").
HNSW_SYNC_THRESHOLD: Final = 25_000
HNSW_FLUSH_RECORDS: Final = 700

# The server settings matter only for the "server" and "both" sinks.
CHROMA_SINK: Final = SinkKind.SNAPSHOT.value
CHROMA_SINKS: Final = tuple(kind.value for kind in SinkKind)
CHROMA_PORT: Final = 8000
CHROMA_SSL: Final = False
CHROMA_TENANT: Final = "default_tenant"
CHROMA_DATABASE: Final = "default_database"
# Calls to a Chroma server: a timeout per request (an unanswered call must not hold the
# lease until the Lambda timeout) and retries of transient failures with exponential
# backoff. The retries span about 15 s, longer than a server restart takes (~2-5 s for
# `chroma run`), so a restart mid-batch costs a pause, not the batch. No attempt starts
# that could end past the call's deadline: a server that accepts connections and never
# answers fails a call within 90 s (two attempts of 5 + 30 s), inside the 140 s a
# holder's lease has left when a call stalls (180 s lease, renewed every 30 s, treated as
# lost 10 s early), so the cycle fails before the lease runs out.
CHROMA_CONNECT_TIMEOUT_SECONDS: Final = 5.0
CHROMA_REQUEST_TIMEOUT_SECONDS: Final = 30.0
CHROMA_CALL_DEADLINE_SECONDS: Final = 90.0
# Records per write request to a server. Its get_max_batch_size (5,461 for `chroma run`) is
# a ceiling, not a good size: at 1536-d such a request is ~33 MB and tens of seconds of
# server work (a slow server then times out, and the retry resends it all); 1,000 records
# are a few seconds of work and cost no throughput (measured: bench/compaction_cycle.py).
CHROMA_WRITE_BATCH: Final = 1000
CHROMA_RETRY_ATTEMPTS: Final = 6
CHROMA_RETRY_BASE_SECONDS: Final = 0.5
CHROMA_RETRY_MAX_SECONDS: Final = 8.0
