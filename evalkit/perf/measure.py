"""Timing one model on this machine: prefill, time to first token, decode and peak memory per grid point.

Why the model directly and not evalkit.engine: the engine is built for scoring (fixed shape
buckets, shared prefixes, batching plans) and changes as it gets faster; a performance number must
mean one plain, stable thing. Here a grid point (B rows of L tokens) is timed as a serving stack
would run it: one prefill forward over B x L tokens that keeps the key/value cache
(transformers' DynamicCache) and computes logits for the last position only, then N single-token
decode steps on that cache, each feeding back the argmax token.

Inputs are synthetic and deterministic: token ids drawn with numpy's PCG64 seeded by (seed, B, L)
from the model's vocabulary less its special tokens, so every run and every machine times the same
tokens (the row records their sha256). Each point runs `warmup` untimed rounds, then `repeats`
timed rounds; the scorer takes medians. Peak memory (MemoryProbe): on CUDA,
torch.cuda.max_memory_allocated; on CPU, the process's peak resident set (Linux: VmHWM, reset
before each point through /proc/self/clear_refs; elsewhere getrusage ru_maxrss).
"""

from __future__ import annotations

import hashlib
import inspect
import resource
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from evalkit.errors import ConfigError
from evalkit.model import LoadedModel
from evalkit.perf.grid import BATCH_FIELD, LENGTH_FIELD
from evalkit.report.files import Journal
from evalkit.scoring.registry import get_scorer
from evalkit.suite.manifest import Performance
from evalkit.suite.records import Sample


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]: ...


class MemoryProbe:
    """Peak memory of a grid point, in bytes, and a sentence saying what the number is."""

    _CLEAR_REFS = Path("/proc/self/clear_refs")

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.method = "CUDA memory allocated by torch on the device (max_memory_allocated), weights included"
        elif self._reset_rss():
            self.method = (
                "peak resident memory of the whole process (VmHWM, reset before each point "
                "via /proc/self/clear_refs), weights included"
            )
        else:
            self.method = (
                "peak resident memory of the whole process since it started (getrusage ru_maxrss; "
                "not resettable here, so each point shows the largest so far), weights included"
            )

    def _reset_rss(self) -> bool:
        # Writing 5 resets the kernel's peak-RSS mark to the current RSS (Linux 4.0+).
        try:
            self._CLEAR_REFS.write_text("5")
            return True
        except OSError:
            return False

    _STATUS = Path("/proc/self/status")

    @classmethod
    def _max_rss(cls) -> int:
        # Linux: VmHWM is the mark clear_refs resets. getrusage's ru_maxrss also keeps the peaks of
        # threads that have exited (a hashing pool, tokenizer workers), so after earlier suites it
        # stays at the run's peak whatever is reset.
        try:
            for line in cls._STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB elsewhere

    def start(self) -> int:
        """Reset the peak; return the memory held now (the point's baseline)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return int(torch.cuda.memory_allocated(self.device))
        self._reset_rss()
        return self._max_rss()

    def peak(self) -> int:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        return self._max_rss()


def vocabulary_pool(loaded: LoadedModel) -> np.ndarray:
    """Token ids a synthetic prompt draws from: the embedding rows the tokenizer knows, minus its
    special tokens (a stray end-of-text id would make a prompt unlike any real one)."""
    rows = int(loaded.model.get_input_embeddings().num_embeddings)
    size = min(rows, len(loaded.tokenizer))
    special = set(getattr(loaded.tokenizer, "all_special_ids", []) or [])
    return np.array([i for i in range(size) if i not in special], dtype=np.int64)


def synthetic_prompts(pool: np.ndarray, batch_size: int, prompt_length: int, seed: int) -> np.ndarray:
    """(batch_size, prompt_length) int64 token ids, a function of the pool, the shape and the seed."""
    rng = np.random.Generator(np.random.PCG64([seed, batch_size, prompt_length]))
    return pool[rng.integers(0, len(pool), size=(batch_size, prompt_length))]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cache_keyword(model: torch.nn.Module) -> str:
    # transformers 5.x renamed the forward's `past_key_values` to `cache`; 4.x knows only the first.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _round(model: torch.nn.Module, ids: np.ndarray, new_tokens: int, device: torch.device) -> tuple[float, float, float]:
    """One round: (prefill seconds, time-to-first-token seconds, decode seconds)."""
    from transformers import DynamicCache

    kw = _cache_keyword(model)
    t0 = time.perf_counter()
    inputs = torch.from_numpy(ids).to(device)
    _sync(device)
    t1 = time.perf_counter()
    cache = DynamicCache()
    out = model(input_ids=inputs, use_cache=True, logits_to_keep=1, **{kw: cache})
    _sync(device)
    t2 = time.perf_counter()
    token = out.logits[:, -1:].argmax(-1)  # (B, 1)
    token.cpu()  # the first token on the host: what a caller waits for
    t3 = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=token, use_cache=True, logits_to_keep=1, **{kw: cache})
        token = out.logits[:, -1:].argmax(-1)
    token.cpu()
    t4 = time.perf_counter()
    return t2 - t1, t3 - t0, t4 - t3


def measure_point(
    loaded: LoadedModel, pool: np.ndarray, batch_size: int, prompt_length: int, settings: Performance,
    probe: MemoryProbe,
) -> dict[str, Any]:
    """The raw measurement of one grid point: what ran, every timed round's seconds, memory bytes."""
    model = loaded.model
    device = next(model.parameters()).device
    ids = synthetic_prompts(pool, batch_size, prompt_length, settings.seed)
    rounds: list[tuple[float, float, float]] = []
    # The baseline is taken before the warm-up: memory a warm-up round leaves cached in the
    # allocator belongs to this point's need, not to what was there before it.
    baseline = probe.start()
    with torch.inference_mode():
        for i in range(settings.warmup + settings.repeats):
            timing = _round(model, ids, settings.new_tokens, device)
            if i >= settings.warmup:
                rounds.append(timing)
    peak = probe.peak()
    return {
        BATCH_FIELD: batch_size,
        LENGTH_FIELD: prompt_length,
        "new_tokens": settings.new_tokens,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "inputs_sha256": hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest(),
        "prefill_seconds": [r[0] for r in rounds],
        "ttft_seconds": [r[1] for r in rounds],
        "decode_seconds": [r[2] for r in rounds],
        "peak_bytes": peak,
        "baseline_bytes": baseline,
        "memory": probe.method,
        "device": loaded.precision.device,
        "dtype": loaded.precision.dtype,
    }


