"""The import paths the user's summary relies on, and the re-export modules."""

from __future__ import annotations

import receipt_chroma
import receipt_dynamo_stream
from receipt_chroma import ChromaClient
from receipt_chroma.compaction import merge_compaction_deltas, update_receipt_metadata
from receipt_chroma.stream import (
    CHROMADB_RELEVANT_FIELDS,
    FieldChange,
    StreamMessage,
    get_chromadb_relevant_changes,
)


def test_stream_api_is_re_exported_not_redefined() -> None:
    assert get_chromadb_relevant_changes is receipt_dynamo_stream.get_chromadb_relevant_changes
    assert CHROMADB_RELEVANT_FIELDS is receipt_dynamo_stream.CHROMADB_RELEVANT_FIELDS
    assert FieldChange is receipt_dynamo_stream.FieldChange
    assert StreamMessage is receipt_dynamo_stream.StreamMessage


def test_root_exports_the_client_and_the_compaction_api() -> None:
    for name in (
        "ChromaClient",
        "update_receipt_metadata",
        "remove_receipt_metadata",
        "update_word_labels",
        "remove_word_labels",
        "reconstruct_label_metadata",
        "merge_compaction_deltas",
        "process_collection_updates",
        "write_delta",
    ):
        assert name in receipt_chroma.__all__
        assert hasattr(receipt_chroma, name)
    assert receipt_chroma.ChromaClient is ChromaClient
    assert receipt_chroma.merge_compaction_deltas is merge_compaction_deltas
    assert receipt_chroma.update_receipt_metadata is update_receipt_metadata


def test_every_public_name_is_bound_when_its_package_is_imported() -> None:
    # No module-level __getattr__: what __all__ lists is in the module's namespace at once.
    import receipt_chroma.compaction
    import receipt_chroma.reader
    import receipt_chroma.snapshots

    for package in (
        receipt_chroma,
        receipt_chroma.compaction,
        receipt_chroma.reader,
        receipt_chroma.snapshots,
    ):
        assert "__getattr__" not in vars(package), package.__name__
        missing = [name for name in package.__all__ if name not in vars(package)]
        assert missing == [], f"{package.__name__} lists unbound names {missing}"


def test_no_public_name_hides_a_submodule_of_the_same_name() -> None:
    # `import receipt_chroma.snapshots.audit as m` must give the module, not a function
    # the package bound over it.
    import pkgutil

    import receipt_chroma.compaction
    import receipt_chroma.reader
    import receipt_chroma.snapshots

    for package in (receipt_chroma.compaction, receipt_chroma.reader, receipt_chroma.snapshots):
        submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
        assert submodules & set(package.__all__) == set(), package.__name__
