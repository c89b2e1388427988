"""Runs one compaction cycle and SIGKILLs itself at a chosen stage (crash-safety tests).

Usage: python crash_worker.py ARGS.json   (AWS_ENDPOINT_URL etc. come from the environment)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import boto3

from receipt_chroma.compaction import CompactionConfig, CompactionCycle
from receipt_dynamo import DynamoClient
from receipt_dynamo_stream import StreamMessage


def main() -> None:
    args = json.loads(Path(sys.argv[1]).read_text())
    config = CompactionConfig(
        table_name=args["table"],
        bucket=args["bucket"],
        chroma_root=Path(args["chroma_root"]),
        work_dir=Path(args["work_dir"]),
        dimension=args["dimension"],
        lock_duration_seconds=args["lock_duration"],
        heartbeat_interval_seconds=1,
        lock_wait_seconds=5,
        lock_backoff_seconds=(0.05, 0.2),
    )
    kill_at = args["kill_at"]

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def on_stage(stage: str) -> None:
        if stage == kill_at:
            die()
        if kill_at == "mid_apply" and stage == "opened":
            threading.Timer(args.get("delay", 0.02), die).start()

    cycle = CompactionCycle(
        config,
        args["collection"],
        dynamo=DynamoClient(args["table"]),
        s3_client=boto3.client("s3"),
        on_stage=on_stage,
    )
    messages = [(mid, StreamMessage.from_json(body)) for mid, body in args["messages"]]
    result = cycle.run(messages)
    print(json.dumps({"failures": len(result.failures), "version": result.published_version}))


if __name__ == "__main__":
    main()
