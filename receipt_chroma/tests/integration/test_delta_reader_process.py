"""The delta reader helper process against a moto server: same records as in-process,
the same errors, a fallback when it dies or cannot reach S3, and a new helper when one
stops answering."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.compaction import MergeTarget, merge_compaction_deltas, produce_compaction_run
from receipt_chroma.compaction.deltas import (
    DELTA_TARBALL,
    DeltaReaderProcess,
    DeltaReadRequest,
    InProcessDeltaReader,
    fetch,
    write_delta,
)
from receipt_chroma.exceptions import (
    DeltaReaderTimeoutError,
    DeltaUrlUnreachableError,
    UnsafeArchiveError,
)
from receipt_compaction_tools.testing.pytest_plugin import TableFixture
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo.testing import IMAGE_ID, SilentEndpoint

BUCKET = "reader-deltas"
LOGGER = logging.getLogger("test-delta-reader")


@pytest.fixture
def helper() -> Iterator[DeltaReaderProcess]:
    reader = DeltaReaderProcess()
    assert reader.wait_ready()
    yield reader
    reader.close()


@pytest.fixture
def bucket(aws_endpoint: str) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def _request(tmp_path: Path, run_id: str, url: str) -> DeltaReadRequest:
    return DeltaReadRequest(
        destination=tmp_path / f"delta-{run_id}",
        collection="words",
        run_id=run_id,
        image_id=IMAGE_ID,
        receipt_id=1,
        dimension=8,
        url=url,
    )


def _url(key: str) -> str:
    return boto3.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
    )


def test_helper_reads_a_delta_by_url_exactly_as_in_process(
    bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, lines=3, words_per_line=4, dimension=8)
    prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id="r1")
    url = _url(f"{prefix}{DELTA_TARBALL}")

    by_helper = helper.load(_request(tmp_path / "a", "r1", url))
    assert helper.alive  # read by the helper, not by the in-process fallback
    in_process = InProcessDeltaReader().load(_request(tmp_path / "b", "r1", url))

    expected = {r[0]: (r[2], r[3]["text"]) for r in receipt.word_records()}
    assert {r.id: (r.document, r.metadata["text"]) for r in by_helper} == expected
    assert sorted((r.id, [round(float(x), 6) for x in r.embedding]) for r in by_helper) == sorted(
        (r.id, [round(float(x), 6) for x in r.embedding]) for r in in_process
    )


def test_helper_reports_a_hostile_tarball_naming_nothing_outside(
    bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as archive:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    key = "words/delta/hostile/delta.tar.gz"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=payload.getvalue())

    with pytest.raises(UnsafeArchiveError, match="escapes"):
        helper.load(_request(tmp_path / "work", "hostile", _url(key)))
    assert not (tmp_path / "escaped").exists()
    assert helper.alive  # one bad delta does not cost the helper


def test_helper_that_died_is_replaced_by_in_process_reading(
    bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id="r2")
    assert helper.pid is not None
    helper._process.kill()  # type: ignore[union-attr]
    helper._process.wait()  # type: ignore[union-attr]

    records = helper.load(_request(tmp_path, "r2", _url(f"{prefix}{DELTA_TARBALL}")))
    assert sorted(r.id for r in records) == sorted(r[0] for r in receipt.word_records())
    assert not helper.alive


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_helper_that_stops_answering_is_killed_and_the_next_read_starts_a_new_one(
    bucket: str, tmp_path: Path
) -> None:
    reader = DeltaReaderProcess()
    assert reader.wait_ready()  # its imports take longer than the short timeout below
    reader.answer_timeout_seconds = 1.0
    stuck = reader.pid
    assert stuck is not None
    with SilentEndpoint() as silent:  # the helper's download waits on it for ever
        started = time.monotonic()
        with pytest.raises(DeltaReaderTimeoutError, match=r"did not answer in 1 s reading run r4"):
            reader.load(_request(tmp_path / "a", "r4", f"{silent.url}/delta.tar.gz"))
        assert time.monotonic() - started < 10
    assert not _running(stuck)

    reader.answer_timeout_seconds = 120.0
    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id="r5")
    records = reader.load(_request(tmp_path / "b", "r5", _url(f"{prefix}{DELTA_TARBALL}")))
    assert sorted(r.id for r in records) == sorted(r[0] for r in receipt.word_records())
    assert reader.alive
    assert reader.pid != stuck  # read by a new helper, not in-process
    reader.close()


def _load_in_threads(
    reader: DeltaReaderProcess, requests: list[DeltaReadRequest], stagger: float = 0.0
) -> list[list[str] | Exception]:
    """Each request's record ids (or its error), every read waiting on the helper at once."""
    results: list[list[str] | Exception] = [[] for _ in requests]

    def read(index: int) -> None:
        try:
            results[index] = sorted(r.id for r in reader.load(requests[index]))
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=read, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
        time.sleep(stagger)
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_reads_sent_together_each_get_their_own_delta(
    bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    receipts = [SyntheticReceipt(IMAGE_ID, 1, lines=n, dimension=8) for n in range(1, 6)]
    requests = []
    for n, receipt in enumerate(receipts):
        prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id=f"t{n}")
        requests.append(_request(tmp_path / f"t{n}", f"t{n}", _url(f"{prefix}{DELTA_TARBALL}")))
    pid = helper.pid

    results = _load_in_threads(helper, requests)

    assert results == [sorted(r[0] for r in receipt.word_records()) for receipt in receipts]
    assert helper.alive
    assert helper.pid == pid


