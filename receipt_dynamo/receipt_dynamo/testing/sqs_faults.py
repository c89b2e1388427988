"""Real SQS faults for tests, injected through botocore's event hooks (no patching).

moto never reports per-entry failures, so this hook makes ``SendMessageBatch`` behave as
SQS does under partial failure: chosen entries are withheld from the request (they are
not delivered) and reported back as ``Failed``; or the whole batch is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

EVENT_PARAMS = "before-parameter-build.sqs.SendMessageBatch"
EVENT_CALL = "before-call.sqs.SendMessageBatch"
EVENT_RESPONSE = "after-call.sqs.SendMessageBatch"


@dataclass
class SqsBatchFaults:
    """Fails entries whose body satisfies ``fails`` for their first ``times`` attempts.

    ``times=None`` fails them forever. With ``refuse_batches`` > 0 that many whole
    ``SendMessageBatch`` calls are refused first (a ``ClientError``).
    """

    fails: Callable[[str], bool] = lambda body: False
    times: int | None = None
    refuse_batches: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    withheld: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    _nothing_to_send: bool = False

    def install(self, events: Any) -> None:
        """Register on a client's ``meta.events`` or a botocore session's emitter."""
        events.register(EVENT_PARAMS, self._before)
        events.register(EVENT_CALL, self._short_circuit)
        events.register(EVENT_RESPONSE, self._after)

    def _should_fail(self, body: str) -> bool:
        if not self.fails(body):
            return False
        seen = self.attempts.get(body, 0)
        self.attempts[body] = seen + 1
        return self.times is None or seen < self.times

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        if self.refuse_batches > 0:
            self.refuse_batches -= 1
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "injected refusal"}},
                "SendMessageBatch",
            )
        kept = []
        for entry in params.get("Entries", []):
            if self._should_fail(entry["MessageBody"]):
                self.withheld.append(entry)
            else:
                kept.append(entry)
        params["Entries"] = kept
        self._nothing_to_send = not kept

    def _short_circuit(self, **_: Any) -> Any:
        """When every entry was withheld, answer without calling SQS (it rejects empty batches)."""
        if self._nothing_to_send:
            return AWSResponse("", 200, HTTPHeaders(), None), {"Successful": []}
        return None

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        withheld, self.withheld = self.withheld, []
        parsed.setdefault("Failed", [])
        for entry in withheld:
            parsed["Failed"].append(
                {
                    "Id": entry["Id"],
                    "SenderFault": False,
                    "Code": "InternalError",
                    "Message": "injected entry failure",
                }
            )
