"""The Chroma server as the sink (contract §8, §12): its settings and how to connect.

``CHROMA_HOST``, ``CHROMA_PORT``, ``CHROMA_SSL``, ``CHROMA_TENANT`` and ``CHROMA_DATABASE``
say where the server is; ``CHROMA_AUTH_TOKEN_SECRET`` names the Secrets Manager secret
holding its token — the token itself is never an environment variable. The secret is read
once per container (process) and kept; when the server (or a gateway in front of it)
refuses the token — any 401/403, Chroma's JSON error or a plain page — it is read again
once, so a rotated token is picked up without a restart. The token travels in the
``X-Chroma-Token`` header, the one Chroma Cloud and Chroma's own token authentication read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from chromadb.errors import ChromaError

from receipt_chroma.chroma_client import ChromaClient, Mode
from receipt_chroma.chroma_http import HttpOptions, RetryPolicy, server_url
from receipt_chroma.exceptions import CredentialsRefusedError, SinkUnavailableError
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo_stream import compactor_defaults as defaults

if TYPE_CHECKING:
    from types_boto3_secretsmanager.client import SecretsManagerClient

TOKEN_HEADER = "X-Chroma-Token"

# The token of each secret, read once per process (contract §12: cached per container).
_tokens: dict[str, str] = {}
_tokens_lock = threading.Lock()


def read_token(
    secret: str, *, refresh: bool = False, client: SecretsManagerClient | None = None
) -> str:
    """The server token held by the Secrets Manager secret ``secret`` (name or ARN), read
    once per process unless ``refresh``. A secret that cannot be read makes the server
    unusable: ``SinkUnavailableError`` naming the secret (never the value)."""
    with _tokens_lock:
        if not refresh and secret in _tokens:
            return _tokens[secret]
    try:
        secrets = client or aws_client("secretsmanager")
        value = secrets.get_secret_value(SecretId=secret).get("SecretString", "")
    except (ClientError, BotoCoreError) as error:
        raise SinkUnavailableError(
            f"cannot read the Chroma token from Secrets Manager secret {secret!r}: {error}"
        ) from error
    token = value.strip()
    if not token:
        raise SinkUnavailableError(
            f"Secrets Manager secret {secret!r} holds no token (an empty SecretString)"
        )
    with _tokens_lock:
        _tokens[secret] = token
    return token


def forget_tokens() -> None:
    """Drop every cached token (the next connection reads its secret again)."""
    with _tokens_lock:
        _tokens.clear()


@dataclass(frozen=True)
class ChromaServer:
    """Where the server sink writes: a self-hosted ``chroma run``, a cluster or Chroma Cloud."""

    host: str
    port: int = defaults.CHROMA_PORT
    ssl: bool = defaults.CHROMA_SSL
    tenant: str = defaults.CHROMA_TENANT
    database: str = defaults.CHROMA_DATABASE
    auth_token_secret: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout_seconds: float = defaults.CHROMA_CONNECT_TIMEOUT_SECONDS
    request_timeout_seconds: float = defaults.CHROMA_REQUEST_TIMEOUT_SECONDS

    @property
    def url(self) -> str:
        return server_url(self.host, self.port, self.ssl)

    def describe(self) -> str:
        """Where, for logs and errors (never the token)."""
        return f"{self.url} (tenant {self.tenant}, database {self.database})"

    def within(self, budget_seconds: float) -> ChromaServer:
        """The same server with every call bounded by ``budget_seconds`` (at least 2 s):
        each attempt's connect and answer timeouts share 70 % of it and no retry starts
        that could end past 90 % of it (the CLI's ``--timeout``)."""
        if not budget_seconds >= 2:
            raise ValueError(f"the budget must be at least 2 seconds, got {budget_seconds!r}")
        attempt = budget_seconds * 0.7
        return replace(
            self,
            connect_timeout_seconds=min(self.connect_timeout_seconds, round(attempt * 0.3, 2)),
            request_timeout_seconds=min(self.request_timeout_seconds, round(attempt * 0.7, 2)),
            retry=replace(self.retry, deadline_seconds=budget_seconds * 0.9),
        )

    def options(self, token: str | None) -> HttpOptions:
        return HttpOptions(
            ssl=self.ssl,
            tenant=self.tenant,
            database=self.database,
            headers={TOKEN_HEADER: token} if token else {},
            connect_timeout_seconds=self.connect_timeout_seconds,
            request_timeout_seconds=self.request_timeout_seconds,
            retry=self.retry,
        )

    def connect(
        self,
        *,
        mode: Mode = "write",
        write_guard: Callable[[], None] | None = None,
        secrets_client: SecretsManagerClient | None = None,
    ) -> ChromaClient:
        """A client of the server's database. Raises ``SinkUnavailableError`` when the
        server cannot be reached, refuses the token (read afresh once first) or the tenant
        or database, or when the token cannot be read."""
        refreshed = False
        while True:
            token = (
                read_token(self.auth_token_secret, refresh=refreshed, client=secrets_client)
                if self.auth_token_secret
                else None
            )
            try:
                return ChromaClient(
                    http_host=self.host,
                    http_port=self.port,
                    mode=mode,
                    http=self.options(token),
                    write_guard=write_guard,
                )
            except CredentialsRefusedError as error:
                if self.auth_token_secret and not refreshed:
                    refreshed = True  # the token may have been rotated since it was read
                    continue
                secret = (
                    f"the token of secret {self.auth_token_secret!r} (read again)"
                    if self.auth_token_secret
                    else "no token (CHROMA_AUTH_TOKEN_SECRET is not set)"
                )
                raise CredentialsRefusedError(f"{error}; sent {secret}") from error
            except (ChromaError, ValueError) as error:
                # ValueError: chromadb's words for a server it cannot reach while building a
                # client; a ChromaError here refuses the tenant or database. Either way no
                # message of the cycle can be applied until an operator acts.
                raise SinkUnavailableError(
                    f"Chroma server {self.describe()} cannot be used: "
                    f"{type(error).__name__}: {error}"
                ) from error
