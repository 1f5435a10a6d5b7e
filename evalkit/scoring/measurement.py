"""The `measurement` scorer: tok/s, ms and MB of one performance grid point, from its raw row.

A performance row records what was measured, not conclusions: the batch size, prompt length and
decode steps, the seconds of every timed round, and the bytes of memory. This scorer derives the
per-sample values from those alone (medians over rounds), so `evalkit verify` recomputes each value
from the recorded timings, and each aggregate from the values, exactly as for an accuracy suite.

    prefill_tokens_per_s  batch_size x prompt_length / median prefill seconds
    decode_tokens_per_s   batch_size x new_tokens / median seconds of the new_tokens decode steps
    ttft_ms               median time to first token (inputs to the device, prefill, first token
                          back on the host), in milliseconds
    peak_memory_mb        peak memory during the point (see the row's `memory` for what that is), MiB
    memory_growth_mb      peak minus the memory held when the point started, MiB
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

MIB = 1 << 20

# The raw keys of a row's `measurement` that change from run to run: reproduce and compare report
# them as measurements instead of calling a difference a failure (evalkit/perf/diff.py).
TIMED_KEYS = ("prefill_seconds", "ttft_seconds", "decode_seconds", "peak_bytes", "baseline_bytes")


def _median_seconds(values: Sequence[Any], what: str) -> float:
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in values):
        raise ValueError(f"{what} must be a non-empty list of positive seconds, not {values!r}")
    return float(statistics.median(values))


def score_measurement(row: Mapping[str, Any]) -> dict[str, float]:
    m = row["measurement"]
    batch, length, steps = int(m["batch_size"]), int(m["prompt_length"]), int(m["new_tokens"])
    peak, baseline = int(m["peak_bytes"]), int(m["baseline_bytes"])
    return {
        "prefill_tokens_per_s": batch * length / _median_seconds(m["prefill_seconds"], "prefill_seconds"),
        "decode_tokens_per_s": batch * steps / _median_seconds(m["decode_seconds"], "decode_seconds"),
        "ttft_ms": 1000.0 * _median_seconds(m["ttft_seconds"], "ttft_seconds"),
        "peak_memory_mb": peak / MIB,
        "memory_growth_mb": max(0, peak - baseline) / MIB,
    }
