"""Independent reads of a cycle run a few at a time: the plan's row reads (one query per
receipt) and the apply's record reads (one ``get`` per receipt). Each read is a round trip
or a call that spends its time outside the interpreter, and none depends on another, so a
small pool hides most of their latency (docs/architecture.md, "Reads four at a time")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# Reads in flight at once. More did no better against the moto server (it answers one
# request at a time) nor against chromadb on two cores.
READ_CONCURRENCY = 4


def read_concurrently(
    read: Callable[[Item], Outcome], items: Sequence[Item], *, thread_name_prefix: str
) -> list[Outcome]:
    """``read`` of every item, in the items' order, ``READ_CONCURRENCY`` at a time. A
    single item is read on the calling thread. ``read`` reports its own errors: one that
    raises ends the whole call."""
    if len(items) <= 1:
        return [read(item) for item in items]
    workers = min(READ_CONCURRENCY, len(items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix) as pool:
        return list(pool.map(read, items))
