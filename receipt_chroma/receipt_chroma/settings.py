"""Defaults of the compactor's settings (contract §8): the one place the compactor, the
Pulumi program and the tools take them from. Importing this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Final

CHROMA_ROOT: Final = "/mnt/chroma"  # the EFS mount
CHROMA_WORK_DIR: Final = "/tmp/chroma"  # local working copies
EMBEDDING_DIMENSION: Final = 1536
LOCK_DURATION_SECONDS: Final = 180
HEARTBEAT_INTERVAL_SECONDS: Final = 30
HEARTBEAT_MAX_FAILURES: Final = 3
LOCK_WAIT_SECONDS: Final = 60
# Visibility of messages failed by lease contention or a moved pointer, jittered in this
# range (seconds): retried within minutes instead of after the queue's visibility timeout.
RETRY_VISIBILITY_SECONDS: Final = (30, 90)
