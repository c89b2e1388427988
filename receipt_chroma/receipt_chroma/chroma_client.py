"""ChromaClient: the one way this project opens ChromaDB.

Telemetry is off and no embedding function is ever attached (records always carry their
embeddings, so nothing may try to download a model). ``close()`` closes the client and
then clears chromadb's shared system cache, in that order, so the directory is flushed
and released before it is copied or archived.

Every collection it hands out is a ``ClientCollection``: all calls pass through it, so
the client knows whether a write call was ever issued (``wrote``) — the one fact that
decides whether a working copy still matches the version it was made from — and every
write is split into batches within the client's maximum batch size (against a server, also
within a request size that keeps each call to seconds of server work).

Against a Chroma server (``http_host``, contract §12) calls also get what a network needs:
a timeout on every request (those chromadb makes while the client is built included),
retries of transient failures (connection errors, timeouts, rate limiting, a gateway's
502/503/504) with exponential backoff, and a breaker — once a call has used up its retries
on an unreachable server, or the server refused the credentials (401/403), the client is
``unavailable`` and every later call fails at once with ``SinkUnavailableError`` instead of
waiting out its own retries. The only credentials are the headers it is given: chromadb's
``CHROMA_CLIENT_AUTH_*`` environment variables are ignored (contract §12).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.base_http_client import BaseHTTPClient
from chromadb.api.client import Client
from chromadb.api.models.Collection import Collection
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import AuthorizationError, ChromaAuthError, RateLimitError

from receipt_chroma import settings as defaults
from receipt_chroma.constants import COLLECTION_CONFIGURATION, WRITE_CHUNK
from receipt_chroma.exceptions import (
    ChromaClientError,
    CollectionConfigurationError,
    CredentialsRefusedError,
    SinkUnavailableError,
)

Mode = Literal["read", "write", "delta"]
MODES: tuple[Mode, ...] = ("read", "write", "delta")
T = TypeVar("T")
API_PATH = "/api/v2"
GATEWAY_UNAVAILABLE = frozenset({502, 503, 504})  # a proxy/load balancer without its server
REFUSED = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call and the exponential backoff between them (full jitter)."""

    attempts: int = defaults.CHROMA_RETRY_ATTEMPTS
    base_seconds: float = defaults.CHROMA_RETRY_BASE_SECONDS
    max_seconds: float = defaults.CHROMA_RETRY_MAX_SECONDS

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


def collection_space(configuration: Any) -> str | None:
    """The distance space of a collection's configuration (``hnsw`` on a single-node
    server, ``spann`` on a distributed one); None when it says neither."""
    for index in ("hnsw", "spann"):
        part = (configuration or {}).get(index) if isinstance(configuration, Mapping) else None
        if isinstance(part, Mapping) and part.get("space"):
            return str(part["space"])
    return None


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


@functools.cache
def _settings_template(persistent: bool) -> Settings:
    # Explicit values win over the environment: chromadb's CHROMA_CLIENT_AUTH_PROVIDER /
    # CHROMA_CLIENT_AUTH_CREDENTIALS / CHROMA_SERVER_HEADERS never add credentials (the
    # token comes from its Secrets Manager secret only, contract §12).
    return Settings(
        anonymized_telemetry=False,
        allow_reset=False,
        is_persistent=persistent,
        chroma_client_auth_provider=None,
        chroma_client_auth_credentials=None,
        chroma_auth_token_transport_header=None,
        chroma_server_headers=None,
    )


def _settings(*, persistent: bool) -> Settings:
    # Building Settings reads every environment source (~30 ms); a copy does not. A copy,
    # because chromadb writes the persist directory into the object it is given.
    return _settings_template(persistent).model_copy(deep=True)


def _rows(embeddings: Any, start: int, end: int) -> Any:
    """A slice of the embeddings; arrays stay one contiguous float32 block (fastest upsert)."""
    if isinstance(embeddings, np.ndarray):
        return np.ascontiguousarray(embeddings[start:end], dtype=np.float32)
    return [list(row) for row in embeddings[start:end]]


def _batches(call: dict[str, Any], size: int) -> Iterator[dict[str, Any]]:
    """A write call's arguments split into calls of at most ``size`` ids: every argument
    with one entry per id is sliced alike, the others (``where``) are passed whole."""
    ids = call.get("ids")
    if not isinstance(ids, list | tuple) or len(ids) <= size:
        yield call
        return
    count = len(ids)
    for start in range(0, count, size):
        yield {
            name: value[start : start + size]
            if isinstance(value, list | tuple | np.ndarray) and len(value) == count
            else value
            for name, value in call.items()
        }


