"""A systematic, deterministic explorer of interleavings of compactors (issue 21).

It drives the real ``CompactionCycle`` (and an operator's ``snapshot flush``) against a moto
server and real Chroma, stops each compactor at a stage boundary or inside an AWS call,
makes something happen there (killed, stalled past its lease, paused, heartbeats failing,
an S3 or DynamoDB error), lets competitors run meanwhile, then lets the system settle and
checks the invariants I1-I6 with an oracle built from the contract alone.
"""

from receipt_compaction_tools.testing.explorer.exceptions import (
    DiscoveryError,
    Killed,
    ScheduleError,
)
from receipt_compaction_tools.testing.explorer.models import (
    ActorKind,
    ActorSpec,
    FaultKind,
    Point,
    Schedule,
    ScheduleOutcome,
    Sink,
    Stop,
    Violation,
    Where,
    WorldKind,
)
from receipt_compaction_tools.testing.explorer.pool import Explorer
from receipt_compaction_tools.testing.explorer.runner import run_schedule
from receipt_compaction_tools.testing.explorer.world import Services, Timing

__all__ = [
    "ActorKind",
    "ActorSpec",
    "DiscoveryError",
    "Explorer",
    "FaultKind",
    "Killed",
    "Point",
    "Schedule",
    "ScheduleError",
    "ScheduleOutcome",
    "Services",
    "Sink",
    "Stop",
    "Timing",
    "Violation",
    "Where",
    "WorldKind",
    "run_schedule",
]