def test_reads_queued_behind_a_stuck_one_are_read_by_a_new_helper(
    bucket: str, tmp_path: Path
) -> None:
    reader = DeltaReaderProcess()
    assert reader.wait_ready()
    # Long enough for the new helper's imports, which its first answer includes.
    reader.answer_timeout_seconds = 6.0
    stuck = reader.pid
    receipts = [SyntheticReceipt(IMAGE_ID, 1, lines=n, dimension=8) for n in (2, 3)]
    with SilentEndpoint() as silent:
        requests = [_request(tmp_path / "s", "stuck", f"{silent.url}/delta.tar.gz")]
        for n, receipt in enumerate(receipts):
            prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id=f"q{n}")
            requests.append(_request(tmp_path / f"q{n}", f"q{n}", _url(f"{prefix}{DELTA_TARBALL}")))
        results = _load_in_threads(reader, requests, stagger=0.2)

    assert isinstance(results[0], DeltaReaderTimeoutError)
    assert "reading run stuck" in str(results[0])
    assert results[1:] == [sorted(r[0] for r in receipt.word_records()) for receipt in receipts]
    assert reader.alive
    assert reader.pid != stuck
    assert not _running(stuck)
    reader.close()


def test_when_no_new_helper_can_start_deltas_are_read_in_process(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = DeltaReaderProcess()
    assert reader.wait_ready()
    reader.answer_timeout_seconds = 1.0
    with SilentEndpoint() as silent, pytest.raises(DeltaReaderTimeoutError):
        reader.load(_request(tmp_path / "a", "r6", f"{silent.url}/delta.tar.gz"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))

    receipt = SyntheticReceipt(IMAGE_ID, 1, dimension=8)
    prefix = write_delta(receipt.word_records(), "words", bucket=bucket, run_id="r7")
    records = reader.load(_request(tmp_path / "b", "r7", _url(f"{prefix}{DELTA_TARBALL}")))
    assert sorted(r.id for r in records) == sorted(r[0] for r in receipt.word_records())
    assert not reader.alive  # read in-process: the helper could not be started


def test_an_unreachable_url_is_a_fetch_error_naming_the_run(
    bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    request = _request(tmp_path, "r3", "http://127.0.0.1:9/nothing")  # discard port: refused
    with pytest.raises(DeltaUrlUnreachableError, match="run r3: S3 is not reachable by URL"):
        helper.load(request)


class UnreachableUrls:
    """An S3 client whose presigned URLs lead nowhere (S3 reachable only through its API,
    as from a container without a route to the URL's host); counts the URLs handed out."""

    def __init__(self) -> None:
        self._client = boto3.client("s3")
        self.urls = 0

    def generate_presigned_url(self, *args: object, **kwargs: object) -> str:
        self.urls += 1
        return "http://127.0.0.1:9/unreachable"  # the discard port: refused at once

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


def test_once_urls_prove_unreachable_later_merges_use_the_s3_api_alone(
    server_table: TableFixture,
    bucket: str,
    helper: DeltaReaderProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetch._UrlReach, "failed_at", None)
    s3 = UnreachableUrls()
    merged: set[str] = set()
    for receipt_id in (1, 2):
        receipt = SyntheticReceipt(IMAGE_ID, receipt_id, dimension=8)
        server_table.client.put_entities(receipt.rows)
        run = produce_compaction_run(
            server_table.client,
            image_id=IMAGE_ID,
            receipt_id=receipt_id,
            run_id=f"run-unreachable-{receipt_id}",
            lines=[],
            words=receipt.word_records(),
            bucket=bucket,
        )
        target = MergeTarget(run, server_table.client.get_receipt_state(IMAGE_ID, receipt_id))
        with ChromaClient(tmp_path / "snapshot", mode="write") as client:
            results = merge_compaction_deltas(
                client,
                "words",
                [target],
                bucket=bucket,
                logger=LOGGER,
                s3_client=s3,  # type: ignore[arg-type]
                dimension=8,
                work_dir=tmp_path,
                reader=helper,
            )
            assert [r.error for r in results] == [None]
            merged = set(client.get_collection("words").get()["ids"])
        assert {r[0] for r in receipt.word_records()} <= merged
    assert s3.urls == 1  # the second merge did not try (and wait for) a URL again


def test_merge_through_the_helper_writes_every_record(
    server_table: TableFixture, bucket: str, helper: DeltaReaderProcess, tmp_path: Path
) -> None:
    receipts = [SyntheticReceipt(IMAGE_ID, n, dimension=8) for n in (1, 2, 3)]
    targets = []
    for n, receipt in enumerate(receipts):
        server_table.client.put_entities(receipt.rows)
        run = produce_compaction_run(
            server_table.client,
            image_id=IMAGE_ID,
            receipt_id=receipt.receipt_id,
            run_id=f"run-{n}",
            lines=[],
            words=receipt.word_records(),
            bucket=bucket,
        )
        targets.append(MergeTarget(run, server_table.client.get_receipt_state(IMAGE_ID, n + 1)))
    # A tree-layout delta has no tarball: the URL fails and the S3 API path takes over.
    targets.append(_tree_layout_target(server_table, tmp_path))

    with ChromaClient(tmp_path / "snapshot", mode="write") as client:
        results = merge_compaction_deltas(
            client,
            "words",
            targets,
            bucket=bucket,
            logger=LOGGER,
            dimension=8,
            work_dir=tmp_path,
            reader=helper,
        )
        assert [r.error for r in results] == [None] * 4
        stored = client.get_collection("words").get()
    expected = {r[0] for receipt in receipts for r in receipt.word_records()}
    expected |= {r[0] for r in SyntheticReceipt(IMAGE_ID, 9, dimension=8).word_records()}
    assert set(stored["ids"]) == expected


def _tree_layout_target(table: TableFixture, tmp_path: Path) -> MergeTarget:
    receipt = SyntheticReceipt(IMAGE_ID, 9, dimension=8)
    table.client.put_entities(receipt.rows)
    with ChromaClient(tmp_path / "tree", mode="delta") as client:
        client.upsert(
            client.get_or_create_collection("words"),
            ids=[r[0] for r in receipt.word_records()],
            embeddings=[r[1] for r in receipt.word_records()],
            documents=[r[2] or "" for r in receipt.word_records()],
            metadatas=[r[3] for r in receipt.word_records()],
        )
    s3 = boto3.client("s3")
    for path in (tmp_path / "tree").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"trees/r9/{path.relative_to(tmp_path / 'tree')}")
    run = produce_compaction_run(
        table.client,
        image_id=IMAGE_ID,
        receipt_id=9,
        run_id="run-tree",
        lines=[],
        words=[],
        bucket=BUCKET,
    )
    run = dataclasses.replace(run, words_delta_prefix=f"s3://{BUCKET}/trees/r9")
    return MergeTarget(run, table.client.get_receipt_state(IMAGE_ID, 9))
