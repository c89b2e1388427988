"""The delta reader helper process: ``python -m receipt_chroma.compaction.deltas.worker R W``.

Reads :class:`DeltaReadRequest` objects from file descriptor R and answers each on W with
``(True, records)`` or ``(False, error)`` (``None`` asks whether it is ready: ``(True, [])``),
until R reaches end of input (the compactor closed it, or died).
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading
from multiprocessing.connection import Connection

from receipt_chroma.compaction.deltas.reader import DeltaReadRequest, load_delta
from receipt_chroma.exceptions import DeltaError

# The helper lives on the compactor's idle CPU: Chroma's upsert parallelises its inserts and
# slows down sharply when another runnable process shares its cores.
NICENESS = 19


def serve(requests: Connection, replies: Connection) -> None:
    """Answer every request in order. Answers are sent by a thread of their own: the
    compactor takes an answer only between its upserts (which hold its GIL), and
    meanwhile this process reads the deltas queued behind it."""
    outbox: queue.SimpleQueue[tuple[bool, object] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_replies, args=(outbox, replies), daemon=True)
    sender.start()
    try:
        while True:
            try:
                request = requests.recv()
            except EOFError:
                return
            outbox.put(_answer(request))
    finally:
        outbox.put(None)
        sender.join()


def _answer(request: DeltaReadRequest | None) -> tuple[bool, object]:
    try:
        return (True, [] if request is None else load_delta(request))
    except Exception as error:
        if not _picklable(error):
            error = DeltaError(f"{type(error).__name__}: {error}")
        return (False, error)


def _send_replies(
    outbox: queue.SimpleQueue[tuple[bool, object] | None], replies: Connection
) -> None:
    while (reply := outbox.get()) is not None:
        try:
            replies.send(reply)
        except OSError:  # the compactor closed its end (or died): nothing more to answer
            return


def _picklable(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


def main(argv: list[str]) -> int:
    read_fd, write_fd = (int(arg) for arg in argv)
    os.nice(NICENESS)
    serve(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
