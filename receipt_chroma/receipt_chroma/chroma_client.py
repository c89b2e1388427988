"""ChromaClient: the one way this project opens ChromaDB.

Telemetry is off and no embedding function is ever attached (records always carry their
embeddings, so nothing may try to download a model). ``close()`` closes the client and
then clears chromadb's shared system cache, in that order, so the directory is flushed
and released before it is copied or archived.

Every collection it hands out is a ``ClientCollection``: all writes pass through it, so
the client knows whether a write call was ever issued (``wrote``) — the one fact that
decides whether a working copy still matches the version it was made from.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

from receipt_chroma.constants import COLLECTION_CONFIGURATION
from receipt_chroma.exceptions import ChromaClientError

Mode = Literal["read", "write", "delta"]
MODES: tuple[Mode, ...] = ("read", "write", "delta")


@functools.cache
def _settings_template(persistent: bool) -> Settings:
    return Settings(anonymized_telemetry=False, allow_reset=False, is_persistent=persistent)


def _settings(*, persistent: bool) -> Settings:
    # Building Settings reads every environment source (~30 ms); a copy does not. A copy,
    # because chromadb writes the persist directory into the object it is given.
    return _settings_template(persistent).model_copy(deep=True)


def _rows(embeddings: Any, start: int, end: int) -> Any:
    """A slice of the embeddings; arrays stay one contiguous float32 block (fastest upsert)."""
    if isinstance(embeddings, np.ndarray):
        return np.ascontiguousarray(embeddings[start:end], dtype=np.float32)
    return [list(row) for row in embeddings[start:end]]


class ClientCollection:
    """A collection of a ``ChromaClient``. Reads go straight to chromadb; each write call
    (upsert, update, delete, modify) first tells the client — whether it then succeeds,
    fails or raises — and is refused on a read-only client."""

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
        return self.collection.count()

    def get(self, **kwargs: Any) -> Any:
        return self.collection.get(**kwargs)

    def peek(self, limit: int = 10) -> Any:
        return self.collection.peek(limit)

    def query(self, **kwargs: Any) -> Any:
        return self.collection.query(**kwargs)

    def upsert(self, **kwargs: Any) -> None:
        self._owner.before_write()
        self.collection.upsert(**kwargs)

    def update(self, **kwargs: Any) -> None:
        self._owner.before_write()
        self.collection.update(**kwargs)

    def delete(self, **kwargs: Any) -> None:
        self._owner.before_write()
        self.collection.delete(**kwargs)

    def modify(self, **kwargs: Any) -> None:
        self._owner.before_write()
        self.collection.modify(**kwargs)


class ChromaClient:
    """``ChromaClient(persist_directory=None, mode="read"|"write"|"delta", http_host=None,
    http_port=None)``.

    - ``read`` opens an existing persisted directory; writes are refused.
    - ``write`` opens or creates a snapshot directory.
    - ``delta`` creates a fresh delta in a new or empty directory.
    - with ``http_host`` it wraps ``chromadb.HttpClient`` (a Chroma server);
      without a directory or host it is an in-memory client.
    """

    def __init__(
        self,
        persist_directory: str | Path | None = None,
        mode: Mode = "read",
        http_host: str | None = None,
        http_port: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ChromaClientError(f"mode must be one of {'|'.join(MODES)}, got {mode!r}")
        self.mode: Mode = mode
        self.persist_directory = Path(persist_directory) if persist_directory else None
        self._closed = False
        self.wrote = False
        if http_host is not None:
            if self.persist_directory is not None:
                raise ChromaClientError("give either persist_directory or http_host, not both")
            self._client: ClientAPI = chromadb.HttpClient(
                host=http_host, port=http_port or 8000, settings=_settings(persistent=False)
            )
        elif self.persist_directory is None:
            self._client = chromadb.EphemeralClient(settings=_settings(persistent=False))
        else:
            self._prepare_directory(self.persist_directory)
            self._client = chromadb.PersistentClient(
                path=str(self.persist_directory), settings=_settings(persistent=True)
            )

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

    # --- collections --------------------------------------------------------------------

    @property
    def client(self) -> ClientAPI:
        self._check_open()
        return self._client

    @property
    def max_batch_size(self) -> int:
        return int(self.client.get_max_batch_size())

    def get_collection(self, name: str) -> ClientCollection:
        return ClientCollection(self.client.get_collection(name, embedding_function=None), self)

    def get_or_create_collection(
        self, name: str, metadata: Mapping[str, Any] | None = None
    ) -> ClientCollection:
        self._check_writable()
        collection = self.client.get_or_create_collection(
            name,
            configuration=COLLECTION_CONFIGURATION,  # type: ignore[arg-type]
            metadata=dict(metadata) if metadata else None,
            embedding_function=None,
        )
        return ClientCollection(collection, self)

    def list_collection_names(self) -> list[str]:
        return [c.name for c in self.client.list_collections()]

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
        """Called before every write call: refuses on a read client, records the write."""
        self._check_writable()
        self.wrote = True

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode == "read":
            raise ChromaClientError(
                f"client for {self.persist_directory} was opened read-only (mode='read')"
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
