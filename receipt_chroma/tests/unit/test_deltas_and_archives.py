"""Deltas on S3 (moto in-process) and defensive archive extraction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import boto3
import pytest

from receipt_chroma import ChromaClient, write_delta
from receipt_chroma.archive import create_tarball, extract_tarball
from receipt_chroma.compaction.deltas import DeltaLocation, download_delta, read_delta
from receipt_chroma.exceptions import DeltaError, UnsafeArchiveError
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo.testing import IMAGE_ID

BUCKET = "deltas"


def _tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            data = b"x" if member.isfile() else None
            archive.addfile(member, io.BytesIO(data) if data else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("../escape"), "escapes"),
        (_file("/etc/passwd-copy"), "absolute"),
        (_file("a/../../escape"), "escapes"),
        (_link("evil", "/etc/passwd"), "link"),
        (_link("hard", "chroma.sqlite3", tarfile.LNKTYPE), "link"),
    ],
)
def test_unsafe_members_are_rejected_before_anything_is_written(
    tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    archive = _tar_with(tmp_path / "bad.tar.gz", _file("chroma.sqlite3"), member)
    destination = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_tarball(archive, destination)
    assert not any(destination.rglob("*"))
    assert not (tmp_path / "escape").exists()


def test_special_files_are_rejected(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(UnsafeArchiveError, match="special file"):
        extract_tarball(_tar_with(tmp_path / "f.tar.gz", fifo), tmp_path / "out")


def test_tarball_members_are_relative_to_the_persist_directory(tmp_path: Path) -> None:
    with ChromaClient(tmp_path / "db", mode="delta") as client:
        client.get_or_create_collection("lines")
    archive = create_tarball(tmp_path / "db", tmp_path / "db.tar.gz")
    with tarfile.open(archive) as opened:
        names = opened.getnames()
    assert "chroma.sqlite3" in names
    assert not any(name.startswith(("db/", "/", "./")) for name in names)


@pytest.fixture
def s3(mocked_aws: None) -> object:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_written_delta_reads_back_exactly(s3: object, tmp_path: Path) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    prefix = write_delta(receipt.word_records(), "words", bucket=BUCKET, run_id="r1")
    assert prefix == "words/delta/r1/"
    location = DeltaLocation.parse(f"s3://{BUCKET}/{prefix}", "unused")
    folder = download_delta(location, tmp_path / "d", run_id="r1", s3_client=s3)  # type: ignore[arg-type]
    records = read_delta(folder, "words", run_id="r1", dimension=8)
    assert sorted(r.id for r in records) == sorted(r[0] for r in receipt.word_records())
    assert all(r.metadata["text"] == r.document for r in records)


def test_directory_tree_deltas_are_supported(s3: object, tmp_path: Path) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    with ChromaClient(tmp_path / "tree", mode="delta") as client:
        client.upsert(
            client.get_or_create_collection("lines"),
            ids=[r[0] for r in receipt.line_records()],
            embeddings=[r[1] for r in receipt.line_records()],
        )
    for path in (tmp_path / "tree").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"custom/{path.relative_to(tmp_path / 'tree')}")  # type: ignore[attr-defined]
    location = DeltaLocation.parse("custom", BUCKET)
    assert location.prefix == "custom/"
    folder = download_delta(location, tmp_path / "d", run_id="r2", s3_client=s3)  # type: ignore[arg-type]
    assert len(read_delta(folder, "lines", run_id="r2", dimension=8)) == 3


def test_missing_delta_names_the_run(s3: object, tmp_path: Path) -> None:
    with pytest.raises(DeltaError, match=r"run r9: no delta at s3://deltas/nothing/"):
        download_delta(
            DeltaLocation.parse("nothing/", BUCKET), tmp_path / "d", run_id="r9", s3_client=s3
        )  # type: ignore[arg-type]


def test_wrong_collection_and_dimension_are_rejected(s3: object, tmp_path: Path) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    write_delta(receipt.line_records(), "lines", bucket=BUCKET, run_id="r1")
    folder = download_delta(
        DeltaLocation.parse("lines/delta/r1/", BUCKET), tmp_path / "d", run_id="r1", s3_client=s3
    )  # type: ignore[arg-type]
    with pytest.raises(
        DeltaError, match=r"run r1: delta must hold exactly one collection named 'words'"
    ):
        read_delta(folder, "words", run_id="r1", dimension=8)
    with pytest.raises(DeltaError, match="dimension 8, expected 1536"):
        read_delta(folder, "lines", run_id="r1", dimension=1536)


def test_a_rejected_archive_leaves_no_directories_behind(tmp_path: Path) -> None:
    archive = _tar_with(
        tmp_path / "bad.tar.gz",
        _file("segment/data_level0.bin"),
        _file("segment/nested/header.bin"),
        _link("segment/evil", "/etc/passwd"),
    )
    destination = tmp_path / "out"
    (destination / "kept").mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_tarball(archive, destination)
    assert [p.name for p in destination.rglob("*")] == ["kept"]
