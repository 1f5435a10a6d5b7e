"""The inference engine: all requests of a suite at once, batched, results in input order.

The engine knows token ids and tensors, never suites or metrics. `Engine` wraps a causal LM and its
tokenizer; its `iter_*` methods yield (input index, result) as batches complete so the caller can
write results as they arrive, and the plain methods return results in input order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import torch

from evalkit.engine.generate import iter_generate
from evalkit.engine.loglikelihood import iter_loglikelihood
from evalkit.engine.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)

__all__ = [
    "Engine",
    "EngineSettings",
    "GenerateRequest",
    "GenerateResult",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
]

# A model config that names no window gets lm-eval's default.
DEFAULT_MAX_LENGTH = 2048


@dataclass(frozen=True)
class EngineSettings:
    """max_rows: the most rows in one batch (--batch-size).
    token_budget: the most tokens (rows x padded length) in one batch; bounds activation memory.
    deterministic: every shape a log-likelihood request meets is fixed by the request alone, so its
        result is bit-identical whatever the batch size, neighbours or order (some padding cost).
    """

    max_rows: int = 32
    token_budget: int = 16384
    deterministic: bool = True


class Engine:
    def __init__(self, model: torch.nn.Module, tokenizer: Any, settings: EngineSettings = EngineSettings()):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.max_length = int(getattr(model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH)

    def _options(self, progress: Callable[[int], None] | None) -> dict[str, Any]:
        return {
            "max_rows": self.settings.max_rows,
            "token_budget": self.settings.token_budget,
            "max_length": self.max_length,
            "progress": progress,
        }

    def iter_loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[int, LoglikelihoodResult]]:
        return iter_loglikelihood(
            self.model, self.tokenizer, requests, deterministic=self.settings.deterministic, **self._options(progress)
        )

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], *, max_rows: int | None = None
    ) -> list[LoglikelihoodResult]:
        """Results in input order; `max_rows` overrides the batch size for this call."""
        engine = self if max_rows is None else Engine(
            self.model, self.tokenizer, replace(self.settings, max_rows=max_rows)
        )
        return _in_order(len(requests), engine.iter_loglikelihood(requests))

    def iter_generate(
        self, requests: Sequence[GenerateRequest], progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[int, GenerateResult]]:
        return iter_generate(self.model, self.tokenizer, requests, **self._options(progress))

    def generate(self, requests: Sequence[GenerateRequest], *, max_rows: int | None = None) -> list[GenerateResult]:
        """Results in input order; `max_rows` overrides the number of slots for this call."""
        engine = self if max_rows is None else Engine(
            self.model, self.tokenizer, replace(self.settings, max_rows=max_rows)
        )
        return _in_order(len(requests), engine.iter_generate(requests))


def _in_order(n: int, results: Iterator[tuple[int, Any]]) -> list[Any]:
    ordered: list[Any] = [None] * n
    for index, result in results:
        ordered[index] = result
    return ordered
