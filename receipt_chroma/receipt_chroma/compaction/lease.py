"""LockManager: the collection lease of contract §7, kept alive by a heartbeat thread.

The holder treats the lease as lost when a heartbeat is refused, after
``max_failures`` heartbeat errors in a row, or once local time passes its **deadline**: the
last confirmed expiry minus the safety margin (``LEASE_SAFETY_MARGIN_SECONDS``, contract §7
rev 3). ``ensure_held()`` is called before publishing; the publish transaction checks owner
and fencing token again, so a paused holder cannot publish. ``confirm()`` is the heartbeat
that must succeed before snapshot data is deleted (§6 rev 3): it returns the deadline by
which every delete call must have ended.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import CompactionLock
from receipt_dynamo.exceptions import LeaseHeldError, LeaseLostError
from receipt_dynamo.timestamps import parse_iso
from receipt_dynamo_stream import compactor_defaults as defaults

# The heartbeat thread's name starts with it (benchmarks tell its calls from the cycle's).
HEARTBEAT_THREAD_PREFIX = "lease-"

_LOGGER = logging.getLogger(__name__)


class LockManager:
    def __init__(
        self,
        dynamo: DynamoClient,
        collection: ChromaDBCollection | str,
        *,
        duration_seconds: float = 180,
        heartbeat_interval_seconds: float = 30,
        max_heartbeat_failures: int = 3,
        wait_seconds: float = 60,
        backoff_seconds: tuple[float, float] = (1.0, 5.0),
        safety_margin_seconds: float = defaults.LEASE_SAFETY_MARGIN_SECONDS,
        owner: str | None = None,
        on_wait: Callable[[LeaseHeldError], None] | None = None,
    ) -> None:
        self.dynamo = dynamo
        self.on_wait = on_wait  # told once, when acquire starts waiting for a holder
        self.collection = ChromaDBCollection(collection)
        self.duration = duration_seconds
        self.heartbeat_interval = heartbeat_interval_seconds
        self.max_failures = max_heartbeat_failures
        self.wait_seconds = wait_seconds
        self.backoff = backoff_seconds
        # Never more than a quarter of the lease: a short lease keeps most of its time.
        self.margin = timedelta(seconds=min(safety_margin_seconds, duration_seconds / 4))
        self.owner = owner or str(uuid.uuid4())
        self.fencing_token: int | None = None
        self.waited_seconds = 0.0
        self.acquired_at: float | None = None
        self._confirmed_expiry: datetime | None = None
        self._lost_reason: str | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- acquisition --------------------------------------------------------------------

    def acquire(self) -> CompactionLock:
        """Take the lease, waiting with jittered backoff while another holder has it."""
        started = time.monotonic()
        told = False
        while True:
            pointer = self.dynamo.get_snapshot_pointer(self.collection)
            try:
                lock = self.dynamo.acquire_lease(
                    self.collection,
                    owner=self.owner,
                    duration_seconds=self.duration,
                    pointer_token=pointer.fencing_token if pointer else 0,
                )
                break
            except LeaseHeldError as held:
                elapsed = time.monotonic() - started
                if self.on_wait is not None and not told and elapsed < self.wait_seconds:
                    self.on_wait(held)
                    told = True
                if elapsed >= self.wait_seconds:
                    self.waited_seconds = elapsed
                    raise
                delay = random.uniform(*self.backoff)
                time.sleep(min(delay, max(0.0, self.wait_seconds - elapsed)))
        self.waited_seconds = time.monotonic() - started
        self.acquired_at = time.monotonic()
        self.fencing_token = lock.fencing_token
        self._confirmed_expiry = parse_iso(lock.expires)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._heartbeat_loop,
            name=f"{HEARTBEAT_THREAD_PREFIX}{self.collection.value}",
            daemon=True,
        )
        self._thread.start()
        return lock

    # --- heartbeat ----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            if self._lost_reason is not None:
                return
            self.heartbeat()

    def _renew(self) -> None:
        """One heartbeat call; a refusal marks the lease lost and raises LeaseLostError."""
        try:
            lock = self.dynamo.heartbeat_lease(
                self.collection,
                owner=self.owner,
                fencing_token=self.token,
                duration_seconds=self.duration,
            )
        except LeaseLostError as error:
            self._lost_reason = str(error)
            _LOGGER.error("lease lost", extra={"collection": self.collection.value})
            raise
        self._confirmed_expiry = parse_iso(lock.expires)

    def heartbeat(self) -> None:
        """Extend the lease once; refusals and repeated errors mark it lost."""
        try:
            self._renew()
        except LeaseLostError:
            return
        except Exception as error:
            self._failures += 1
            _LOGGER.warning(
                "lease heartbeat failed",
                extra={
                    "collection": self.collection.value,
                    "error": str(error),
                    "failures": self._failures,
                },
            )
            if self._failures >= self.max_failures:
                self._lost_reason = f"{self._failures} heartbeats failed; last: {error}"
            return
        self._failures = 0

    # --- state --------------------------------------------------------------------------

    @property
    def deadline(self) -> datetime | None:
        """The last confirmed expiry minus the safety margin; None when never acquired."""
        if self._confirmed_expiry is None:
            return None
        return self._confirmed_expiry - self.margin

    @property
    def lost_reason(self) -> str | None:
        if self._lost_reason is not None:
            return self._lost_reason
        deadline = self.deadline
        if deadline is not None and datetime.now(UTC) >= deadline:
            return f"lease deadline {deadline.isoformat()} passed (no confirmed renewal)"
        return None

    def confirm(self) -> datetime:
        """A heartbeat that must succeed now; returns the new deadline.

        Raises LeaseLostError when the lease is lost, or when it cannot be confirmed (the
        heartbeat call failed): a holder that cannot prove it holds the lease must not
        delete anything.
        """
        self.ensure_held()
        try:
            self._renew()
        except LeaseLostError:
            raise
        except Exception as error:  # unconfirmable: the holder must not delete
            raise LeaseLostError(
                f"lease on {self.collection.value} could not be confirmed: "
                f"{type(error).__name__}: {error}"
            ) from error
        self.ensure_held()
        deadline = self.deadline
        if deadline is None:  # _renew() has just confirmed an expiry
            raise LeaseLostError(f"lease on {self.collection.value} has no confirmed expiry")
        return deadline

    def ensure_held(self) -> None:
        reason = self.lost_reason
        if reason is not None:
            raise LeaseLostError(f"lease on {self.collection.value} lost: {reason}")

    @property
    def token(self) -> int:
        """The fencing token of the current acquisition."""
        if self.fencing_token is None:
            raise LeaseLostError(f"lease on {self.collection.value} is not held")
        return self.fencing_token

    @property
    def held_seconds(self) -> float:
        return 0.0 if self.acquired_at is None else time.monotonic() - self.acquired_at

    def release(self) -> None:
        """Stop the heartbeat and give the lease up (a lost lease needs no release)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.fencing_token is None:
            return
        try:
            self.dynamo.release_lease(self.collection, owner=self.owner)
        except LeaseLostError:
            _LOGGER.info(
                "lease was already taken over", extra={"collection": self.collection.value}
            )
        finally:
            self.fencing_token = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