class ClientCollection:
    """A collection of a ``ChromaClient``. Every call goes through the client (retries
    against a server); each write call (upsert, update, delete, modify) first tells the
    client — whether it then succeeds, fails or raises — is refused on a read-only
    client, and is split into batches within the client's maximum batch size."""

    def __init__(self, collection: Collection, owner: ChromaClient) -> None:
        self.collection = collection
        self._owner = owner

    @property
    def name(self) -> str:
        return self.collection.name

    @property
    def configuration(self) -> Any:
        return self.collection.configuration

    @property
    def metadata(self) -> Any:
        return self.collection.metadata

    def count(self) -> int:
        return self._owner.call(self.collection.count)

    def get(self, **kwargs: Any) -> Any:
        return self._owner.call(lambda: self.collection.get(**kwargs))

    def peek(self, limit: int = 10) -> Any:
        return self._owner.call(lambda: self.collection.peek(limit))

    def query(self, **kwargs: Any) -> Any:
        return self._owner.call(lambda: self.collection.query(**kwargs))

    def upsert(self, **kwargs: Any) -> None:
        self._write(self.collection.upsert, kwargs)

    def update(self, **kwargs: Any) -> None:
        self._write(self.collection.update, kwargs)

    def delete(self, **kwargs: Any) -> None:
        self._write(self.collection.delete, kwargs)

    def modify(self, **kwargs: Any) -> None:
        self._owner.call(lambda: self.collection.modify(**kwargs), write=True)

    def _write(self, method: Callable[..., object], kwargs: dict[str, Any]) -> None:
        self._owner.before_write()  # recorded even if the batch size cannot be read
        for part in _batches(kwargs, self._owner.write_batch_size):
            self._owner.call(functools.partial(method, **part), write=True)


