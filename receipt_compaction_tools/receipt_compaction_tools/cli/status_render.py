"""``status`` as plain lines: one fact per line, greppable, never cut to the terminal's
width."""

from __future__ import annotations

from typing import IO, Any


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}s"


def _queue_line(queue: dict[str, Any] | None) -> str:
    if queue is None:
        return "not configured"
    oldest = _seconds(queue["oldest_age_seconds"])
    if queue["oldest_age_source"] == "sample":
        oldest += " (sampled)"
    elif queue["oldest_age_source"] is None and queue["visible"]:
        oldest = "unavailable (no CloudWatch datapoint)"
    return (
        f"{queue['queue']}: {queue['visible']} visible, {queue['in_flight']} in flight, "
        f"{queue['delayed']} delayed, oldest {oldest}"
    )


def _runs_line(runs: dict[str, Any]) -> str:
    text = f"{runs['pending']} pending, {runs['processing']} processing"
    oldest = runs["oldest"]
    if oldest is not None:
        text += (
            f"; oldest {oldest['run_id']} ({oldest['state']}, {_seconds(oldest['age_seconds'])}"
            f", image {oldest['image_id']} receipt {oldest['receipt_id']})"
        )
    return f"{text} (created in the last {runs['window_days']:g} days)"


def _snapshot_lines(snapshot: dict[str, Any] | None) -> list[str]:
    if snapshot is None:
        return ["  versions      not checked (no bucket: --bucket or CHROMADB_BUCKET)"]
    damaged = [v for v in snapshot["versions"] if not v["ok"]]
    if not damaged:
        count = len(snapshot["versions"])
        return [f"  versions      {count} retained, all verify ({snapshot['checked']})"]
    lines = [
        f"  versions      {len(damaged)} of {len(snapshot['versions'])} retained DO NOT VERIFY "
        f"({snapshot['checked']}; {remedy(damaged)})"
    ]
    for version in damaged:
        for problem in version["problems"]:
            lines.append(f"    {version['version']} ({version['role']}): {problem}")
    return lines


def render_status(result: dict[str, Any], stream: IO[str]) -> None:
    """Plain lines (one fact per line, greppable, never cut to the terminal's width)."""
    lines = [f"{result['table']} at {result['checked_at']}"]
    lag = result["stream"]
    lines.append(
        "stream         "
        + (
            f"iterator age {_seconds(lag['iterator_age_seconds'])} ({lag['source']})"
            if lag["iterator_age_seconds"] is not None
            else f"iterator age unavailable ({lag['unavailable']})"
        )
    )
    for name, entry in result["collections"].items():
        pointer, lease = entry["pointer"], entry["lease"]
        lines.append(f"{name}:")
        if pointer is None:
            lines.append("  pointer       none (nothing published yet)")
        else:
            lines.append(
                f"  pointer       {pointer['version']} (published "
                f"{_seconds(pointer['age_seconds'])} ago, token {pointer['fencing_token']})"
            )
            history = ", ".join(
                f"{h['version']} ({_seconds(h['age_seconds'])})" for h in pointer["history"]
            )
            lines.append(f"  history       {history}")
            lines += _snapshot_lines(entry["snapshot"])
        if lease is None:
            lines.append("  lease         never taken")
        elif lease["held"]:
            lines.append(
                f"  lease         held by {lease['owner']}, expires in "
                f"{_seconds(lease['expires_in_seconds'])} ({lease['expires']}), "
                f"token {lease['fencing_token']}"
            )
        else:
            lines.append(f"  lease         free (token {lease['fencing_token']})")
        lines.append(f"  queue         {_queue_line(entry['queue'])}")
        lines.append(f"  dead letters  {_queue_line(entry['dlq'])}")
        lines.append(f"  runs          {_runs_line(entry['runs'])}")
        unindexed = entry["unindexed"] or {}
        count = unindexed.get("records")
        if count is not None:
            lines.append(f"  unindexed     {count} ({unindexed['source']})")
        elif unindexed.get("source", "cloudwatch") != "cloudwatch":
            lines.append(f"  unindexed     {unindexed['source']}")
        else:
            lines.append(
                "  unindexed     unknown (no UnindexedRecords datapoint; --deep measures it)"
            )
    lines.append(f"stream parking {_queue_line(result['stream_parking'])}")
    if result["cloudwatch"]:
        lines.append(f"cloudwatch     unavailable ({result['cloudwatch']})")
    stream.write("\n".join(lines) + "\n")


def remedy(damaged: list[dict[str, Any]]) -> str:
    """What to do about versions that do not verify: repair restores objects only."""
    fixable = [v["version"] for v in damaged if v["repairable"]]
    if len(fixable) == len(damaged):
        return "snapshot repair restores their objects"
    unfixable = "; ".join(v["version"] for v in damaged if not v["repairable"])
    text = (
        f"{unfixable}: a manifest or version that does not verify cannot be repaired — "
        "snapshot rollback to a version that verifies, or restore its keys from a backup"
    )
    return f"{text}; snapshot repair restores the objects of the others" if fixable else text
