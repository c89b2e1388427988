"""A real moto server on 127.0.0.1 for the local pipeline and the integration tests.

Clients reach it through ``AWS_ENDPOINT_URL``, exactly as they would reach AWS.
"""

from __future__ import annotations

import logging
import urllib.request
from types import TracebackType
from typing import Self

from moto.server import ThreadedMotoServer

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class LocalAwsServer:
    """``ThreadedMotoServer`` on a free loopback port, usable as a context manager."""

    def __init__(self, port: int = 0) -> None:
        # werkzeug logs every request at INFO; keep test and demo output readable.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._started = False

    def start(self) -> Self:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

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
