"""What the monitoring tests share: a secret to look for, log lines, metric samples."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from snipix.observability.metrics import Metrics

# Looks like a live credential; must never appear in a log line.
SECRET = "sk_live_4f9aQ2-very-secret-token"


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0
