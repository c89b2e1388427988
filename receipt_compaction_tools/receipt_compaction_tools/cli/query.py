"""``receipt-compaction query``: nearest neighbours of a record (by id) or of a vector (a
JSON file), with ``--where key=value`` filters, on the published snapshot of a collection
or on a Chroma server (``--host``/``--port``).

A snapshot is served by the collection's ``SnapshotReader`` over the command's cache: the
copy the previous command served stays there, and the next version is caught up from it
(only the files that differ are downloaded); older copies are pruned, so the cache holds
one copy per collection, not one per version ever queried."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import OperationFailed, UsageError
from receipt_compaction_tools.cli.local_state import cache_dir
from receipt_compaction_tools.cli.output import Output
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    ENDPOINT,
    REGION,
    TABLE,
    add_settings,
    positive_int,
)

if TYPE_CHECKING:
    from receipt_chroma.chroma_client import ChromaClient
    from receipt_chroma.reader import SnapshotReader
    from receipt_chroma.snapshots import S3SnapshotStore


def snapshot_reader(
    args: argparse.Namespace, collection: str, snapshots: S3SnapshotStore | None = None
) -> SnapshotReader:
    """The collection's reader over the cache (``<cache>/snapshots/<bucket>/<collection>``;
    the directory where earlier versions of this command kept whole copies, which the
    reader's pruning removes)."""
    from receipt_chroma.reader import SnapshotReader
    from receipt_compaction_tools.cli.snapshot_access import store

    bucket = BUCKET.value(args, required=True)
    return SnapshotReader(
        collection=collection,
        store=snapshots if snapshots is not None else store(args, collection),
        dynamo=clients.dynamo(args),
        directory=cache_dir() / "snapshots" / bucket / collection,
    )


def serve(reader: SnapshotReader, version: str, *, reuse_dir: Path | None = None) -> None:
    """Make ``reader`` serve ``version``, or raise why it cannot (a missing version is a
    usage error, a corrupt one a failure). Files of ``reuse_dir`` named by their sha256
    are used instead of downloading them again."""
    outcome = reader.refresh(version, objects_dirs=[] if reuse_dir is None else [reuse_dir])
    if outcome.error is not None:
        raise outcome.error


@contextmanager
def private_copy(
    args: argparse.Namespace,
    collection: str,
    version: str,
    *,
    reuse_dir: Path | None = None,
) -> Iterator[Path]:
    """A verified local copy of ``version`` in a temporary directory of its own, removed on
    exit: for a command that only reads its files (``status --deep``), without opening
    Chroma or taking the query reader's directory. Files of ``reuse_dir`` named by their
    sha256 are used instead of downloading them."""
    from receipt_chroma.snapshots import LocalFile, read_version
    from receipt_compaction_tools.cli.snapshot_access import store

    reuse = (
        {p.name: [LocalFile(p)] for p in reuse_dir.iterdir() if p.is_file()}
        if reuse_dir is not None
        else None
    )
    with tempfile.TemporaryDirectory(prefix=f"copy-{collection}-") as scratch:
        target = Path(scratch) / version
        read_version(store(args, collection), version, target, reuse=reuse)
        yield target


def manifest_dimension(snapshots: S3SnapshotStore, version: str) -> int | None:
    """The dimension a format 2 version's manifest records (None for format 1)."""
    found = snapshots.read_manifest(version)
    return None if found is None else int(found[0].dimension)


def _pointer_version(args: argparse.Namespace, collection: str) -> str:
    pointer = clients.dynamo(args).get_snapshot_pointer(collection)
    if pointer is None:
        raise UsageError(f"{collection} has no published snapshot (no pointer item)")
    return pointer.version


def parse_where(conditions: list[str]) -> dict[str, Any] | None:
    """``key=value`` pairs as a Chroma ``where`` (one condition plain, several ``$and``).
    Values: true/false, integers and decimals are typed; everything else is a string."""
    clauses: list[dict[str, Any]] = []
    for condition in conditions:
        key, separator, text = condition.partition("=")
        if not separator or not key:
            raise UsageError(f"--where {condition!r}: expected key=value")
        value: Any = text
        if text in ("true", "false"):
            value = text == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        clauses.append({key: value})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def read_vector(path: Path) -> list[float]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: not a JSON array of numbers ({error})") from None
    if isinstance(data, dict) and "embedding" in data:
        data = data["embedding"]
    if (
        not isinstance(data, list)
        or not data
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in data)
    ):
        raise UsageError(f"{path}: not a JSON array of numbers")
    return [float(x) for x in data]


def _server_collection(client: ChromaClient, name: str, server: str) -> Any:
    """The server's collection, or one line naming it and the server."""
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name)
    except NotFoundError:
        raise OperationFailed(
            f"the Chroma server {server} has no {name} collection: load it with sink seed "
            f"--collection {name}"
        ) from None


