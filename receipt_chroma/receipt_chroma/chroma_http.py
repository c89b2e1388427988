"""How a ``ChromaClient`` talks to a Chroma server (``http_host``, contract §12).

Calls get what a network needs: a connect and an answer timeout on every request (those
chromadb makes while the client is built included); retries of transient failures
(connection errors, timeouts, rate limiting, a gateway's 502/503/504) with exponential
backoff, within a deadline per call (no attempt starts that could end past it, so a
server that accepts connections and never answers fails a call in bounded time); and a
breaker: once a call has used up its retries on an unreachable server, or the server
refused the credentials (401/403), the client is ``unavailable`` and every later call
fails at once with ``SinkUnavailableError`` instead of waiting out its own retries. The
only credentials are the headers it is given: chromadb's ``CHROMA_CLIENT_AUTH_*``
environment variables are ignored (contract §12).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.base_http_client import BaseHTTPClient
from chromadb.api.client import Client
from chromadb.config import Settings
from chromadb.errors import AuthorizationError, ChromaAuthError, RateLimitError

from receipt_chroma.exceptions import (
    ChromaClientError,
    CredentialsRefusedError,
    SinkUnavailableError,
)
from receipt_dynamo_stream import compactor_defaults as defaults

T = TypeVar("T")
API_PATH = "/api/v2"
GATEWAY_UNAVAILABLE = frozenset({502, 503, 504})  # a proxy/load balancer without its server
REFUSED = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call, the exponential backoff between them (full jitter), and the
    call's deadline: a retry starts only if it can end, after ``attempt_seconds`` (the
    longest one attempt waits: its connect plus its answer timeout), within
    ``deadline_seconds`` of the call's start."""

    attempts: int = defaults.CHROMA_RETRY_ATTEMPTS
    base_seconds: float = defaults.CHROMA_RETRY_BASE_SECONDS
    max_seconds: float = defaults.CHROMA_RETRY_MAX_SECONDS
    deadline_seconds: float = defaults.CHROMA_CALL_DEADLINE_SECONDS
    attempt_seconds: float = (
        defaults.CHROMA_CONNECT_TIMEOUT_SECONDS + defaults.CHROMA_REQUEST_TIMEOUT_SECONDS
    )

    def retry_fits(self, elapsed: float, delay: float) -> bool:
        """Whether a retry after ``delay`` more seconds can end within the deadline."""
        return elapsed + delay + self.attempt_seconds <= self.deadline_seconds

    def delays(self) -> Iterator[float]:
        """The pause before each retry (``attempts - 1`` of them)."""
        for attempt in range(max(0, self.attempts - 1)):
            ceiling = min(self.max_seconds, self.base_seconds * 2**attempt)
            yield random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class HttpOptions:
    """How to reach a Chroma server beyond its host and port."""

    ssl: bool = defaults.CHROMA_SSL
    tenant: str = defaults.CHROMA_TENANT
    database: str = defaults.CHROMA_DATABASE
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_seconds: float = defaults.CHROMA_CONNECT_TIMEOUT_SECONDS
    request_timeout_seconds: float = defaults.CHROMA_REQUEST_TIMEOUT_SECONDS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    write_batch: int = defaults.CHROMA_WRITE_BATCH

    def __post_init__(self) -> None:
        # The deadline's arithmetic needs the longest wait of one attempt: these timeouts.
        attempt = self.connect_timeout_seconds + self.request_timeout_seconds
        object.__setattr__(self, "retry", replace(self.retry, attempt_seconds=attempt))


