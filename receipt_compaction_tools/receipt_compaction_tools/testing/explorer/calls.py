"""AWS calls as the explorer sees them: botocore event hooks on a client, and what a call
is (by the contract's names: the lock row's heartbeat of §7, the pointer file of §6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PARAMS = "explorer.params"  # the request context key holding the call's API parameters


@dataclass(frozen=True)
class Call:
    """One AWS call: ``service.Operation`` and its API parameters."""

    service: str
    operation: str
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def is_heartbeat(self) -> bool:
        """§7's heartbeat: an UpdateItem of a lock row that neither acquires (a new fencing
        token) nor releases (REMOVE of the owner)."""
        if self.name != "dynamodb.UpdateItem":
            return False
        key = self.params.get("Key", {}).get("PK", {}).get("S", "")
        update = str(self.params.get("UpdateExpression", ""))
        return key.startswith("LOCK#") and "fencing_token" not in update and "REMOVE" not in update


def _call(model: Any, context: dict[str, Any]) -> Call:
    return Call(model.service_model.service_name, model.name, context.get(PARAMS, {}))


Before = Callable[[Call, dict[str, Any]], None]
After = Callable[[Call, dict[str, Any], int, dict[str, Any]], None]


def hook(client: Any, *, before: Before | None = None, after: After | None = None) -> None:
    """Call ``before(call, context)`` before each call of ``client`` is sent and
    ``after(call, context, http_status, parsed)`` once it answered (before the caller sees
    the answer). Either may block or raise: the caller's thread is the one calling."""
    events = client.meta.events

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[PARAMS] = params

    events.register("before-parameter-build.*.*", remember)
    if before is not None:
        on_before = before

        def before_call(model: Any, context: dict[str, Any], **_: Any) -> None:
            on_before(_call(model, context), context)

        events.register("before-call.*.*", before_call)
    if after is not None:
        on_after = after

        def after_call(
            model: Any, context: dict[str, Any], http_response: Any, parsed: Any, **_: Any
        ) -> None:
            on_after(_call(model, context), context, int(http_response.status_code), parsed)

        events.register("after-call.*.*", after_call)
