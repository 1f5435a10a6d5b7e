"""Choosing the next token: greedy, or sampled from a random stream that belongs to one sample.

A sampled token must not depend on which other samples shared the batch. Each request carries its
own seed (the runner derives it from the run seed and the sample's id); its stream draws exactly one
uniform number per generated token, so the k-th token always uses the k-th draw, whatever the
batching. The draw picks a token by inverse CDF over the probabilities sorted in a fixed order
(descending, ties by token id), computed in fp32 on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 means greedy (argmax; the lowest token id on ties). top_k 0 and top_p 1.0 keep
    the whole vocabulary."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class TokenStream:
    """The random stream of one generation request."""

    def __init__(self, seed: int):
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)

    def uniform(self) -> float:
        return float(torch.rand((), generator=self.generator, dtype=torch.float64))


def sample_token(logits: torch.Tensor, params: SamplingParams, u: float) -> int:
    """One token from a row of logits [vocab] given a uniform draw u in [0, 1)."""
    scaled = logits.detach().to("cpu", torch.float32) / params.temperature
    # Descending by logit, ties broken by token id: stable sort of the negated logits.
    order = torch.sort(-scaled, stable=True).indices
    ordered = scaled[order]
    if params.top_k > 0:
        ordered = ordered[: params.top_k]
        order = order[: params.top_k]
    probs = torch.softmax(ordered.double(), dim=0)
    if params.top_p < 1.0:
        cumulative = torch.cumsum(probs, dim=0)
        # Keep the smallest prefix whose mass reaches top_p (at least one token).
        keep = int(torch.searchsorted(cumulative, torch.tensor(params.top_p, dtype=torch.float64)).item()) + 1
        probs, order = probs[:keep], order[:keep]
    cumulative = torch.cumsum(probs, dim=0)
    position = int(torch.searchsorted(cumulative, torch.tensor(u * float(cumulative[-1]), dtype=torch.float64), right=True).item())
    return int(order[min(position, len(order) - 1)].item())