def command_query(args: argparse.Namespace, out: Output) -> None:
    where = parse_where(args.where or [])
    vector = read_vector(Path(args.vector)) if args.vector else None
    with ExitStack() as opened:
        if args.host:
            from receipt_chroma.compaction import chroma_server_from_env

            # The rest of the connection (tenant, database, TLS, the token's secret) as the
            # compactor reads it (contract §8 CHROMA_* variables).
            server = clients.chroma_server(
                args,
                chroma_server_from_env(
                    {**os.environ, "CHROMA_HOST": args.host, "CHROMA_PORT": str(args.port)}
                ),
            )
            source: dict[str, Any] = {"server": server.describe()}
            client = opened.enter_context(server.connect(mode="read"))
            collection = _server_collection(client, args.collection, source["server"])
        else:
            from receipt_compaction_tools.cli.snapshot_access import store

            version = args.version or _pointer_version(args, args.collection)
            snapshots = store(args, args.collection)
            dimension = manifest_dimension(snapshots, version)
            if vector is not None and dimension is not None and len(vector) != dimension:
                raise UsageError(
                    f"the vector has {len(vector)} dimensions, {args.collection} version "
                    f"{version} holds {dimension}-dimensional embeddings"
                )
            reader = opened.enter_context(snapshot_reader(args, args.collection, snapshots))
            serve(reader, version)
            served = opened.enter_context(reader.use())
            source = {"version": served.version, "path": str(served.path)}
            collection = served.collection
        result = collection.query(
            query_embeddings=[query_vector(collection, args, vector)],
            n_results=args.n,
            where=where,
            include=["metadatas", "distances", "documents"],
        )
    ids: Any = result["ids"][0]
    metadatas: Any = (result["metadatas"] or [[]])[0]
    distances: Any = (result["distances"] or [[]])[0]
    neighbours = [
        {"id": i, "distance": round(float(d), 6), "metadata": m}
        for i, m, d in zip(ids, metadatas, distances, strict=True)
    ]
    out.emit(
        {"collection": args.collection, **source, "where": where, "neighbours": neighbours},
        render_query,
    )


def query_vector(
    collection: Any, args: argparse.Namespace, vector: list[float] | None
) -> list[float]:
    """``--vector``, else the embedding of ``--id``; UsageError when that record is not in
    the collection or the collection's dimension differs."""
    if vector is None:
        found = collection.get(ids=[args.id], include=["embeddings"])
        embeddings: Any = found["embeddings"]
        if not found["ids"] or embeddings is None or len(embeddings) == 0:
            raise UsageError(f"{args.id} is not in the {args.collection} collection")
        vector = [float(x) for x in embeddings[0]]
    sample: Any = collection.peek(1)["embeddings"]
    if sample is not None and len(sample) and len(sample[0]) != len(vector):
        raise UsageError(
            f"the vector has {len(vector)} dimensions, the collection {len(sample[0])}"
        )
    return vector


def render_query(result: dict[str, Any], stream: IO[str]) -> None:
    """One neighbour per line (ids are long: never cut to the terminal's width)."""
    where = result["where"]
    origin = result.get("version") or result.get("server")
    lines = [
        f"{result['collection']} @ {origin}" + (f" where {json.dumps(where)}" if where else "")
    ]
    for row in result["neighbours"]:
        metadata = row["metadata"] or {}
        merchant = metadata.get("canonical_merchant_name") or metadata.get("merchant_name")
        facts = [
            f"text={metadata.get('text')!r}",
            f"merchant={merchant!r}" if merchant else "",
            f"label_status={metadata['label_status']}" if "label_status" in metadata else "",
            f"valid_labels={metadata['valid_labels_array']}"
            if "valid_labels_array" in metadata
            else "",
        ]
        distance = max(0.0, row["distance"])  # cosine distance of a vector to itself: -0.0
        lines.append(f"{distance:.4f}  {row['id']}  " + "  ".join(f for f in facts if f))
    stream.write("\n".join(lines) + "\n")


def register(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="nearest neighbours on the published snapshot or a Chroma server",
        description=__doc__,
    )
    target = query.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", help="a record id, e.g. IMAGE#<uuid>#RECEIPT#00001#LINE#00002")
    target.add_argument("--vector", help="a JSON file holding an array of numbers")
    query.add_argument("--collection", choices=["lines", "words"], default="words")
    query.add_argument("-n", type=common_positive, default=5, help="how many neighbours (5)")
    query.add_argument(
        "--where", action="append", metavar="KEY=VALUE", help="metadata filter (repeatable)"
    )
    query.add_argument("--version", help="a version instead of the pointer's")
    query.add_argument(
        "--host",
        help="query this Chroma server instead of the snapshot (tenant, database, TLS and "
        "token from CHROMA_TENANT, CHROMA_DATABASE, CHROMA_SSL, CHROMA_AUTH_TOKEN_SECRET)",
    )
    query.add_argument("--port", type=int, default=8000, help="the server's port (8000)")
    add_settings(query, ENDPOINT, REGION, TABLE, BUCKET)
    query.set_defaults(handler=command_query)


def common_positive(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
