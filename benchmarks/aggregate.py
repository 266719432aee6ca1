"""Repeated runs -> median with min and max, per metric."""

from __future__ import annotations

import statistics
from typing import Any


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers become {median, min, max}; anything else is kept from the first run."""
    if not runs:
        return {}
    summary: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values):
            summary[key] = {"median": statistics.median(numbers), "min": min(numbers),
                            "max": max(numbers)}
        elif isinstance(first, bool):
            summary[key] = any(bool(v) for v in values)
        else:
            summary[key] = first
    return summary


def median(summary: dict[str, Any], key: str) -> float | None:
    value = summary.get(key)
    if isinstance(value, dict) and "median" in value:
        return float(value["median"])
    return None
