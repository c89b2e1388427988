"""CloudWatch's latest datapoints, for the reports that read the pipeline's metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


class CloudWatch:
    """Latest datapoints; once CloudWatch cannot be asked (no permission, no service, no
    answer) the report stops asking, so one unreachable service costs one timeout."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.unavailable: str | None = None

    def latest(
        self, namespace: str, name: str, dimensions: dict[str, str], statistic: str
    ) -> float | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.unavailable is not None:
            return None
        now = datetime.now(UTC)
        try:
            points = self.client.get_metric_statistics(
                Namespace=namespace,
                MetricName=name,
                Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
                StartTime=now - timedelta(minutes=15),
                EndTime=now,
                Period=60,
                Statistics=[statistic],
            ).get("Datapoints", [])
        except (BotoCoreError, ClientError) as error:
            self.unavailable = f"{type(error).__name__}: {error}"
            return None
        if not points:
            return None
        return float(max(points, key=lambda p: p["Timestamp"])[statistic])
