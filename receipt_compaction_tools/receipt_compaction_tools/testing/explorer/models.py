"""Schedules and their outcomes: what the explorer runs, and what it found.

A schedule is a printable tuple (``Schedule.text``) that ``Schedule.parse`` reads back, so a
failing schedule can be replayed from one command line::

    ("snapshot", "base",
     (("cycle", (("stage:applied#1", "stall"),)), ("cycle", ())),
     (0, 1, 0))

= sink, world, actors (each a kind and its stops: a point and the fault that happens
there), and the order in which the explorer advances the actors. Advancing an actor starts
it (or resumes it) and lets it run until its next *blocking* stop (a stall or a pause), its
death (a kill) or the end of its cycle; the other faults (failing heartbeats, an S3 or a
DynamoDB error) are armed at their point and the actor runs on.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from receipt_compaction_tools.testing.explorer.exceptions import ScheduleError


class Sink(StrEnum):
    SNAPSHOT = "snapshot"  # published snapshot versions (contract §6)
    SERVER = "server"  # a Chroma server's collection (contract §12)


class WorldKind(StrEnum):
    BASE = "base"  # a version is published before the schedule starts
    EMPTY = "empty"  # no pointer: the first cycle bootstraps the collection


class ActorKind(StrEnum):
    CYCLE = "cycle"  # a CompactionCycle of its own batch, in its own container
    FLUSH = "flush"  # an operator's `snapshot flush` (snapshot sink, published world)


class FaultKind(StrEnum):
    KILL = "kill"  # the process dies: it makes no more AWS calls and never releases
    STALL = "stall"  # every thread freezes past the lease, then carries on
    # The thread making the call pauses (a plan read's: the cycle waits for it at the end of
    # the plan); the heartbeat thread keeps the lease.
    PAUSE = "pause"
    HEARTBEAT_FAILS = "heartbeat_fails"  # every heartbeat from here on errors
    S3_ERROR = "s3_error"  # the next S3 call errors
    DYNAMO_ERROR = "dynamo_error"  # the next DynamoDB call errors

    @property
    def blocking(self) -> bool:
        """Whether the actor waits at the point for the explorer to advance it again."""
        return self in (FaultKind.STALL, FaultKind.PAUSE)


class Where(StrEnum):
    STAGE = "stage"  # the cycle's ``on_stage`` callback
    BEFORE = "before"  # an AWS call about to be sent
    AFTER = "after"  # an AWS call that took effect, before its response is used


@dataclass(frozen=True, order=True)
class Point:
    """``stage:applied#1``, ``before:s3.DeleteObjects#2``, ``after:dynamodb.GetItem#1``:
    the n-th occurrence of a stage or of an AWS call in the actor's cycle."""

    where: Where
    name: str
    occurrence: int = 1

    @classmethod
    def parse(cls, text: str) -> Point:
        where, sep, rest = text.partition(":")
        name, hash_sign, occurrence = rest.rpartition("#")
        if not sep or not hash_sign or not occurrence.isdigit() or not name:
            raise ScheduleError(
                f"point {text!r} is not 'stage:<name>#<n>' or 'before|after:<service>.<op>#<n>'"
            )
        try:
            kind = Where(where)
        except ValueError:
            raise ScheduleError(
                f"point {text!r}: {where!r} is not stage, before or after"
            ) from None
        if kind is not Where.STAGE and "." not in name:
            raise ScheduleError(f"point {text!r}: an AWS call is named <service>.<operation>")
        return cls(kind, name, int(occurrence))

    def __str__(self) -> str:
        return f"{self.where.value}:{self.name}#{self.occurrence}"


@dataclass(frozen=True)
class Stop:
    point: Point
    fault: FaultKind

    def as_tuple(self) -> tuple[str, str]:
        return (str(self.point), self.fault.value)


@dataclass(frozen=True)
class ActorSpec:
    kind: ActorKind
    stops: tuple[Stop, ...] = ()

    @property
    def advances(self) -> int:
        """How many times the order must name this actor: once to start it, once more
        after each blocking stop (nothing runs after a kill)."""
        count = 1
        for stop in self.stops:
            if stop.fault is FaultKind.KILL:
                break
            count += int(stop.fault.blocking)
        return count

    def as_tuple(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.kind.value, tuple(stop.as_tuple() for stop in self.stops))


