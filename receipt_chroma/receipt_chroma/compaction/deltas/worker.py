"""The delta reader helper process: ``python -m receipt_chroma.compaction.deltas.worker R W``.

Reads :class:`DeltaReadRequest` objects from file descriptor R and answers each on W with
``(True, records)`` or ``(False, error)`` (``None`` asks whether it is ready: ``(True, [])``),
until R reaches end of input (the compactor closed it, or died).
"""

from __future__ import annotations

import os
import pickle
import sys
from multiprocessing.connection import Connection

from receipt_chroma.compaction.deltas.reader import load_delta
from receipt_chroma.exceptions import DeltaError

# The helper lives on the compactor's idle CPU: Chroma's upsert parallelises its inserts and
# slows down sharply when another runnable process shares its cores.
NICENESS = 19


def serve(requests: Connection, replies: Connection) -> None:
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        try:
            reply: tuple[bool, object] = (True, [] if request is None else load_delta(request))
        except Exception as error:
            if not _picklable(error):
                error = DeltaError(f"{type(error).__name__}: {error}")
            reply = (False, error)
        try:
            replies.send(reply)
        except BrokenPipeError:
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
