"""The format 2 manifest and the S3 layout (contract §6.1): exact fields, validation,
the hash, and the keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from receipt_chroma.exceptions import SnapshotUnavailableError, SnapshotVersionCorruptError
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.layout import SnapshotLayout
from receipt_chroma.snapshots.manifest import (
    FileEntry,
    Manifest,
    check_manifest_bytes,
    is_safe_path,
    manifest_digest,
    parse_manifest,
)

VERSION = "20261130_101500_000000_0a1b2c3d"
SHA = "ab" * 32


def _manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "collection": "words",
        "version_id": VERSION,
        "base_version": None,
        "created_at": "2026-11-30T10:15:00.000000+00:00",
        "chromadb_version": "1.5.9",
        "dimension": 8,
        "record_count": 3,
        "files": (FileEntry("chroma.sqlite3", 10, SHA), FileEntry("seg/data_level0.bin", 4, SHA)),
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_manifest_has_exactly_the_contract_fields_and_round_trips() -> None:
    manifest = _manifest()
    data = manifest.to_bytes()
    body = json.loads(data)
    assert list(body) == [
        "format",
        "collection",
        "version_id",
        "base_version",
        "created_at",
        "chromadb_version",
        "dimension",
        "record_count",
        "files",
    ]
    assert body["format"] == 2
    assert body["files"] == [
        {"path": "chroma.sqlite3", "size": 10, "sha256": SHA},
        {"path": "seg/data_level0.bin", "size": 4, "sha256": SHA},
    ]
    assert parse_manifest(data, collection="words", version_id=VERSION) == manifest
    assert manifest_digest(data) == f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda b: b.update(format=1), "format must be 2"),
        (lambda b: b.update(collection="lines"), "names 'lines'"),
        (lambda b: b.pop("dimension"), "exactly the fields"),
        (lambda b: b.update(extra=1), "exactly the fields"),
        (lambda b: b["files"].reverse(), "sorted by path"),
        (lambda b: b["files"][0].update(path="../x"), "safe relative path"),
        (lambda b: b["files"][0].update(path="/etc/passwd"), "safe relative path"),
        (lambda b: b["files"][0].update(sha256="AB" * 32), "lower-case hex"),
        (lambda b: b["files"][0].update(size=-1), "non-negative"),
        (lambda b: b.update(record_count=True), "non-negative integer"),
        (lambda b: b["files"][0].update(path="a\x00b"), "safe relative path"),
        (lambda b: b["files"][0].update(path="a\nb"), "safe relative path"),
        (
            lambda b: b["files"].insert(1, dict(b["files"][0], path="chroma.sqlite3/x")),
            "'chroma.sqlite3' is both a file and a directory",
        ),
        (
            lambda b: b["files"].extend([dict(b["files"][0], path=p) for p in ("zz", "zz/b")]),
            "'zz' is both a file and a directory",
        ),
        (
            lambda b: b["files"].extend([dict(b["files"][0], path=p) for p in ("zz", "zz/y/b")]),
            "'zz' is both a file and a directory",
        ),
    ],
)
def test_malformed_manifests_are_corrupt_versions(change: object, problem: str) -> None:
    body = json.loads(_manifest().to_bytes())
    change(body)  # type: ignore[operator]
    with pytest.raises(SnapshotVersionCorruptError, match=problem) as raised:
        parse_manifest(json.dumps(body).encode(), collection="words", version_id=VERSION)
    assert isinstance(raised.value, SnapshotUnavailableError)


def test_manifest_bytes_must_match_the_recorded_hash() -> None:
    data = _manifest().to_bytes()
    check_manifest_bytes(data, manifest_digest(data), where="w")
    with pytest.raises(SnapshotVersionCorruptError, match="does not match"):
        check_manifest_bytes(data + b" ", manifest_digest(data), where="w")


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("chroma.sqlite3", True),
        ("a/b.bin", True),
        ("", False),
        ("/a", False),
        ("a/../b", False),
        ("..", False),
        ("a//b", False),
        ("./a", False),
        ("a\\b", False),
        ("a\x00b", False),
        ("a\x1fb", False),
        ("a\x7fb", False),
        ("x" * 256, False),
        ("x" * 255, True),
    ],
)
def test_only_relative_paths_inside_the_directory_are_safe(path: str, safe: bool) -> None:
    assert is_safe_path(path) is safe


def test_layout_keys() -> None:
    layout = SnapshotLayout("lines")
    assert layout.object_key(SHA) == f"lines/snapshot/objects/{SHA}.zst"
    assert layout.manifest_key(VERSION) == f"lines/snapshot/versions/{VERSION}/manifest.json"
    assert layout.manifest_hash_key(VERSION) == f"lines/snapshot/versions/{VERSION}/.manifest_hash"
    assert layout.tarball_key(VERSION) == f"lines/snapshot/timestamped/{VERSION}/snapshot.tar.gz"
    assert layout.pointer_key == "lines/snapshot/latest-pointer.txt"
    assert layout.object_sha(layout.object_key(SHA)) == SHA
    assert layout.version_of(layout.manifest_key(VERSION)) == (2, VERSION)
    assert layout.version_of(layout.tarball_key(VERSION)) == (1, VERSION)
    with pytest.raises(ValueError, match="sha256"):
        layout.object_key("not-a-digest")


def test_directory_entries_are_sorted_with_sizes_and_hashes(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.bin").write_bytes(b"xyz")
    (tmp_path / "a.sqlite3").write_bytes(b"")
    assert directory_entries(tmp_path) == [
        FileEntry("a.sqlite3", 0, hashlib.sha256(b"").hexdigest()),
        FileEntry("b/x.bin", 3, hashlib.sha256(b"xyz").hexdigest()),
    ]