def server_url(host: str, port: int, ssl: bool) -> str:
    """The API root chromadb's HttpClient uses for these settings."""
    return BaseHTTPClient.resolve_url(
        chroma_server_host=host,
        chroma_server_ssl_enabled=ssl,
        default_api_path=API_PATH,
        chroma_server_http_port=port,
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or while handling."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _status(error: BaseException) -> int | None:
    return error.response.status_code if isinstance(error, httpx.HTTPStatusError) else None


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the server could not be reached or refused the load for
    now — worth retrying, and once retries are used up, the server is unavailable.

    chromadb raises ``httpx`` transport errors (refused, reset, timed out) as they are, or
    wrapped in a ValueError while a client is being created; a server shedding load answers
    429 (``RateLimitError``); a gateway in front of a server that is down answers 502, 503
    or 504 (chromadb raises a plain Exception of the body, from the ``HTTPStatusError``).
    Anything else (a 4xx, an internal error) is an answer about the request itself and is
    not retried.
    """
    return _unreachable_cause(error) is not None


def _unreachable_cause(error: BaseException) -> BaseException | None:
    for seen in _chain(error):
        if isinstance(seen, httpx.TransportError | RateLimitError):
            return seen
        if _status(seen) in GATEWAY_UNAVAILABLE:
            return seen
    return None


def _describe(error: BaseException) -> str:
    """What went wrong, in one line: the transport error or HTTP status underneath
    chromadb's wrappers (its ValueErrors guess at causes, e.g. "Could not connect to
    tenant ... Are you sure it exists?" for a timeout)."""
    cause = _unreachable_cause(error) or error
    if isinstance(cause, httpx.HTTPStatusError):
        response = cause.response
        return f"HTTP {response.status_code} {response.reason_phrase} from {response.url.path}"
    return f"{type(cause).__name__}: {cause}"


def refused(error: BaseException) -> str | None:
    """How the server refused the credentials, if ``error`` is such a refusal: Chroma's own
    JSON errors, or any plain 401/403 (a gateway's HTML page). Never the body or a header."""
    for seen in _chain(error):
        if isinstance(seen, AuthorizationError | ChromaAuthError):
            return type(seen).__name__
        status = _status(seen)
        if status in REFUSED:
            return f"HTTP {status}"
    return None


def call_with_retries(
    action: Callable[[], T],
    *,
    url: str | None,
    retry: RetryPolicy,
    before: Callable[[], None] | None,
    give_up: Callable[[str], None],
) -> T:
    """Run ``action`` (one chromadb call against the server at ``url``), ``before`` ahead of
    every attempt; retry it while the server is unreachable and ``retry`` allows (attempts
    and deadline). A refusal of the credentials or the last failed attempt is passed to
    ``give_up`` (the breaker) and raised as ``CredentialsRefusedError`` /
    ``SinkUnavailableError``."""
    delays = retry.delays()
    started = time.monotonic()
    attempts = 0
    while True:
        if before is not None:
            before()
        attempts += 1
        try:
            return action()
        except Exception as error:
            how = refused(error)
            if how is not None:
                reason = f"Chroma server {url} refused the credentials ({how})"
                give_up(reason)
                raise CredentialsRefusedError(reason) from error
            if not unreachable(error):
                raise
            delay = next(delays, None)
            elapsed = time.monotonic() - started
            if delay is None or not retry.retry_fits(elapsed, delay):
                reason = (
                    f"Chroma server {url} unreachable after {attempts} "
                    f"attempt{'s' if attempts > 1 else ''}: {_describe(error)} "
                    f"({elapsed:.1f} s)"
                )
                give_up(reason)
                raise SinkUnavailableError(reason) from error
            time.sleep(delay)


class _TimedClient(Client):
    """chromadb's ``HttpClient`` with a timeout on its sessions before their first request.

    chromadb 1.5 builds each session with ``timeout=None`` and has no setting for one, and
    makes requests while the client is being built: the user identity through the
    client's server API, then the tenant and database through an admin client with a
    session of its own. Each session gets the timeout just before those requests (a
    chromadb upgrade that moves them fails with ``ChromaClientError``, never hangs)."""

    def __init__(self, *, timeout: httpx.Timeout, **kwargs: Any) -> None:
        self._request_timeout = timeout
        super().__init__(**kwargs)

    def _time(self, owner: Any) -> None:
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if not isinstance(session, httpx.Client):
            raise ChromaClientError(
                f"chromadb {chromadb.__version__}: cannot set a request timeout on its client"
            )
        session.timeout = self._request_timeout

    def get_user_identity(self) -> Any:
        self._time(self)
        return super().get_user_identity()

    def _validate_tenant_database(self, tenant: str, database: str) -> None:
        self._time(self._admin_client)
        super()._validate_tenant_database(tenant, database)


def heartbeat(url: str, http: HttpOptions) -> None:
    """One heartbeat with the connect timeout, so an address that never answers fails fast."""
    httpx.get(
        f"{url}/heartbeat", headers=dict(http.headers), timeout=http.connect_timeout_seconds
    ).raise_for_status()


def timed_http_client(host: str, port: int, http: HttpOptions, settings: Settings) -> ClientAPI:
    """What ``chromadb.HttpClient`` does, with ``_TimedClient`` for its Client: a timeout on
    every request, those it makes while it is built (identity, tenant, database) included.
    ``settings`` is a fresh copy of the client settings; the server's are written into it."""
    settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
    settings.chroma_server_host = host
    settings.chroma_server_http_port = port
    settings.chroma_server_ssl_enabled = http.ssl
    settings.chroma_server_headers = dict(http.headers)  # chromadb adds its own to it
    return _TimedClient(
        timeout=httpx.Timeout(http.request_timeout_seconds, connect=http.connect_timeout_seconds),
        tenant=http.tenant,
        database=http.database,
        settings=settings,
    )
