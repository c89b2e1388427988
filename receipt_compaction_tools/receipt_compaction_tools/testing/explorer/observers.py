"""What every process of a schedule did that the final state cannot show (I4, I5): each
pointer write that took effect, each write of ``latest-pointer.txt``, and what a reader
following EFS ``.version`` would have opened at every step.

Recorded from the calls as sent (the contract's item attributes and S3 keys, §2 and §6),
through hooks on every client of every process — never from the product's own records.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from receipt_compaction_tools.testing.explorer.calls import Call, hook
from receipt_compaction_tools.testing.explorer.messages import COLLECTION
from receipt_compaction_tools.testing.explorer.models import Violation

POINTER_KEY = {"PK": f"SNAPSHOT#{COLLECTION}", "SK": "POINTER"}
POINTER_FILE = f"{COLLECTION}/snapshot/latest-pointer.txt"


@dataclass(frozen=True)
class Commit:
    """The pointer item written: ``version`` on top of ``previous_version``."""

    at: float  # time.time()
    actor: str
    version: str
    previous_version: str | None
    adopted: bool  # created for an existing version (§6 adoption), not a publish


def _plain_key(item: dict[str, Any]) -> dict[str, str]:
    return {name: str(item.get(name, {}).get("S", "")) for name in ("PK", "SK")}


def _string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    return str(value["S"]) if "S" in value else None


@dataclass
class History:
    efs_root: Path  # <CHROMA_ROOT>/snapshots/<collection>
    commits: list[Commit] = field(default_factory=list)
    pointer_files: list[tuple[str, str]] = field(default_factory=list)  # (actor, body)
    violations: list[Violation] = field(default_factory=list)
    efs_checks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Any, actor: str, on_main_thread: Callable[[], bool]) -> None:
        """Observe every call of ``client``; EFS is looked at after each call the actor's
        own thread makes (its other threads never write EFS, so what they would see is
        what the main thread saw last)."""

        def after(call: Call, context: dict[str, Any], status: int, parsed: Any) -> None:
            if status < 300:
                self._record(call, actor)
            if on_main_thread():
                self.look_at_efs(f"{actor} after {call.name}")

        hook(client, after=after)

    # --- the pointer item and the pointer file ------------------------------------------

    def _record(self, call: Call, actor: str) -> None:
        params = call.params
        if call.name == "dynamodb.TransactWriteItems":
            for entry in params.get("TransactItems", []):
                item = entry.get("Put", {}).get("Item")
                if item is not None and _plain_key(item) == POINTER_KEY:
                    self._commit(actor, item, adopted=False)
        elif call.name == "dynamodb.PutItem" and _plain_key(params.get("Item", {})) == POINTER_KEY:
            self._commit(actor, params["Item"], adopted=True)
        elif call.name == "s3.PutObject" and params.get("Key") == POINTER_FILE:
            body = params.get("Body", b"")
            # botocore has wrapped a bytes body in a file object by the time it is sent.
            data = body.getvalue() if hasattr(body, "getvalue") else body
            text = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
            with self._lock:
                self.pointer_files.append((actor, text))

    def _commit(self, actor: str, item: dict[str, Any], *, adopted: bool) -> None:
        version = _string(item, "version") or ""
        commit = Commit(time.time(), actor, version, _string(item, "previous_version"), adopted)
        with self._lock:
            self.commits.append(commit)

    def seed(self, version: str) -> None:
        """A version published before the schedule (a copied origin)."""
        with self._lock:
            self.commits.append(Commit(time.time(), "origin", version, None, adopted=False))

    def last_commit_by_other(self, actor: str, since: float) -> float | None:
        with self._lock:
            times = [c.at for c in self.commits if c.actor != actor and c.at >= since]
        return max(times, default=None)

    # --- EFS ------------------------------------------------------------------------------

    def look_at_efs(self, when: str) -> None:
        """I5: the directory ``.version`` names exists and is complete (its manifest and
        every file it lists, at the listed size)."""
        self.efs_checks += 1
        problem = efs_problem(self.efs_root, hashed=False)
        if problem is not None:
            with self._lock:
                self.violations.append(Violation("I5", f"{when}: {problem}"))


def efs_problem(efs_root: Path, *, hashed: bool) -> str | None:
    """Why a reader following ``.version`` would open a missing or partial directory."""
    marker = efs_root / ".version"
    try:
        version = marker.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    directory = efs_root / version
    try:
        manifest = json.loads((directory / "manifest.json").read_bytes())
    except FileNotFoundError:
        return f"EFS .version names {version}, whose directory or manifest.json is missing"
    for entry in manifest.get("files", []):
        path = directory.joinpath(*Path(entry["path"]).parts)
        if not path.is_file() or path.stat().st_size != entry["size"]:
            return f"EFS {version}: {entry['path']} is missing or not {entry['size']} bytes"
        if hashed and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            return f"EFS {version}: {entry['path']} does not match its sha256"
    return None
