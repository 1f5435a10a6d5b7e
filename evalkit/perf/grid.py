"""The measurement grid of a performance suite, and the run-time overrides that rescale it.

Why its own module, free of torch: the suite loader checks grid rows, the run config validates
`--perf` overrides, the runner plans the grid before any model loads, and scripts/build_suites.py
writes the bundled grid; none of them should import torch for that.

A grid point is a data row `{"point": "b4_l512", "batch_size": 4, "prompt_length": 512}`. The
bundled `perf` suite is sized for two CPU cores; `--perf batch_sizes=1,8,32 --perf
prompt_lengths=128,2048 --perf new_tokens=128` (or a profile's `perf:` block) replaces the grid and
timing settings for one run, and the report records what ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalkit.errors import ConfigError
from evalkit.suite.manifest import Performance
from evalkit.suite.records import Sample, Suite

KIND = "performance"
POINT_FIELD = "point"
BATCH_FIELD = "batch_size"
LENGTH_FIELD = "prompt_length"

# Far beyond any machine's memory, but small enough that B x L stays a plain int and a typo is caught.
MAX_BATCH_SIZE = 65536
MAX_PROMPT_LENGTH = 1 << 20


def point_id(batch_size: int, prompt_length: int) -> str:
    return f"b{batch_size}_l{prompt_length}"


def grid_rows(batch_sizes: Sequence[int], prompt_lengths: Sequence[int]) -> list[dict[str, Any]]:
    """One row per (batch size, prompt length), batch sizes outermost, in the order given."""
    return [
        {POINT_FIELD: point_id(b, n), BATCH_FIELD: b, LENGTH_FIELD: n}
        for b in batch_sizes for n in prompt_lengths
    ]


def point_problems(fields: Mapping[str, Any]) -> list[str]:
    """What is wrong with one grid row (the loader reports each as `file:line: ...`)."""
    problems = []
    for name, most in ((BATCH_FIELD, MAX_BATCH_SIZE), (LENGTH_FIELD, MAX_PROMPT_LENGTH)):
        value = fields.get(name)
        if name not in fields:
            continue  # reported as a missing field
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            problems.append(f"{name} must be an integer from 1 to {most} (a JSONL number), not {value!r}")
    return problems


class PerfOverride(BaseModel):
    """Per-run replacements for a performance suite's grid and timing settings (None: the suite's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_sizes: tuple[int, ...] | None = Field(default=None, min_length=1)
    prompt_lengths: tuple[int, ...] | None = Field(default=None, min_length=1)
    new_tokens: int | None = Field(default=None, ge=1, le=32768)
    warmup: int | None = Field(default=None, ge=0, le=100)
    repeats: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _in_range(self) -> PerfOverride:
        for name, most in (("batch_sizes", MAX_BATCH_SIZE), ("prompt_lengths", MAX_PROMPT_LENGTH)):
            values = getattr(self, name) or ()
            if any(not 1 <= v <= most for v in values):
                raise ValueError(f"{name}: every value must be from 1 to {most}, got {list(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: a value is listed twice in {list(values)}")
        return self


_LIST_KEYS = ("batch_sizes", "prompt_lengths")
_INT_KEYS = ("new_tokens", "warmup", "repeats")


def parse_perf_options(items: Sequence[str]) -> PerfOverride | None:
    """`--perf KEY=VALUE` options (lists comma-separated) as one override; None when none given."""
    if not items:
        return None
    data: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in _LIST_KEYS + _INT_KEYS:
            raise ConfigError(
                f"--perf {item!r}: write KEY=VALUE with KEY one of {', '.join(_LIST_KEYS + _INT_KEYS)} "
                "(e.g. --perf batch_sizes=1,8,32)"
            )
        try:
            numbers = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--perf {item!r}: {key} takes integers, e.g. {key}=1,8,32") from None
        if key in _INT_KEYS and len(numbers) != 1:
            raise ConfigError(f"--perf {item!r}: {key} takes one integer")
        data[key] = tuple(numbers) if key in _LIST_KEYS else numbers[0]
    try:
        return PerfOverride.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'perf'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--perf: {problems}") from None


def eval_samples(suite: Suite, override: PerfOverride | None) -> tuple[Sample, ...]:
    """The suite's evaluated samples; for a performance suite whose grid `override` replaces, the
    replacement grid (a batch-size or length list not overridden keeps the suite's values)."""
    if suite.manifest.kind != KIND or override is None or (
        override.batch_sizes is None and override.prompt_lengths is None
    ):
        return suite.eval_samples
    own = suite.eval_samples
    batch_sizes = override.batch_sizes or tuple(dict.fromkeys(int(s.fields[BATCH_FIELD]) for s in own))
    lengths = override.prompt_lengths or tuple(dict.fromkeys(int(s.fields[LENGTH_FIELD]) for s in own))
    return tuple(
        Sample(id=row[POINT_FIELD], split=suite.manifest.eval_split, fields=row, source=f"--perf {row[POINT_FIELD]}")
        for row in grid_rows(batch_sizes, lengths)
    )


def settings(suite: Suite, override: PerfOverride | None) -> Performance:
    """The suite's timing settings with the run's overrides applied."""
    base = suite.manifest.performance or Performance()
    if override is None:
        return base
    changes = {k: getattr(override, k) for k in _INT_KEYS if getattr(override, k) is not None}
    return base.model_copy(update=changes)


def performance_entry(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report's `performance` entry of one suite run, derived from its rows alone (so `verify`
    could rebuild it): the grid in run order, the timing settings and how memory was measured."""
    first = rows[0]["measurement"] if rows else {}
    return {
        "grid": [
            {POINT_FIELD: r["id"], BATCH_FIELD: r["measurement"][BATCH_FIELD], LENGTH_FIELD: r["measurement"][LENGTH_FIELD]}
            for r in rows
        ],
        **{k: first.get(k) for k in ("new_tokens", "warmup", "repeats", "seed", "memory", "device", "dtype")},
    }
