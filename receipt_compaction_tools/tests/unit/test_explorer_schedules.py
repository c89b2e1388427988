"""The interleaving explorer's schedules (no AWS, no Chroma): a printed schedule replays
exactly, a malformed one is refused with what is wrong, and the systematic space offers
every fault where it applies and nowhere else."""

from __future__ import annotations

import pytest

from receipt_compaction_tools.testing.explorer import (
    ActorKind,
    FaultKind,
    Point,
    Schedule,
    ScheduleError,
    Sink,
    WorldKind,
    space,
)

SNAPSHOT_POINTS = [
    "stage:lease_acquired#1",
    "stage:applied#1",
    "stage:manifest_written#1",
    "before:dynamodb.TransactWriteItems#1",
    "after:dynamodb.TransactWriteItems#1",
    "stage:committed#1",
    "before:s3.GetObject#1",
    "after:s3.GetObject#1",
    "before:s3.GetObject#2",
    "after:s3.GetObject#2",
    "before:s3.GetObject#3",
    "after:s3.GetObject#3",
    "before:s3.DeleteObjects#1",
    "after:s3.DeleteObjects#1",
    "before:dynamodb.UpdateItem#1",
    "after:dynamodb.UpdateItem#1",
]
SERVER_POINTS = ["stage:lease_acquired#1", "stage:applied#1"]


def catalog() -> space.Catalog:
    reached = {
        schedule: SERVER_POINTS if schedule.sink is Sink.SERVER else SNAPSHOT_POINTS
        for schedule in space.discovery_schedules()
    }
    return space.catalog_from(reached)


def test_a_printed_schedule_replays_as_itself() -> None:
    schedules = space.systematic(catalog()) + space.random_schedules(catalog(), 20, seed=1)
    assert schedules
    for schedule in schedules:
        assert Schedule.parse(schedule.text) == schedule
        assert "'" not in schedule.text  # fits in a shell's single quotes
        assert schedule.replay_command.endswith(f"--replay '{schedule.text}'")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            '("snapshot", "base", (("cycle", (("stage:applied", "kill"),)),), (0,))',
            "stage:<name>#<n>",
        ),
        ('("snapshot", "base", (("cycle", (("during:x.Y#1", "kill"),)),), (0,))', "'during'"),
        ('("snapshot", "base", (("cycle", (("stage:applied#1", "stall"),)),), (0,))', "2 time(s)"),
        (
            '("snapshot", "base", (("cycle", (("stage:applied#1", "kill"), '
            '("stage:manifest_written#1", "kill"))),), (0,))',
            "after its kill",
        ),
        ('("server", "base", (("flush", ()),), (0,))', "a flush needs the snapshot sink"),
        ('("snapshot", "base", (("cycle", ()),), (0, 1))', "names actors that do not exist"),
        ('("snapshot", "base", (("cycle", ()),), (0,)', "not a Python literal"),
    ],
)
def test_a_malformed_schedule_names_what_is_wrong(text: str, named: str) -> None:
    with pytest.raises(ScheduleError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Schedule.parse(text)


def test_errors_are_offered_only_where_a_call_of_that_service_follows() -> None:
    triples = list(space.triples(catalog()))
    stops = {
        (s.sink, s.world, str(s.actors[0].stops[0].point), s.actors[0].stops[0].fault)
        for s in triples
    }
    last_s3 = "after:s3.DeleteObjects#1"
    assert (Sink.SNAPSHOT, WorldKind.BASE, last_s3, FaultKind.DYNAMO_ERROR) in stops
    assert (Sink.SNAPSHOT, WorldKind.BASE, last_s3, FaultKind.S3_ERROR) not in stops
    assert (Sink.SERVER, WorldKind.BASE, "stage:applied#1", FaultKind.S3_ERROR) not in stops


def test_competitors_run_while_a_is_stalled_and_a_flush_only_where_something_is_published() -> None:
    triples = list(space.triples(catalog()))
    with_competitor = [s for s in triples if len(s.actors) == 2]
    assert {s.actors[0].stops[0].fault for s in with_competitor} == {FaultKind.STALL}
    flushes = {(s.sink, s.world) for s in with_competitor if s.actors[1].kind is ActorKind.FLUSH}
    assert flushes == {(Sink.SNAPSHOT, WorldKind.BASE)}
    assert all(s.order == (0, 1, 0) for s in with_competitor)


def test_inner_reads_of_a_run_are_left_out_but_writes_never() -> None:
    points = [str(p) for p in catalog().points(Sink.SNAPSHOT, WorldKind.BASE)]
    assert "before:s3.GetObject#2" not in points
    assert {"before:s3.GetObject#1", "before:s3.GetObject#3"} <= set(points)
    assert "before:s3.DeleteObjects#1" in points


def test_the_regression_schedules_stop_where_defects_1_and_2_happened() -> None:
    defect_1, defect_2 = space.REGRESSIONS
    assert defect_1.actors[0].stops[0].point == Point.parse("stage:pointer_file_synced#1")
    assert defect_2.world is WorldKind.EMPTY
    assert defect_2.order == (0, 1, 0, 1, 0, 1)
