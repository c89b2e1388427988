"""Where the compactor writes (contract §12), as the stack configures it: the snapshot
(EFS + S3, the default), a Chroma server, or both while migrating.

A server is reached on the internet (Chroma Cloud, a public endpoint: no VPC needed) or
privately (``chromaServerPrivate``: the compactor runs in the stack's VPC and reaches the
server within its range). Its token lives in one Secrets Manager secret — an existing one
(``chromaAuthTokenSecretArn``) or one the stack creates, whose value the operator puts —
and the compactor may read that secret and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from chromadb_compaction import settings
from receipt_dynamo_stream.compactor_defaults import SinkKind


@dataclass(frozen=True)
class ChromaSinkConfig:
    kind: str = settings.CHROMA_SINK
    host: str = ""
    port: int = settings.CHROMA_PORT
    ssl: bool = False
    tenant: str = settings.CHROMA_TENANT
    database: str = settings.CHROMA_DATABASE
    token_secret_arn: str = ""  # empty: the stack creates the secret
    private: bool = False  # the server is reached inside the VPC

    def __post_init__(self) -> None:
        if self.kind not in settings.CHROMA_SINKS:
            choices = "|".join(settings.CHROMA_SINKS)
            raise ValueError(f"chromaSink must be {choices}, got {self.kind!r}")
        if self.server and not self.host:
            raise ValueError(f"chromaSink {self.kind} needs chromaHost")
        if not 0 < self.port < 65536:
            raise ValueError(f"chromaPort must be a port number, got {self.port}")

    @classmethod
    def from_stack(cls, config: pulumi.Config) -> ChromaSinkConfig:
        return cls(
            kind=config.get("chromaSink") or settings.CHROMA_SINK,
            host=config.get("chromaHost") or "",
            port=config.get_int("chromaPort") or settings.CHROMA_PORT,
            ssl=bool(config.get_bool("chromaSsl")),
            tenant=config.get("chromaTenant") or settings.CHROMA_TENANT,
            database=config.get("chromaDatabase") or settings.CHROMA_DATABASE,
            token_secret_arn=config.get("chromaAuthTokenSecretArn") or "",
            private=bool(config.get_bool("chromaServerPrivate")),
        )

    @property
    def snapshot(self) -> bool:
        """Snapshots are written (EFS and the VPC it needs)."""
        return self.kind in (SinkKind.SNAPSHOT, SinkKind.BOTH)

    @property
    def server(self) -> bool:
        """A Chroma server is written (its settings and token secret)."""
        return self.kind in (SinkKind.SERVER, SinkKind.BOTH)

    @property
    def in_vpc(self) -> bool:
        return self.snapshot or (self.server and self.private)

    def environment(
        self, token_secret: pulumi.Input[str] | None
    ) -> Mapping[str, pulumi.Input[str]]:
        """The compactor's contract §8 variables for the sink (the token stays in the
        secret; the function gets the secret's ARN)."""
        values: dict[str, pulumi.Input[str]] = {"CHROMA_SINK": self.kind}
        if self.server:
            values.update(
                CHROMA_HOST=self.host,
                CHROMA_PORT=str(self.port),
                CHROMA_SSL="true" if self.ssl else "false",
                CHROMA_TENANT=self.tenant,
                CHROMA_DATABASE=self.database,
            )
            if token_secret is not None:
                values["CHROMA_AUTH_TOKEN_SECRET"] = token_secret
        return values
