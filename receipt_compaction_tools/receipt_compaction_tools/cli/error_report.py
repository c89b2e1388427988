"""How the CLI reports a failed command: one line on stderr naming what is wrong, and the
exit status (1: the operation failed; 2: a usage or configuration error or a name that does
not exist). Errors are told apart by class; receipt_chroma (and chromadb with it, ~1.5 s)
is imported only to classify an error it raised, so a usage error or a silent endpoint is
reported without it, within the command's ``--timeout``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from receipt_compaction_tools.cli.exceptions import OperationFailed, UsageError
from receipt_compaction_tools.cli.settings import DEFAULT_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_line(text: str) -> None:
    print(f"error: {_one_line(text)}", file=sys.stderr)


# AWS error codes that mean a name given by the user does not exist: a configuration error.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def _endpoint_error(error: BaseException, budget: float) -> str | None:
    """The line for an endpoint that refused the connection or did not answer, naming it."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    from receipt_dynamo import ClientTimeouts

    if not isinstance(error, ConnectTimeoutError | EndpointConnectionError | ReadTimeoutError):
        return None
    url = urlsplit(str(error.kwargs.get("endpoint_url", "")))
    endpoint = f"{url.scheme}://{url.netloc}" if url.netloc else "the endpoint"
    timeouts = ClientTimeouts.within(budget)
    if isinstance(error, ReadTimeoutError):
        return (
            f"{endpoint} accepted the connection but did not answer within "
            f"{timeouts.read_seconds:g} s ({timeouts.max_attempts} attempts; --timeout "
            f"{budget:g} s)"
        )
    if isinstance(error, ConnectTimeoutError):
        return (
            f"cannot reach {endpoint}: no connection within {timeouts.connect_seconds:g} s "
            f"({timeouts.max_attempts} attempts; --timeout {budget:g} s)"
        )
    # urllib3's text ends with the socket's reason ("[Errno 111] Connection refused").
    reason = str(error.kwargs.get("error", "")).rsplit(": ", 1)[-1] or "could not connect"
    return f"cannot reach {endpoint}: {reason} ({timeouts.max_attempts} attempts)"


def _raised_by_receipt_chroma(error: BaseException) -> bool:
    """Whether ``error`` is one of receipt_chroma's: only then is the package (and chromadb,
    ~1.5 s) imported to tell which; a usage or endpoint error must exit without it, within
    the command's --timeout."""
    return any(cls.__module__.startswith("receipt_chroma.") for cls in type(error).__mro__)


def _receipt_chroma_status(error: BaseException) -> int | None:
    """The exit status of one of receipt_chroma's errors; None for one that is not its
    ``ReceiptChromaError`` (reported like any other error)."""
    from receipt_chroma.exceptions import (
        ReceiptChromaError,
        SnapshotDestinationError,
        SnapshotVersionMissingError,
    )

    if isinstance(error, SnapshotDestinationError | SnapshotVersionMissingError):
        return 2
    return 1 if isinstance(error, ReceiptChromaError) else None


def report_error(error: BaseException, budget: float = DEFAULT_TIMEOUT_SECONDS) -> int:
    """The one line for ``error`` and the exit status."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        InvalidRegionError,
        NoCredentialsError,
        NoRegionError,
    )

    from receipt_dynamo import ReceiptDynamoError
    from receipt_dynamo_stream import ConfigurationError

    if isinstance(error, UsageError | ConfigurationError):
        error_line(str(error))
        return 2
    status = _receipt_chroma_status(error) if _raised_by_receipt_chroma(error) else None
    if status is not None:
        error_line(str(error))
        return status
    if isinstance(error, OperationFailed | ReceiptDynamoError):
        error_line(str(error))
        return 1
    if isinstance(error, ClientError):
        return _report_client_error(error)
    if isinstance(error, NoCredentialsError):
        error_line(f"{error} (set AWS credentials, e.g. AWS_PROFILE)")
        return 2
    if isinstance(error, NoRegionError):
        error_line(
            "no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in the AWS "
            "profile); an --endpoint-url on this machine defaults to us-east-1"
        )
        return 2
    if isinstance(error, InvalidRegionError):
        error_line(f"{error.kwargs.get('region_name')!r} is not an AWS region (e.g. us-east-1)")
        return 2
    endpoint = _endpoint_error(error, budget)
    if endpoint is not None:
        error_line(endpoint)
        return 1
    if isinstance(error, BotoCoreError):
        error_line(f"cannot reach AWS: {error}")
        return 1
    if isinstance(error, OSError):
        error_line(f"{type(error).__name__}: {error}")
        return 1
    error_line(
        f"unexpected {type(error).__name__}: {error} (RECEIPT_COMPACTION_DEBUG=1 shows more)"
    )
    return 1


def _report_client_error(error: ClientError) -> int:
    """An error AWS answered: not found (2), or refused (1)."""
    details = error.response.get("Error", {})
    code = details.get("Code", "error")
    message = details.get("Message") or ""
    operation = getattr(error, "operation_name", "")
    resource = details.get("Resource")  # named by the CLI's clients (clients.aws)
    if code in NOT_FOUND_CODES:
        error_line(f"{resource or 'a resource'} not found ({code} in {operation})")
        return 2
    on = f" on {resource}" if resource else ""
    error_line(f"AWS refused {operation}{on} ({code})" + (f": {message}" if message else ""))
    return 1