def check_fits(loaded: LoadedModel, samples: Sequence[Sample], new_tokens: int) -> None:
    """Refuse, before timing anything, a point longer than the model's context."""
    most = getattr(loaded.model.config, "max_position_embeddings", None)
    if not isinstance(most, int):
        return
    for sample in samples:
        need = int(sample.fields[LENGTH_FIELD]) + new_tokens
        if need > most:
            raise ConfigError(
                f"perf point {sample.id} needs {need} positions (prompt_length + new_tokens) but the model "
                f"has {most}; lower them (--perf prompt_lengths=... --perf new_tokens=...)"
            )


def run_perf_suite(
    ref: str, samples: Sequence[Sample], settings: Performance, loaded: LoadedModel, journal: Journal,
    progress: Progress,
) -> None:
    """Time every grid point in order and journal one scored row per point."""
    check_fits(loaded, samples, settings.new_tokens)
    pool = vocabulary_pool(loaded)
    device = next(loaded.model.parameters()).device
    probe = MemoryProbe(device)
    scorer = get_scorer("measurement")
    # One tiny untimed round first: torch's one-time set-up (kernel choices, thread pools, workspace)
    # would otherwise count as the first point's memory growth.
    with torch.inference_mode():
        _round(loaded.model, synthetic_prompts(pool, 1, 8, settings.seed), 1, device)
    with progress.task(f"{ref}: timing {len(samples)} grid points", len(samples)) as advance:
        for index, sample in enumerate(samples):
            measurement = measure_point(
                loaded, pool, int(sample.fields[BATCH_FIELD]), int(sample.fields[LENGTH_FIELD]), settings, probe
            )
            row: dict[str, Any] = {
                "suite": ref,
                "index": index,
                "id": sample.id,
                "fields": dict(sample.fields),
                "measurement": measurement,
            }
            row["values"] = scorer.score(row)
            journal.append(row)
            advance(1)
