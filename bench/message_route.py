"""The route of one queue message through the product (issue 22, docs/architecture.md "From
a queue message to a published version"), counted rather than read off the code.

One warm metadata change goes from the compaction handler's ``lambda_handler`` to a
published version, against a local AWS emulator and real chromadb (dimension 8). A
profiler on the main thread follows the calls between product modules and reports:
- ``modules_entered``: product modules the route enters;
- ``module_changes``: calls from one product module into another;
- ``calls_back``: calls into a module already on the call stack below the caller (a
  callback, a closure carried down, a result filled in from below), by pair. Calls from
  a ``receipt_dynamo.entities`` class into its base class are inheritance, listed apart.

Prints one JSON document. Not a timing: it runs in seconds on any machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.lambda_context import LocalLambdaContext
from receipt_compaction_tools.testing.sqs_events import published_sqs_event
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import IMAGE_ID, make_metadata

PRODUCT = (
    "receipt_chroma",
    "receipt_dynamo",
    "receipt_dynamo_stream",
    "chromadb_compaction",
    "enhanced_compaction_handler",
)
INHERITANCE = "receipt_dynamo.entities."


class RouteCounter:
    """Follows calls between product modules on the thread it is installed on."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.entered: Counter[str] = Counter()
        self.calls_back: Counter[tuple[str, str]] = Counter()
        self.changes = 0

    def __call__(self, frame: FrameType, event: str, _: object) -> None:
        module = str(frame.f_globals.get("__name__", ""))
        if event not in ("call", "return") or not module.startswith(PRODUCT):
            return
        if event == "return":
            if self.stack:
                self.stack.pop()
            return
        caller = self.stack[-1] if self.stack else ""
        if module != caller:
            self.changes += 1
            self.entered[module] += 1
            if module in self.stack:
                self.calls_back[(caller, module)] += 1
        self.stack.append(module)

    def report(self) -> dict[str, Any]:
        def pairs(inherited: bool) -> dict[str, int]:
            return {
                f"{a} -> {b}": n
                for (a, b), n in self.calls_back.most_common()
                if (a.startswith(INHERITANCE) and b.startswith(INHERITANCE)) is inherited
            }

        back = pairs(inherited=False)
        return {
            "modules_entered": len(self.entered),
            "module_changes": self.changes,
            "calls_back": sum(back.values()),
            "calls_back_by_pair": back,
            "entity_base_class_calls": sum(pairs(inherited=True).values()),
        }


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalAwsServer() as server,
        environment(server.environment()),
    ):
        world = CompactionWorld(Path(tmp))
        world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
        settings = {
            "DYNAMODB_TABLE_NAME": world.table,
            "CHROMADB_BUCKET": world.bucket,
            "CHROMA_ROOT": str(world.config.chroma_root),
            "CHROMA_WORK_DIR": str(world.config.work_dir),
            "EMBEDDING_DIMENSION": str(world.dimension),
            "LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        with environment(settings):
            handler = load_handler("enhanced_compaction_handler")
            context = LocalLambdaContext()
            handler.lambda_handler(published_sqs_event(world.pump()["words"]), context)  # bootstrap
            world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner"))
            event = published_sqs_event(world.pump()["words"][:1])
            counter = RouteCounter()
            sys.setprofile(counter)
            try:
                response = handler.lambda_handler(event, context)
            finally:
                sys.setprofile(None)
        assert response["batchItemFailures"] == [], response
    print(json.dumps(counter.report(), indent=2))


if __name__ == "__main__":
    main()
