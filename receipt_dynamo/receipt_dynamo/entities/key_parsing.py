"""Reading ids out of an item's ``PK``/``SK`` (the SK is authoritative for ids and labels)."""

from __future__ import annotations

import re

from receipt_dynamo.entities.base import Attributes, req_str
from receipt_dynamo.keys import IMAGE_PK_RE


def parse_key(attributes: Attributes, sk_pattern: re.Pattern[str]) -> tuple[str, tuple[str, ...]]:
    """Return the image id from ``PK`` and the groups of ``SK`` matched by ``sk_pattern``."""
    pk = req_str(attributes, "PK")
    sk = req_str(attributes, "SK")
    pk_match = IMAGE_PK_RE.fullmatch(pk)
    if pk_match is None:
        raise ValueError(f"PK must be IMAGE#<uuid>, got {pk!r}")
    sk_match = sk_pattern.fullmatch(sk)
    if sk_match is None:
        raise ValueError(f"SK does not match {sk_pattern.pattern}, got {sk!r}")
    return pk_match.group(1), sk_match.groups()
