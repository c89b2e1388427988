"""Throw-away AWS credentials for moto (tests and the local pipeline): valid nowhere, so
nothing that uses them can reach real AWS."""

from __future__ import annotations

from typing import Final

LOCAL_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
