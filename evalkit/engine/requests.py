"""What the engine is asked to compute, and what it answers: plain text in, numbers and text out.

The engine sees these records only: it never learns which suite, sample or metric a request
belongs to. Results come back tagged with the request's index in the input list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context) under the model.

    The context is tokenized on its own and the continuation as what the tokenizer adds to it, as
    lm-evaluation-harness does (trailing spaces of the context move to the continuation), so
    numbers are comparable with lm-eval's.

    shared_prefix: a leading part of `context` that many requests share (a few-shot preamble); the
        engine computes it once and reuses its key/value cache. It changes speed, not meaning:
        results equal scoring the whole context (within float rounding, 1e-4 in fp32).
    share_context: the context is also shared, by the sibling requests of one item (its several
        multi-token choices): computed once per item on top of the shared prefix.
    """

    context: str
    continuation: str
    shared_prefix: str = ""
    share_context: bool = False


@dataclass(frozen=True)
class LoglikelihoodResult:
    """logprob: sum of the continuation's token log-probabilities (fp32 log-softmax, fp64 sum).
    is_greedy: every continuation token is the argmax at its position.
    n_tokens: how many tokens the continuation has (for per-token normalisation).
    """

    logprob: float
    is_greedy: bool
    n_tokens: int


@dataclass(frozen=True)
class GenerateRequest:
    """A continuation of `prompt`: greedy, or sampled when temperature > 0.

    chat: wrap the prompt as one user message in the model's chat template (with `system` as the
        system message when given) and open the assistant's turn.
    stop: the completion ends before the first occurrence of any of these strings.
    temperature, top_p, top_k: sampling (temperature 0: greedy; see engine/sampling.py).
    seed: the request's own random stream; sampled tokens depend on it, never on the batch.
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    chat: bool = False
    system: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0


FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class GenerateResult:
    """text: the completion, cut before any stop string, special tokens removed.
    token_ids: the generated ids, the end-of-sequence token included when it ended the row.
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