class ChromaClient:
    """``ChromaClient(persist_directory=None, mode="read"|"write"|"delta", http_host=None,
    http_port=None)``.

    - ``read`` opens an existing persisted directory; writes are refused.
    - ``write`` opens or creates a snapshot directory.
    - ``delta`` creates a fresh delta in a new or empty directory.
    - with ``http_host`` it wraps ``chromadb.HttpClient`` (a Chroma server; ``http``
      holds TLS, tenant, database, headers, timeouts, retries and the write size);
      without a directory or host it is an in-memory client.

    ``write_guard`` runs before every write call and every retry of one (the server sink
    passes the lease's check, so a holder that lost its lease stops writing).
    """

    def __init__(
        self,
        persist_directory: str | Path | None = None,
        mode: Mode = "read",
        http_host: str | None = None,
        http_port: int | None = None,
        *,
        http: HttpOptions | None = None,
        write_guard: Callable[[], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ChromaClientError(f"mode must be one of {'|'.join(MODES)}, got {mode!r}")
        self.mode: Mode = mode
        self.persist_directory = Path(persist_directory) if persist_directory else None
        self._closed = False
        self.wrote = False
        self.write_guard = write_guard
        self.url: str | None = None
        self.unavailable: str | None = None  # why the server is considered unreachable
        self._retry: RetryPolicy | None = None
        self._max_batch_size: int | None = None
        self._request_records: int | None = None  # a server's write request size
        if http_host is not None:
            if self.persist_directory is not None:
                raise ChromaClientError("give either persist_directory or http_host, not both")
            self._client: ClientAPI = self._connect(http_host, http_port or 8000, http)
        elif self.persist_directory is None:
            self._client = chromadb.EphemeralClient(settings=_settings(persistent=False))
        else:
            self._prepare_directory(self.persist_directory)
            self._client = chromadb.PersistentClient(
                path=str(self.persist_directory), settings=_settings(persistent=True)
            )

    def _connect(self, host: str, port: int, options: HttpOptions | None) -> ClientAPI:
        """chromadb's HttpClient with a timeout on every request, those it makes while it
        is built (identity, tenant, database) included. A heartbeat with the connect
        timeout comes first, so an address that never answers fails fast."""
        http = options or HttpOptions()
        self.url = server_url(host, port, http.ssl)
        self._retry = http.retry
        self._request_records = http.write_batch
        headers = dict(http.headers)
        timeout = httpx.Timeout(http.request_timeout_seconds, connect=http.connect_timeout_seconds)

        def heartbeat() -> None:
            httpx.get(
                f"{self.url}/heartbeat", headers=headers, timeout=http.connect_timeout_seconds
            ).raise_for_status()

        def create() -> ClientAPI:
            # What chromadb.HttpClient does, with _TimedClient for its Client.
            settings = _settings(persistent=False)
            settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
            settings.chroma_server_host = host
            settings.chroma_server_http_port = port
            settings.chroma_server_ssl_enabled = http.ssl
            settings.chroma_server_headers = dict(headers)  # chromadb adds its own to it
            return _TimedClient(
                timeout=timeout, tenant=http.tenant, database=http.database, settings=settings
            )

        self.call(heartbeat)
        return self.call(create)

    def _prepare_directory(self, directory: Path) -> None:
        if self.mode == "read":
            if not (directory / "chroma.sqlite3").is_file():
                raise ChromaClientError(f"no Chroma database to read in {directory}")
        elif self.mode == "delta":
            if directory.exists() and any(directory.iterdir()):
                raise ChromaClientError(f"a delta needs a new or empty directory: {directory}")
            directory.mkdir(parents=True, exist_ok=True)
        else:
            directory.mkdir(parents=True, exist_ok=True)

    # --- calls ------------------------------------------------------------------------------

    def call(self, action: Callable[[], T], *, write: bool = False) -> T:
        """Run ``action`` (one chromadb call); against a server, retry it while the server
        is unreachable and the policy allows, then mark the client unavailable."""
        if self.unavailable is not None:
            raise SinkUnavailableError(self.unavailable)
        delays = self._retry.delays() if self._retry is not None else iter(())
        while True:
            if write:
                self.before_write()
            try:
                return action()
            except Exception as error:
                if self._retry is None:
                    raise
                how = refused(error)
                if how is not None:
                    self.unavailable = f"Chroma server {self.url} refused the credentials ({how})"
                    raise CredentialsRefusedError(self.unavailable) from error
                if not unreachable(error):
                    raise
                delay = next(delays, None)
                if delay is None:
                    self.unavailable = (
                        f"Chroma server {self.url} unreachable after "
                        f"{self._retry.attempts} attempts: {_describe(error)}"
                    )
                    raise SinkUnavailableError(self.unavailable) from error
                time.sleep(delay)

    # --- collections --------------------------------------------------------------------

    @property
    def client(self) -> ClientAPI:
        self._check_open()
        return self._client

    @property
    def max_batch_size(self) -> int:
        """The most records one write call may carry (read once; a server that does not
        say gets the project's write chunk)."""
        if self._max_batch_size is None:
            size = int(self.call(self.client.get_max_batch_size))
            self._max_batch_size = size if size > 0 else WRITE_CHUNK
        return self._max_batch_size

    @property
    def write_batch_size(self) -> int:
        """Records per write call: the maximum batch size, and against a server no more
        than its request size (``HttpOptions.write_batch``)."""
        if self._request_records is None:
            return self.max_batch_size
        return min(self.max_batch_size, self._request_records)

    def get_collection(self, name: str) -> ClientCollection:
        found = self.call(lambda: self.client.get_collection(name, embedding_function=None))
        return self._checked(found)

    def _checked(self, collection: Collection) -> ClientCollection:
        """A server's collection, once its distance space is the §4 one (an existing
        collection keeps its own configuration whatever get_or_create asks for)."""
        if self.url is not None:
            want = collection_space(COLLECTION_CONFIGURATION)
            have = collection_space(collection.configuration)
            if have != want:
                raise CollectionConfigurationError(
                    f"server collection {collection.name} at {self.url} uses distance space "
                    f"{have or 'unknown'}, contract §4 requires {want}: recreate it with "
                    f"configuration {COLLECTION_CONFIGURATION}"
                )
        return ClientCollection(collection, self)

    def get_or_create_collection(
        self, name: str, metadata: Mapping[str, Any] | None = None
    ) -> ClientCollection:
        self._check_writable()
        collection = self.call(
            lambda: self.client.get_or_create_collection(
                name,
                configuration=COLLECTION_CONFIGURATION,  # type: ignore[arg-type]
                metadata=dict(metadata) if metadata else None,
                embedding_function=None,
            )
        )
        return self._checked(collection)

    def list_collection_names(self) -> list[str]:
        return [c.name for c in self.call(self.client.list_collections)]

    # --- writes ---------------------------------------------------------------------------

    def upsert(
        self,
        collection: ClientCollection | str,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]] | Any,
        documents: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Upsert in chunks of the client's maximum batch size; returns the records sent."""
        self._check_writable()
        target = self.get_collection(collection) if isinstance(collection, str) else collection
        if len(set(ids)) != len(ids):
            raise ChromaClientError("upsert ids must be unique within one call")
        size = self.max_batch_size
        for start in range(0, len(ids), size):
            end = start + size
            target.upsert(
                ids=list(ids[start:end]),
                embeddings=_rows(embeddings, start, end),
                documents=None if documents is None else list(documents[start:end]),
                metadatas=None if metadatas is None else [dict(m) for m in metadatas[start:end]],
            )
        return len(ids)

    # --- lifecycle ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ChromaClientError("the client is closed")

    def before_write(self) -> None:
        """Called before every write call: refuses on a read client, records the write,
        then runs the write guard."""
        self._check_writable()
        self.wrote = True
        if self.write_guard is not None:
            self.write_guard()

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode == "read":
            raise ChromaClientError(
                f"client for {self.persist_directory or self.url} was opened read-only "
                "(mode='read')"
            )

    def close(self) -> None:
        """Flush and release the directory: close the client, then clear the system cache."""
        if self._closed:
            return
        self._closed = True
        self._client.close()  # type: ignore[attr-defined]
        # clear_system_cache() forgets every client's system, so it runs only when no other
        # client is open in this process (a delta may be read while the snapshot is open).
        if not SharedSystemClient._identifier_to_system:
            SharedSystemClient.clear_system_cache()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
