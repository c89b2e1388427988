"""Endpoints that fail the way networks do, on 127.0.0.1: one that accepts connections and
never answers (a stalled service, a hung proxy) and one that refuses them (nothing
listening). Tests of bounded waits point clients at them."""

from __future__ import annotations

import contextlib
import socket
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class _Endpoint:
    """A socket on 127.0.0.1 that tests point clients at; closed on ``close`` or on leaving
    a ``with`` block."""

    def __init__(self, bound: socket.socket) -> None:
        self._socket = bound

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _ListeningEndpoint(_Endpoint, ABC):
    """Accepts every connection in a background thread and hands it to ``_serve``."""

    def __init__(self, name: str) -> None:
        super().__init__(socket.create_server(("127.0.0.1", 0), backlog=64))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:  # the listener was closed
                return
            self._serve(connection)

    @abstractmethod
    def _serve(self, connection: socket.socket) -> None:
        """Take one accepted connection (each endpoint fails in its own way)."""

    def close(self) -> None:
        self._closed.set()
        # On Linux, closing a listener does not wake a thread blocked in accept() (the join
        # then waited its full 5 s); shutting it down does. Where a listener cannot be shut
        # down, close alone wakes accept().
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        super().close()
        self._thread.join(timeout=5)


class SilentEndpoint(_ListeningEndpoint):
    """A listening socket that accepts every connection, reads nothing and never answers;
    the connections stay open until ``close``."""

    def __init__(self) -> None:
        self._accepted: list[socket.socket] = []
        super().__init__("silent-endpoint")

    def _serve(self, connection: socket.socket) -> None:
        self._accepted.append(connection)

    def close(self) -> None:
        super().close()
        for connection in self._accepted:
            connection.close()


class RefusedEndpoint(_Endpoint):
    """A port held bound but not listening: every connection is refused at once, and no
    other process can start listening on it while the endpoint is open."""

    def __init__(self) -> None:
        bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        bound.bind(("127.0.0.1", 0))
        super().__init__(bound)


class TricklingEndpoint(_ListeningEndpoint):
    """An HTTP endpoint that answers every request with a status line and headers at once,
    then one byte of a long body every ``interval`` seconds: each read returns in time, so
    only a bound on the whole command ends the wait."""

    def __init__(self, interval: float = 0.5) -> None:
        self._interval = interval
        super().__init__("trickling-endpoint")

    def _serve(self, connection: socket.socket) -> None:
        threading.Thread(
            target=self._trickle, args=(connection,), name="trickle", daemon=True
        ).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                    b"Content-Length: 1000000\r\n\r\n"
                )
                while not self._closed.wait(self._interval):
                    connection.sendall(b" ")
            except OSError:  # the client gave up
                return
