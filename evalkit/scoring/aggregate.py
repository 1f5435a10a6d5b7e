"""Metrics from per-sample values: means with standard errors, overall and per group.

The same function computes the report at run time and recomputes it in `evalkit verify` from
samples.jsonl alone, so every aggregate in a signed report can be checked by anyone. The
arithmetic is plain Python floats in a fixed order (math.fsum), so both sides get the same bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class MetricSpec:
    """name: metric name; value: the per-sample value averaged; where: field filter."""

    name: str
    value: str
    where: Mapping[str, str]
    description: str = ""


@dataclass(frozen=True)
class ScoredSample:
    """What aggregation needs of a sample: its fields (for filters and groups) and its values."""

    fields: Mapping[str, Any]
    values: Mapping[str, float]


def mean_and_stderr(xs: Sequence[float]) -> dict[str, Any]:
    """{"value": mean, "stderr": sample std / sqrt(n) (None when n < 2), "n": n}."""
    n = len(xs)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    mean = math.fsum(xs) / n
    if n < 2:
        return {"value": mean, "stderr": None, "n": n}
    variance = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return {"value": mean, "stderr": math.sqrt(variance / n), "n": n}


def aggregate(
    metrics: Sequence[MetricSpec], group_by: Sequence[str], samples: Sequence[ScoredSample]
) -> dict[str, Any]:
    """{metric: {value, stderr, n, description, groups: {field: {group value: {value, stderr, n}}}}}.

    Groups are sorted by value so the output does not depend on sample order.
    """
    results: dict[str, Any] = {}
    for metric in metrics:
        chosen = [
            s for s in samples
            if all(str(s.fields.get(k)) == v for k, v in metric.where.items()) and metric.value in s.values
        ]
        entry = mean_and_stderr([s.values[metric.value] for s in chosen])
        entry["description"] = metric.description
        groups: dict[str, Any] = {}
        for field in group_by:
            by_value: dict[str, list[float]] = {}
            for s in chosen:
                by_value.setdefault(str(s.fields.get(field)), []).append(s.values[metric.value])
            groups[field] = {k: mean_and_stderr(by_value[k]) for k in sorted(by_value)}
        entry["groups"] = groups
        results[metric.name] = entry
    return results
