"""The runs' deltas, made once per process by the producer's ``write_delta`` and copied into
each schedule's bucket (making a delta costs a Chroma directory; copying it, one PUT)."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

from receipt_chroma.compaction import write_delta
from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.messages import COLLECTION

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


class DeltaStore:
    """Delta objects by run, as (key relative to the run's prefix, bytes)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._objects: dict[str, list[tuple[str, bytes]]] = {}
        self._lock = threading.Lock()

    def place(
        self, s3: S3Client, bucket: str, image_id: str, receipt_id: int, run: oracle.RunRow
    ) -> None:
        """Put the run's words delta under its prefix in ``bucket``."""
        prefix = run.delta_prefix(COLLECTION)
        for relative, body in self._produced(s3, bucket, image_id, receipt_id, run):
            s3.put_object(Bucket=bucket, Key=f"{prefix}{relative}", Body=body)

    def _produced(
        self, s3: S3Client, bucket: str, image_id: str, receipt_id: int, run: oracle.RunRow
    ) -> list[tuple[str, bytes]]:
        with self._lock:
            if run.run_id in self._objects:
                return self._objects[run.run_id]
            records = oracle.delta_records(image_id, receipt_id, run, COLLECTION, self.dimension)
            # Produced under a throw-away run id, then read back: the producer decides its
            # own layout below the prefix, the run row names where the delta is.
            scratch = f"explorer-delta-{uuid.uuid4().hex[:12]}"
            prefix = write_delta(records, COLLECTION, bucket=bucket, run_id=scratch, s3_client=s3)
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            objects = []
            for entry in listed:
                key = entry["Key"]
                objects.append(
                    (key[len(prefix) :], s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                )
                s3.delete_object(Bucket=bucket, Key=key)
            if not objects:
                raise RuntimeError(f"write_delta wrote nothing under {prefix}")
            self._objects[run.run_id] = objects
            return objects
