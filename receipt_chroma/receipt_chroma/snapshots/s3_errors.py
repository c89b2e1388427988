"""Reading S3 error codes (the same on AWS and on the moto server)."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def not_found(error: ClientError) -> bool:
    return error_code(error) in {"404", "NoSuchKey", "NotFound"}


def precondition_failed(error: ClientError) -> bool:
    """A conditional write lost: the object exists (``IfNoneMatch``) or changed (``IfMatch``)."""
    return error_code(error) in {"PreconditionFailed", "ConditionalRequestConflict", "412"}
