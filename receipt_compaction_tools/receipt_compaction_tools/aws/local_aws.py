"""A real moto server on 127.0.0.1 for the local pipeline and the integration tests.

Clients reach it through ``AWS_ENDPOINT_URL``, exactly as they would reach AWS.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request
from types import TracebackType
from typing import Self

from moto.server import ThreadedMotoServer

from receipt_dynamo.testing import LOCAL_CREDENTIALS

START_TIMEOUT_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalAwsServer:
    """A moto server on a free loopback port, usable as a context manager.

    By default ``ThreadedMotoServer`` in this process; with ``own_process=True`` moto runs
    in a child process, so its request handling does not compete for this process's GIL
    (benchmarks and load tests, where the emulator must cost as little as a remote service).
    """

    def __init__(self, port: int = 0, *, own_process: bool = False) -> None:
        # werkzeug logs every request at INFO; keep test and demo output readable.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._own_process = own_process
        self._port = port or (_free_port() if own_process else 0)
        self._server: ThreadedMotoServer | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        if self._own_process:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "receipt_compaction_tools.aws.moto_server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(self._port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait_until_serving()
        else:
            self._server = ThreadedMotoServer(
                ip_address="127.0.0.1", port=self._port, verbose=False
            )
            self._server.start()
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto server did not answer on {self.endpoint_url} "
                        f"within {START_TIMEOUT_SECONDS} s"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def endpoint_url(self) -> str:
        if self._server is not None:
            host, port = self._server.get_host_and_port()
            return f"http://{host}:{port}"
        return f"http://127.0.0.1:{self._port}"

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 at this server with throw-away credentials."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def reset(self) -> None:
        """Forget every resource (tables, queues, buckets) the server holds."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
