"""What commands keep on this machine between calls: the stream positions of ``run``,
downloaded snapshot versions, and the ETags of the snapshot objects read back and hashed
here."""

from __future__ import annotations

import json
import os
from pathlib import Path

from receipt_compaction_tools.cli.parser import PROG


def state_dir() -> Path:
    """Where commands keep state between calls (``run``'s stream positions):
    ``$RECEIPT_COMPACTION_STATE_DIR``, else ``$XDG_STATE_HOME/receipt-compaction``, else
    ``~/.local/state/receipt-compaction``."""
    explicit = os.environ.get("RECEIPT_COMPACTION_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / PROG


def cache_dir() -> Path:
    """Downloaded snapshot versions (immutable, so safe to reuse):
    ``$XDG_CACHE_HOME/receipt-compaction``, else ``~/.cache/receipt-compaction``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PROG


# --- objects verified here ---------------------------------------------------------------


def _verified_file(bucket: str, collection: str) -> Path:
    return state_dir() / "verified-objects" / f"{bucket}-{collection}.json"


def verified_etags(bucket: str, collection: str) -> dict[str, str]:
    """sha256 → ETag of the snapshot objects this machine read back and hashed (``status
    --deep``, ``snapshot repair``): objects are immutable, so a later status flags one
    whose ETag changed without reading it again."""
    try:
        data = json.loads(_verified_file(bucket, collection).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_verified(bucket: str, collection: str, etags: dict[str, str]) -> None:
    path = _verified_file(bucket, collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(etags, sort_keys=True))
    temporary.replace(path)


def remember_verified(bucket: str, collection: str, etags: dict[str, str]) -> None:
    if etags:
        _write_verified(bucket, collection, {**verified_etags(bucket, collection), **etags})


def forget_verified(bucket: str, collection: str, sha256: str) -> None:
    """Drop an object's recorded ETag (a repair rewrote it)."""
    etags = verified_etags(bucket, collection)
    if etags.pop(sha256, None) is not None:
        _write_verified(bucket, collection, etags)
