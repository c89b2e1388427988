"""Importing the snapshots package, or reading a manifest / the S3 store, never loads
chromadb (about 3 s): the package's public names are imported on first use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from receipt_chroma import snapshots


def _modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + "\nimport sys\nprint(*sorted(sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in done.stdout.split()}


def test_importing_the_package_and_reading_a_manifest_does_not_load_chromadb() -> None:
    loaded = _modules_after(
        """
        import receipt_chroma.snapshots
        from receipt_chroma.snapshots import Manifest, S3SnapshotStore, SnapshotStats
        from receipt_chroma.snapshots.manifest import parse_manifest
        from receipt_chroma.snapshots.s3_store import S3SnapshotStore as Store
        from receipt_chroma.snapshots.versions import new_version_id

        version = new_version_id()
        manifest = Manifest(
            collection="words", version_id=version, base_version=None,
            created_at="2026-12-01T00:00:00+00:00", chromadb_version="1.0.0",
            dimension=8, record_count=0, files=(),
        )
        parsed = parse_manifest(manifest.to_bytes(), collection="words", version_id=version)
        assert parsed == manifest and Store is S3SnapshotStore
        """
    )
    assert "receipt_chroma" in loaded
    assert "chromadb" not in loaded


def test_every_public_name_still_resolves() -> None:
    for name in snapshots.__all__:
        assert getattr(snapshots, name) is not None, name
    assert sorted(dir(snapshots)) == sorted(snapshots.__all__)
