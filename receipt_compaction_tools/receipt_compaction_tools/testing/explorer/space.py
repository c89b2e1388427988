"""Which schedules the explorer runs.

- *Triples* (two compactors): every point of A (from a clean run: its stage boundaries, and
  before/after each AWS call of its scope) x every fault that applies there x every
  competitor B that applies while A is stalled (nothing, a full cycle — a bootstrap in the
  empty world —, or a ``snapshot flush`` when something is published). A killed A is
  followed by its restart (while the system settles); the other faults leave A running.
  Consecutive reads of one kind (retention reading retained manifests one by one) are
  interchangeable: the first and the last of such a run stand for the others.
- *B interrupted while A resumes*: A stalls at a stage, B runs and pauses at a stage, A
  resumes and finishes, then B.
- *Bootstrap races* (empty world, snapshot sink): A stalls at a stage before its swap and
  pauses at a later one; B pauses twice; they alternate — every way two first publishes
  can overlap at stage granularity.
- *Random* schedules of three compactors (seeded): each a cycle (or a flush), up to two
  stops each with any fault, advanced in a random order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from receipt_chroma.stages import Stage
from receipt_compaction_tools.testing.explorer.models import (
    ActorKind,
    ActorSpec,
    FaultKind,
    Point,
    Schedule,
    Sink,
    Stop,
    Where,
    WorldKind,
)

SOLO_FAULTS = (FaultKind.HEARTBEAT_FAILS, FaultKind.S3_ERROR, FaultKind.DYNAMO_ERROR)
_ERROR_SERVICE = {FaultKind.S3_ERROR: "s3", FaultKind.DYNAMO_ERROR: "dynamodb"}


@dataclass
class Catalog:
    """The points of a clean cycle per (sink, world), and of a clean flush."""

    cycle: dict[tuple[Sink, WorldKind], tuple[Point, ...]] = field(default_factory=dict)
    flush: tuple[Point, ...] = ()
    # The stage points reached before the pointer swap, per world (snapshot sink).
    before_swap: dict[WorldKind, tuple[Point, ...]] = field(default_factory=dict)

    def points(self, sink: Sink, world: WorldKind) -> tuple[Point, ...]:
        return self.cycle[(sink, world)]


def discovery_schedules(sinks: Sequence[Sink] = tuple(Sink)) -> list[Schedule]:
    """Clean runs whose reached points make the catalog."""
    schedules = [
        Schedule(sink, world, (ActorSpec(ActorKind.CYCLE),), (0,))
        for sink in sinks
        for world in WorldKind
    ]
    if Sink.SNAPSHOT in sinks:
        schedules.append(
            Schedule(Sink.SNAPSHOT, WorldKind.BASE, (ActorSpec(ActorKind.FLUSH),), (0,))
        )
    return schedules


READS = ("Get", "Head", "List", "Query", "Scan", "Describe")


def _is_read(point: Point) -> bool:
    return point.where is not Where.STAGE and point.name.split(".")[1].startswith(READS)


def without_inner_reads(points: Sequence[Point]) -> tuple[Point, ...]:
    """Drop the calls strictly inside a run of consecutive reads of one operation."""
    calls = [p for p in points if p.where is Where.BEFORE]
    inner: set[tuple[str, int]] = set()
    for previous, call, following in zip(calls, calls[1:], calls[2:], strict=False):
        same = previous.name == call.name == following.name
        adjacent = points.index(following) - points.index(previous) == 4  # before/after each
        if same and adjacent and _is_read(call):
            inner.add((call.name, call.occurrence))
    return tuple(p for p in points if (p.name, p.occurrence) not in inner or p.where is Where.STAGE)


def catalog_from(reached: dict[Schedule, list[str]]) -> Catalog:
    catalog = Catalog()
    for schedule, points in reached.items():
        parsed = without_inner_reads(tuple(dict.fromkeys(Point.parse(p) for p in points)))
        if schedule.actors[0].kind is ActorKind.FLUSH:
            catalog.flush = parsed
            continue
        catalog.cycle[(schedule.sink, schedule.world)] = parsed
        if schedule.sink is Sink.SNAPSHOT:
            # The plan writes run rows only, never S3 or the pointer: for two first
            # publishes, a stop there is a stop at the open before it (and each stage here
            # squares the number of races).
            catalog.before_swap[schedule.world] = tuple(
                p
                for p in points_before_swap(parsed)
                if p.where is Where.STAGE and p.name != Stage.PLAN.value
            )
    return catalog


def points_before_swap(points: Sequence[Point]) -> list[Point]:
    found = []
    for point in points:
        if point.where is Where.BEFORE and point.name == "dynamodb.TransactWriteItems":
            break
        found.append(point)
    return found


def _applies(fault: FaultKind, points: Sequence[Point], index: int) -> bool:
    """An S3 or DynamoDB error needs a call of that service at or after the point."""
    service = _ERROR_SERVICE.get(fault)
    if service is None:
        return True
    later = points[index:] if points[index].where is Where.BEFORE else points[index + 1 :]
    return any(p.where is Where.BEFORE and p.name.startswith(f"{service}.") for p in later)


def competitors(sink: Sink, world: WorldKind) -> list[ActorKind | None]:
    kinds: list[ActorKind | None] = [None, ActorKind.CYCLE]
    if sink is Sink.SNAPSHOT and world is WorldKind.BASE:
        kinds.append(ActorKind.FLUSH)
    return kinds


def _solo(sink: Sink, world: WorldKind, stop: Stop) -> Schedule:
    order = (0, 0) if stop.fault.blocking else (0,)
    return Schedule(sink, world, (ActorSpec(ActorKind.CYCLE, (stop,)),), order)


def _against(sink: Sink, world: WorldKind, stop: Stop, competitor: ActorKind) -> Schedule:
    actors = (ActorSpec(ActorKind.CYCLE, (stop,)), ActorSpec(competitor))
    order = (0, 1, 0) if stop.fault.blocking else (0, 1)
    return Schedule(sink, world, actors, order)


def triples(catalog: Catalog) -> Iterator[Schedule]:
    for (sink, world), points in sorted(catalog.cycle.items()):
        for index, point in enumerate(points):
            for fault in (FaultKind.KILL, FaultKind.STALL, *SOLO_FAULTS):
                if not _applies(fault, points, index):
                    continue
                stop = Stop(point, fault)
                if fault is not FaultKind.STALL:
                    yield _solo(sink, world, stop)
                    continue
                for competitor in competitors(sink, world):
                    if competitor is None:
                        yield _solo(sink, world, stop)
                    else:
                        yield _against(sink, world, stop, competitor)


def interrupted_competitors(catalog: Catalog) -> Iterator[Schedule]:
    for (sink, world), points in sorted(catalog.cycle.items()):
        stages = [p for p in points if p.where is Where.STAGE]
        for first in stages:
            for second in stages:
                actors = (
                    ActorSpec(ActorKind.CYCLE, (Stop(first, FaultKind.STALL),)),
                    ActorSpec(ActorKind.CYCLE, (Stop(second, FaultKind.PAUSE),)),
                )
                yield Schedule(sink, world, actors, (0, 1, 0, 1))


def _pairs(points: Sequence[Point]) -> Iterator[tuple[Point, Point]]:
    for i, first in enumerate(points):
        for second in points[i + 1 :]:
            yield first, second


def bootstrap_races(catalog: Catalog) -> Iterator[Schedule]:
    stages = catalog.before_swap.get(WorldKind.EMPTY, ())
    for a_stall, a_pause in _pairs(stages):
        for b_first, b_second in _pairs(stages):
            actors = (
                ActorSpec(
                    ActorKind.CYCLE,
                    (Stop(a_stall, FaultKind.STALL), Stop(a_pause, FaultKind.PAUSE)),
                ),
                ActorSpec(
                    ActorKind.CYCLE,
                    (Stop(b_first, FaultKind.PAUSE), Stop(b_second, FaultKind.PAUSE)),
                ),
            )
            yield Schedule(Sink.SNAPSHOT, WorldKind.EMPTY, actors, (0, 1, 0, 1, 0, 1))


def systematic(catalog: Catalog) -> list[Schedule]:
    return list(
        dict.fromkeys(
            [*triples(catalog), *interrupted_competitors(catalog), *bootstrap_races(catalog)]
        )
    )


def random_schedules(catalog: Catalog, count: int, seed: int) -> list[Schedule]:
    """``count`` three-compactor schedules from ``random.Random(seed)``."""
    rng = random.Random(seed)
    worlds = sorted(catalog.cycle)
    schedules: list[Schedule] = []
    while len(schedules) < count:
        sink, world = rng.choice(worlds)
        actors = tuple(_random_actor(rng, catalog, sink, world, index) for index in range(3))
        order = [index for index, actor in enumerate(actors) for _ in range(actor.advances)]
        rng.shuffle(order)
        # An actor's first appearance starts it; any order of appearances is a schedule.
        schedules.append(Schedule(sink, world, actors, tuple(order)))
    return schedules


def _random_actor(
    rng: random.Random, catalog: Catalog, sink: Sink, world: WorldKind, index: int
) -> ActorSpec:
    flush_allowed = index > 0 and sink is Sink.SNAPSHOT and world is WorldKind.BASE
    kind = ActorKind.FLUSH if flush_allowed and rng.random() < 0.25 else ActorKind.CYCLE
    points = catalog.flush if kind is ActorKind.FLUSH else catalog.points(sink, world)
    chosen = sorted(rng.sample(range(len(points)), k=min(len(points), rng.choice((0, 1, 1, 2)))))
    stops = []
    for position in chosen:
        fault = rng.choice(list(FaultKind))
        stops.append(Stop(points[position], fault))
        if fault is FaultKind.KILL:
            break
    return ActorSpec(kind, tuple(stops))


# The schedules that found defects 1 and 2 of issue 21 on the commit before their fixes.
DEFECT_1 = Schedule.parse(
    '("snapshot", "base", (("cycle", (("stage:pointer_file_synced#1", "stall"),)), '
    '("cycle", ())), (0, 1, 0))'
)
DEFECT_2 = Schedule.parse(
    '("snapshot", "empty", (("cycle", (("stage:applied#1", "stall"), '
    '("stage:manifest_written#1", "pause"))), ("cycle", (("stage:checked#1", "pause"), '
    '("stage:objects_uploaded#1", "pause")))), (0, 1, 0, 1, 0, 1))'
)
REGRESSIONS = (DEFECT_1, DEFECT_2)


def missing_points(schedule: Schedule, catalog: Catalog) -> list[str]:
    """The stops of ``schedule`` that a clean cycle no longer reaches (a renamed stage)."""
    known = set(catalog.points(schedule.sink, schedule.world))
    return [
        str(stop.point)
        for actor in schedule.actors
        for stop in actor.stops
        if stop.point not in known
    ]


def sample(catalog: Catalog, size: int, seed: int) -> list[Schedule]:
    """What ``make test`` runs: the regression schedules, a fixed spread over the
    systematic ones (every k-th) and a few random ones."""
    randoms = random_schedules(catalog, max(2, size // 10), seed)
    every = [s for s in systematic(catalog) if s not in REGRESSIONS]
    room = size - len(REGRESSIONS) - len(randoms)
    step = max(1, len(every) // room)
    return [*REGRESSIONS, *every[::step][:room], *randoms]
