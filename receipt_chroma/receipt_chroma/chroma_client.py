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

Against a Chroma server (``http_host``, contract §12) every call goes through
``chroma_http``: timeouts, retries with backoff, and the breaker that marks the client
``unavailable``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

from receipt_chroma.chroma_http import (
    HttpOptions,
    RetryPolicy,
    call_with_retries,
    heartbeat,
    server_url,
    timed_http_client,
)
from receipt_chroma.constants import COLLECTION_CONFIGURATION, WRITE_CHUNK
from receipt_chroma.exceptions import (
    ChromaClientError,
    CollectionConfigurationError,
    SinkUnavailableError,
)

Mode = Literal["read", "write", "delta"]
MODES: tuple[Mode, ...] = ("read", "write", "delta")
T = TypeVar("T")


def collection_space(configuration: Any) -> str | None:
    """The distance space of a collection's configuration (``hnsw`` on a single-node
    server, ``spann`` on a distributed one); None when it says neither."""
    for index in ("hnsw", "spann"):
        part = (configuration or {}).get(index) if isinstance(configuration, Mapping) else None
        if isinstance(part, Mapping) and part.get("space"):
            return str(part["space"])
    return None


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
        """chromadb's HttpClient with a timeout on every request; a heartbeat first."""
        http = options or HttpOptions()
        url = self.url = server_url(host, port, http.ssl)
        self._retry = http.retry
        self._request_records = http.write_batch
        self.call(lambda: heartbeat(url, http))
        return self.call(lambda: timed_http_client(host, port, http, _settings(persistent=False)))

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
        before = self.before_write if write else None
        if self._retry is None:
            if before is not None:
                before()
            return action()
        return call_with_retries(
            action, url=self.url, retry=self._retry, before=before, give_up=self._give_up
        )

    def _give_up(self, reason: str) -> None:
        self.unavailable = reason

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
