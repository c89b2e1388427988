"""A real Chroma server (``chroma run`` of the pinned chromadb) on a free loopback port,
for the server sink in tests, the demo, the reliability suite and the benchmark.

It runs in its own process on its own persist directory, so it can be stopped, killed and
started again on the same port and data — a restart mid-batch, as a real deployment sees
one. Clients reach it through the contract §8 variables (``environment()``).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

START_TIMEOUT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def chroma_executable() -> str:
    """The ``chroma`` console script installed beside this interpreter (the pinned
    chromadb's), else the first one on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.is_file():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError("the chroma command is not installed (pip install chromadb)")
    return found


class LocalChromaServer:
    """``chroma run`` on 127.0.0.1; a context manager. Without ``path`` the data lives in
    a temporary directory removed by ``close()``."""

    def __init__(self, path: Path | None = None, port: int = 0) -> None:
        self._temporary = None if path else tempfile.TemporaryDirectory(prefix="chroma-server-")
        if self._temporary is not None:
            self.path = Path(self._temporary.name) / "data"
        else:
            assert path is not None
            self.path = path
        self.port = port or _free_port()
        self.log_path = self.path.parent / f"{self.path.name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self, database: str | None = None) -> dict[str, str]:
        """The compactor's §8 variables for this server (no token: it has no auth)."""
        values = {"CHROMA_HOST": self.host, "CHROMA_PORT": str(self.port), "CHROMA_SSL": "false"}
        if database is not None:
            values["CHROMA_DATABASE"] = database
        return values

    def start(self) -> Self:
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                chroma_executable(),
                "run",
                "--path",
                str(self.path),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_serving()
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"chroma server exited with code {self._process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"chroma server did not answer on {self.url} within "
                        f"{START_TIMEOUT_SECONDS} s; see {self.log_path}"
                    ) from None
                time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM; SIGKILL with ``kill``, as a crash). Its data stays."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, *, kill: bool = False, down_seconds: float = 0.0) -> None:
        """Stop (or kill) the server, stay down ``down_seconds``, start it again on the
        same port and data."""
        self.stop(kill=kill)
        time.sleep(down_seconds)
        self.start()

    def create_database(self, name: str, tenant: str = "default_tenant") -> None:
        """A database on the server (names: 3-512 of ``[a-zA-Z0-9._-]``), through the
        server's REST API (no chromadb import here: this module loads with the fixtures)."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/tenants/{tenant}/databases",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def close(self) -> None:
        self.stop()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
