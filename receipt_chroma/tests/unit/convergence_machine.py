"""The convergence model's state machine (``test_convergence_model``): the rules that
edit the table model and write each change to the table, on top of the delivery and the
check of ``ConvergenceDelivery``."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from convergence_delivery import ConvergenceDelivery
from convergence_world import (
    BUCKET,
    DELTAS,
    FAULTS,
    INVALID_TIMESTAMP,
    LABEL_NAMES,
    LABEL_STATUSES,
    MAX_RECEIPTS,
    RUN_NAMESPACE,
    SLOTS,
    T0,
    TIME_STYLES,
    RowChange,
    Shape,
    maybe_invalid_timestamps,
    subsets,
    write_instant,
)
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from receipt_compaction_tools.testing import spec_oracle as oracle


class ConvergenceMachine(ConvergenceDelivery):
    # --- table writes ------------------------------------------------------------------------

    def sync(self) -> None:
        """Write the model's changes to the table: deletions, then rows, then new runs."""
        items = self.model.items()
        deletes: list[RowChange] = [
            (key, item, None) for key, item in self.written.items() if key not in items
        ]
        changed = [(key, item) for key, item in items.items() if self.written.get(key) != item]
        changed.sort(key=lambda pair: pair[1]["TYPE"]["S"] == "COMPACTION_RUN")
        puts: list[RowChange] = [(key, self.written.get(key), item) for key, item in changed]
        self.world.write(deletes + puts)
        self.written = items

    def live(self) -> list[oracle.ReceiptState]:
        return [r for r in self.model.receipts.values() if r.exists]

    def pick(
        self,
        data: st.DataObject,
        having: Callable[[oracle.ReceiptState], bool] = lambda _: True,
    ) -> oracle.ReceiptState:
        """A live receipt (drawn by its key, which reads well in a reproduction)."""
        keys = sorted(r.key for r in self.live() if having(r))
        return self.model.receipts[data.draw(st.sampled_from(keys), "receipt")]

    def deleted(self) -> list[tuple[str, int]]:
        return [
            key
            for key in self.shapes
            if key not in self.model.receipts or not self.model.receipts[key].exists
        ]

    def new_run(
        self,
        receipt: oracle.ReceiptState,
        line_ids: frozenset[int],
        word_ids: frozenset[tuple[int, int]],
        created_at: str,
        missing: str,
    ) -> None:
        """A producer's run: deltas uploaded (unless ``missing``), then the run row."""
        image_id, receipt_id = receipt.key
        history = self.all_runs.setdefault(receipt.key, [])
        run_id = str(uuid.uuid5(RUN_NAMESPACE, f"{image_id}/{receipt_id}/{len(history)}"))
        run = oracle.RunRow(run_id, created_at, line_ids, word_ids, "", "")
        prefixes = {}
        for collection in oracle.COLLECTIONS:
            prefix, objects = DELTAS.produce(image_id, receipt_id, run, collection)
            prefixes[collection] = prefix
            if missing in (collection, "both"):
                self.missing_deltas += objects
            else:
                for key, body in objects:
                    self.world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        run = dataclasses.replace(
            run, lines_delta_prefix=prefixes["lines"], words_delta_prefix=prefixes["words"]
        )
        history.append(run)
        receipt.runs[run_id] = run
        self.sync()

    def run_time(self, key: tuple[str, int], steps: int, style: str) -> str:
        return write_instant(self.run_floor[key] + timedelta(minutes=20 * steps), style)

    # --- rules: receipts and runs ---------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1), data=st.data())
    def start(self, seed: int, data: st.DataObject) -> None:
        """The receipts, and what goes wrong in the first cycles of the final drain (drawn
        here, not from ``seed``, so that a failure shrinks to the fault that matters)."""
        self.rng = random.Random(seed)
        self.drain_faults = data.draw(st.lists(FAULTS, max_size=3), "drain_faults")
        for _ in range(data.draw(st.sampled_from([MAX_RECEIPTS, 1]), "receipts")):
            self.create_receipt(data)

    @precondition(lambda self: len(self.shapes) < MAX_RECEIPTS)
    @rule(data=st.data())
    def create_receipt(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from([s for s in SLOTS if s not in self.shapes]), "slot")
        lines = data.draw(st.integers(1, 3), "lines")
        words_per_line = data.draw(st.sampled_from([2, 1, 2, 0]), "words_per_line")
        receipt = self.model.receipt(*slot)
        receipt.exists = True
        for line_id in range(1, lines + 1):
            receipt.lines[line_id] = oracle.LineRow(line_id, f"row line {line_id}")
            for word_id in range(1, words_per_line + 1):
                receipt.words[(line_id, word_id)] = oracle.WordRow(
                    line_id, word_id, f"row word {line_id}.{word_id}"
                )
        self.shapes[slot] = Shape(
            frozenset(receipt.lines),
            frozenset(receipt.words),
            frozenset({lines + 1}),
            frozenset({(1, words_per_line + 1), (lines + 1, 1)}),
        )
        self.run_floor[slot] = T0
        for word in sorted(receipt.words):
            if data.draw(st.booleans(), f"label word {word}"):
                self.draw_labels(data, receipt, word)
        if data.draw(st.booleans(), "with_metadata"):
            receipt.metadata = self.draw_metadata(data, None)
        self.sync()
        if data.draw(st.sampled_from([True, True, False]), "with_run"):
            style = data.draw(st.sampled_from(TIME_STYLES), "created_at_style")
            missing = data.draw(st.sampled_from(["none", "none", "lines", "words"]), "missing")
            self.new_run(
                receipt,
                frozenset(receipt.lines),
                frozenset(receipt.words),
                self.run_time(slot, 0, style),
                missing,
            )

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def add_run(self, data: st.DataObject) -> None:
        receipt = self.pick(data)
        shape = self.shapes[receipt.key]
        line_ids = data.draw(subsets(shape.line_ids, shape.phantom_lines), "delta_lines")
        word_ids = data.draw(subsets(shape.word_ids, shape.phantom_words), "delta_words")
        steps = data.draw(st.integers(0, 3), "created_at_step")
        style = data.draw(st.sampled_from(TIME_STYLES), "created_at_style")
        missing = data.draw(st.sampled_from(["none", "none", "none", "lines", "both"]), "missing")
        self.new_run(receipt, line_ids, word_ids, self.run_time(receipt.key, steps, style), missing)

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def delete_receipt(self, data: st.DataObject) -> None:
        """All of its rows go: receipt, lines, words, labels, metadata and runs."""
        receipt = self.pick(data)
        # Remember which rows to re-create; a re-created receipt gets them back.
        self.shapes[receipt.key] = dataclasses.replace(
            self.shapes[receipt.key],
            line_ids=frozenset(receipt.lines),
            word_ids=frozenset(receipt.words),
        )
        self.model.receipts[receipt.key] = oracle.ReceiptState(*receipt.key, exists=False)
        self.sync()

    @precondition(lambda self: bool(self.deleted()))
    @rule(data=st.data())
    def recreate_receipt(self, data: st.DataObject) -> None:
        """Its rows again, and a new run covering them all, newer than any earlier run."""
        key = data.draw(st.sampled_from(self.deleted()), "receipt")
        shape = self.shapes[key]
        receipt = self.model.receipt(*key)
        receipt.exists = True
        for line_id in sorted(shape.line_ids):
            receipt.lines[line_id] = oracle.LineRow(line_id, f"row line {line_id}")
        for line_id, word_id in sorted(shape.word_ids):
            receipt.words[(line_id, word_id)] = oracle.WordRow(
                line_id, word_id, f"row word {line_id}.{word_id}"
            )
        self.sync()
        instants = [oracle.parse_instant(r.created_at) for r in self.all_runs.get(key, [])]
        known = [self.run_floor[key], *filter(None, instants)]
        # Newer or older than every run of the deleted receipt: its runs are gone with it,
        # so the re-creating run is the receipt's newest either way (§5.4).
        if data.draw(st.booleans(), "recreated_by_an_older_run"):
            self.run_floor[key] = min(known) - timedelta(hours=2)
        else:
            self.run_floor[key] = max(known) + timedelta(hours=2)
        style = data.draw(st.sampled_from(TIME_STYLES), "created_at_style")
        self.new_run(
            receipt,
            shape.line_ids | shape.phantom_lines,
            shape.word_ids,
            self.run_time(key, 0, style),
            "none",
        )

    @precondition(lambda self: any(r.words for r in self.live()))
    @rule(data=st.data())
    def delete_word(self, data: st.DataObject) -> None:
        """Never re-created in this example (its label rows stay)."""
        receipt = self.pick(data, lambda r: bool(r.words))
        word = data.draw(st.sampled_from(sorted(receipt.words)), "word")
        del receipt.words[word]
        self.sync()

    @precondition(lambda self: any(r.lines for r in self.live()))
    @rule(data=st.data())
    def delete_line(self, data: st.DataObject) -> None:
        """Never re-created in this example; with ``with_words`` its words go too."""
        receipt = self.pick(data, lambda r: bool(r.lines))
        line_id = data.draw(st.sampled_from(sorted(receipt.lines)), "line")
        del receipt.lines[line_id]
        if data.draw(st.booleans(), "with_words"):
            for key in [k for k in receipt.words if k[0] == line_id]:
                del receipt.words[key]
        self.sync()

    # --- rules: labels and metadata ------------------------------------------------------

    def _unique(self, what: str) -> str:
        self.edit_count += 1
        return f"{what} {self.edit_count}"

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def put_labels(self, data: st.DataObject) -> None:
        """One to three label rows of one word (words already labelled are favoured, so
        words get several labels whose timestamps compete)."""
        receipt = self.pick(data)
        shape = self.shapes[receipt.key]
        labelled = sorted({(line, word) for line, word, _ in receipt.labels})
        word = data.draw(
            st.sampled_from(labelled * 2 + sorted(shape.word_ids | shape.phantom_words)), "word"
        )
        self.draw_labels(data, receipt, word)
        self.sync()

    def draw_labels(
        self, data: st.DataObject, receipt: oracle.ReceiptState, word: tuple[int, int]
    ) -> None:
        names = data.draw(
            st.permutations(LABEL_NAMES).flatmap(
                lambda order: st.sampled_from([order[:2], order, order[:1]])
            ),
            "labels",
        )
        # Distinct instants (one tie) in distinct spellings, so that string order and
        # instant order of the word's timestamps disagree as often as not.
        minutes = data.draw(st.permutations([30, 0, 30, 90]), "minutes")
        styles = data.draw(st.permutations(TIME_STYLES), "styles")
        for index, name in enumerate(names):
            invalid = data.draw(st.sampled_from([False] * 5 + [True]), f"{name} invalid")
            stamp = T0 + timedelta(minutes=minutes[index])
            row = oracle.LabelRow(
                line_id=word[0],
                word_id=word[1],
                label=name,
                timestamp_added=INVALID_TIMESTAMP
                if invalid
                else write_instant(stamp, styles[index]),
                validation_status=data.draw(st.sampled_from(LABEL_STATUSES), f"{name} status"),
                label_proposed_by=data.draw(
                    st.sampled_from([None, "", "gpt", "human"]), f"{name} proposed_by"
                ),
                reasoning=data.draw(st.sampled_from([None, "seen on receipt"]), f"{name} why"),
            )
            previous = receipt.labels.get((word[0], word[1], name))
            if previous is not None and previous.relevant() == row.relevant():
                # A MODIFY that changes no §3.2 field produces no message (SPEC §3.3).
                row = dataclasses.replace(row, reasoning=self._unique("edit"))
            receipt.labels[(word[0], word[1], name)] = row

    @precondition(lambda self: any(r.labels for r in self.live()))
    @rule(data=st.data())
    def delete_label(self, data: st.DataObject) -> None:
        receipt = self.pick(data, lambda r: bool(r.labels))
        key = data.draw(st.sampled_from(sorted(receipt.labels)), "label")
        del receipt.labels[key]
        self.sync()

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def put_metadata(self, data: st.DataObject) -> None:
        receipt = self.pick(data)
        receipt.metadata = self.draw_metadata(data, receipt.metadata)
        self.sync()

    def draw_metadata(
        self, data: st.DataObject, previous: oracle.MetadataRow | None
    ) -> oracle.MetadataRow:
        row = oracle.MetadataRow(
            merchant_name=data.draw(st.sampled_from(["Corner Mkt", "Shop B", ""]), "merchant"),
            place_id=data.draw(st.sampled_from(["", "ChIJ-place-1"]), "place_id"),
            timestamp=data.draw(maybe_invalid_timestamps, "timestamp"),
            canonical_merchant_name=data.draw(
                st.sampled_from([None, "", "Corner Market"]), "canonical"
            ),
            merchant_category=data.draw(st.sampled_from([None, "grocery"]), "category"),
            address=data.draw(st.sampled_from([None, "1 Main St"]), "address"),
            phone_number=data.draw(st.sampled_from([None, "", "555-0100"]), "phone"),
            validated_by=data.draw(st.sampled_from([None, "INFERENCE"]), "validated_by"),
            matched_fields=data.draw(
                st.sampled_from([frozenset(), frozenset({"name", "phone"})]), "matched"
            ),
        )
        if previous is not None and previous.relevant() == row.relevant():
            # A MODIFY that changes no §3.2 field produces no message (SPEC §3.3).
            row = dataclasses.replace(row, merchant_name=self._unique("Shop"))
        return row

    @precondition(lambda self: any(r.metadata for r in self.live()))
    @rule(data=st.data())
    def delete_metadata(self, data: st.DataObject) -> None:
        receipt = self.pick(data, lambda r: bool(r.metadata))
        receipt.metadata = None
        self.sync()
