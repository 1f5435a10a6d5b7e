"""The invariance self-test every report carries: proof, on this machine, that a request's numbers
do not depend on its batch.

A few canary requests (some sharing a prefix, some not, of different lengths) are scored one item at
a time, all together, and all together in reverse order; the three must agree bit for bit. The
generation canaries (greedy and seeded sampling) are generated the same three ways and must agree
token for token.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from evalkit.engine.requests import GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult

_PREAMBLE = "Here are some facts, one per line.\n\n" + "".join(
    f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}.\n" for i in range(1, 13)
) + "\n"

CANARIES: tuple[LoglikelihoodRequest, ...] = (
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " A"),
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " B"),
    LoglikelihoodRequest("", "A sentence with no context at all."),
    LoglikelihoodRequest("A longer context that keeps going, " * 6, " and then stops."),
    LoglikelihoodRequest(_PREAMBLE + "Fact 13: the number 13 is", " odd.", shared_prefix=_PREAMBLE),
    LoglikelihoodRequest(_PREAMBLE + "Fact 14: the number 14 is", " even.", shared_prefix=_PREAMBLE),
    LoglikelihoodRequest(_PREAMBLE + "Fact 15: the number 15 is", " a prime number.", shared_prefix=_PREAMBLE),
    LoglikelihoodRequest(
        _PREAMBLE + "Fact 16: a number that is a power of two and also a perfect square, namely sixteen, is",
        " even, and larger than ten.", shared_prefix=_PREAMBLE, share_context=True,
    ),
    LoglikelihoodRequest(
        _PREAMBLE + "Fact 16: a number that is a power of two and also a perfect square, namely sixteen, is",
        " odd, and smaller than two.", shared_prefix=_PREAMBLE, share_context=True,
    ),
    LoglikelihoodRequest("Question: how do I open a jar?\nAnswer:", " twist the lid firmly.", share_context=True),
    LoglikelihoodRequest("Question: how do I open a jar?\nAnswer:", " ask a friend for help.", share_context=True),
)


def results_digest(results: list[LoglikelihoodResult]) -> str:
    """sha256 over the exact bits of every result (float64 big-endian, greedy flag, token count)."""
    digest = hashlib.sha256()
    for r in results:
        digest.update(struct.pack(">d?I", r.logprob, r.is_greedy, r.n_tokens))
    return digest.hexdigest()


def items(requests: tuple[LoglikelihoodRequest, ...]) -> list[list[int]]:
    """The requests as the units a suite submits: the choices of one item that share their context
    (share_context) always come together, and the engine may compute them in one packed row, so
    "alone" means one item alone, not one of its choices without its siblings."""
    units: dict[tuple[str, bool], list[int]] = {}
    for i, request in enumerate(requests):
        key = (request.context, True) if request.share_context else (f"#{i}", False)
        units.setdefault(key, []).append(i)
    return list(units.values())


def invariance_self_test(engine: Any) -> dict[str, Any]:
    """Score the canaries one item at a time, batched, and batched in reverse; report whether all
    agree bit for bit."""
    alone: list[Any] = [None] * len(CANARIES)
    for unit in items(CANARIES):
        for i, result in zip(unit, engine.loglikelihood([CANARIES[i] for i in unit], max_rows=1)):
            alone[i] = result
    together = engine.loglikelihood(list(CANARIES))
    reversed_ = engine.loglikelihood(list(CANARIES[::-1]))[::-1]
    gaps = [
        max(abs(a.logprob - b.logprob), abs(a.logprob - c.logprob))
        for a, b, c in zip(alone, together, reversed_)
    ]
    return {
        "canaries": len(CANARIES),
        "batch_sizes": [1, engine.settings.max_rows],
        "orders": ["forward", "reversed"],
        "bit_identical": alone == together == reversed_,
        "max_abs_diff": max(gaps),
        "results_sha256": results_digest(together),
    }


GENERATION_CANARIES: tuple[GenerateRequest, ...] = (
    GenerateRequest("The capital of France is", max_new_tokens=12),
    GenerateRequest("Question: what is two plus two?\nAnswer:", max_new_tokens=8, stop=("\n",)),
    GenerateRequest(_PREAMBLE + "Fact 13: the number 13 is", max_new_tokens=10),
    GenerateRequest("Once upon a time", max_new_tokens=16, temperature=1.0, top_p=0.9, seed=1),
    GenerateRequest("A list of colours: red, green,", max_new_tokens=16, temperature=0.7, top_k=20, seed=2),
    GenerateRequest("Hello", max_new_tokens=6),
)


def generation_self_test(engine: Any) -> dict[str, Any]:
    """Generate the canaries one slot at a time, all together, and all together in reverse order;
    greedy and seeded-sampling outputs must agree token for token."""
    alone = [engine.generate([request], max_rows=1)[0] for request in GENERATION_CANARIES]
    together = engine.generate(list(GENERATION_CANARIES))
    reversed_ = engine.generate(list(GENERATION_CANARIES[::-1]))[::-1]
    tokens = [[list(r.token_ids) for r in results] for results in (alone, together, reversed_)]
    digest = hashlib.sha256(json.dumps(tokens[1]).encode("utf-8")).hexdigest()
    return {
        "canaries": len(GENERATION_CANARIES),
        "slots": [1, engine.settings.max_rows],
        "orders": ["forward", "reversed"],
        "identical": tokens[0] == tokens[1] == tokens[2],
        "tokens_sha256": digest,
    }