@dataclass(frozen=True)
class Schedule:
    sink: Sink
    world: WorldKind
    actors: tuple[ActorSpec, ...]
    order: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.actors:
            raise ScheduleError("a schedule needs at least one actor")
        for index, actor in enumerate(self.actors):
            named = self.order.count(index)
            if named != actor.advances:
                raise ScheduleError(
                    f"actor {index} has {actor.advances - 1} blocking stop(s) before any kill, "
                    f"so the order must name it {actor.advances} time(s), not {named}"
                )
            kills = [s for s in actor.stops if s.fault is FaultKind.KILL]
            if kills and actor.stops[-1] is not kills[0]:
                raise ScheduleError(f"actor {index}: nothing can happen after its kill")
            if actor.kind is ActorKind.FLUSH and (
                self.sink is not Sink.SNAPSHOT or self.world is not WorldKind.BASE
            ):
                raise ScheduleError("a flush needs the snapshot sink and a published version")
        if set(self.order) - set(range(len(self.actors))):
            raise ScheduleError(f"order {self.order} names actors that do not exist")
        if self.cycles() > MAX_CYCLE_ACTORS:
            raise ScheduleError(f"at most {MAX_CYCLE_ACTORS} cycle actors (one batch each)")

    def cycles(self) -> int:
        return sum(actor.kind is ActorKind.CYCLE for actor in self.actors)

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.sink.value,
            self.world.value,
            tuple(actor.as_tuple() for actor in self.actors),
            self.order,
        )

    @property
    def text(self) -> str:
        """The tuple, with double-quoted strings (so a shell's single quotes hold it)."""
        return _literal(self.as_tuple())

    @property
    def replay_command(self) -> str:
        return f".venv/bin/python bench/explore.py --replay '{self.text}'"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as error:
            raise ScheduleError(f"schedule is not a Python literal tuple: {error}") from None
        return cls.from_tuple(value)

    @classmethod
    def from_tuple(cls, value: Any) -> Schedule:
        try:
            sink, world, actors, order = value
            specs = tuple(
                ActorSpec(
                    ActorKind(kind),
                    tuple(Stop(Point.parse(point), FaultKind(fault)) for point, fault in stops),
                )
                for kind, stops in actors
            )
            return cls(Sink(sink), WorldKind(world), specs, tuple(int(i) for i in order))
        except ScheduleError:
            raise
        except (TypeError, ValueError) as error:
            raise ScheduleError(
                f"a schedule is (sink, world, ((kind, ((point, fault), ...)), ...), order): {error}"
            ) from None


MAX_CYCLE_ACTORS = 3


def _literal(value: Any) -> str:
    if isinstance(value, tuple):
        inner = ", ".join(_literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@dataclass(frozen=True)
class Violation:
    invariant: str  # I1 … I6; SETTLE: messages never acknowledged; HUNG: an actor never ended
    detail: str


@dataclass
class ScheduleOutcome:
    schedule: Schedule
    seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    # Stops never reached (the actor's cycle took another path): the schedule then tests
    # less than it names, which the report counts.
    unreached: list[str] = field(default_factory=list)
    # Whether retention had something old enough to delete when the final cycle ran (I6
    # then shows that retention is not skipped for ever).
    retention_exercised: bool = False
    notes: list[str] = field(default_factory=list)
    # The points each actor went through in the schedule's own order, before any restart
    # of the settling (how the catalog of points is found).
    reached: dict[str, list[str]] = field(default_factory=dict)
    # How many of its messages each cycle actor reported failed (None: it died or raised).
    failures: dict[str, int | None] = field(default_factory=dict)
    # Why the explorer itself could not run the schedule (a bug of the explorer or its
    # world, never a finding about the product).
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class PublishedOrigin:
    """The base world's first published version (``origin.py`` captures and plants it)."""

    objects: dict[str, bytes]  # every key under <collection>/snapshot/
    items: list[dict[str, Any]]  # every item of the table
    efs: Path  # a copy of the EFS tree
