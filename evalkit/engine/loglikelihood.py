"""Batched log-likelihood scoring with the LM head applied only where it is needed.

A plain forward pass computes vocabulary logits at every position of every row; scoring needs them
only at the continuation's positions (usually one to a few tokens out of hundreds). So we run the
transformer body, gather the hidden states at continuation positions, and apply the head there,
then take log-softmax in fp32 over fixed-size chunks of those rows. Memory for logits drops from
O(batch x length x vocab) to O(continuation tokens x vocab).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from evalkit.engine.batching import plan_batches
from evalkit.engine.requests import LoglikelihoodRequest, LoglikelihoodResult
from evalkit.engine.tokenize import encode_pair

# Rows of continuation hidden states sent through the head at once: bounds the transient
# fp32 logits to HEAD_CHUNK x vocab floats (1024 x 128k x 4 B = 0.5 GB at worst).
HEAD_CHUNK = 1024


@dataclass(frozen=True)
class _Encoded:
    """input_ids: what the model reads (context + continuation minus its last token, truncated on
    the left to the model's window); targets: the continuation's ids, predicted by the last
    len(targets) positions of input_ids."""

    input_ids: list[int]
    targets: list[int]


def _encode(tokenizer: Any, request: LoglikelihoodRequest, max_length: int) -> _Encoded:
    context_ids, continuation_ids = encode_pair(tokenizer, request.context, request.continuation)
    if not continuation_ids:
        # An empty continuation has log-likelihood 0 by definition; keep one position so the row
        # is well formed, and score nothing.
        return _Encoded(input_ids=context_ids[-max_length:], targets=[])
    whole = (context_ids + continuation_ids)[-(max_length + 1):]
    # The context is always at least one token, so len(whole) >= 2 and the slice is non-empty;
    # a continuation longer than the window keeps only the tokens the window can predict.
    return _Encoded(input_ids=whole[:-1], targets=continuation_ids[-(len(whole) - 1):])


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body (hidden states out) and the LM head of a causal LM."""
    head = model.get_output_embeddings()
    body = getattr(model, "base_model", None)
    if head is None or body is None or body is model:
        raise TypeError(f"{type(model).__name__} does not expose a separate body and LM head")
    return body, head


def head_logprobs(
    model: torch.nn.Module, head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log P(target) and whether the target is the argmax.

    hidden: [N, H] in the model's dtype; targets: [N] int64. Returns ([N] float32, [N] bool).
    """
    config = model.config
    logprobs, greedy = [], []
    for start in range(0, hidden.shape[0], HEAD_CHUNK):
        logits = head(hidden[start:start + HEAD_CHUNK]).float()
        # Some architectures post-process logits (Gemma 2 soft-caps them, Cohere scales them);
        # apply the same here so numbers equal the model's own forward.
        scale = getattr(config, "logit_scale", None)
        if scale is not None:
            logits = logits * scale
        cap = getattr(config, "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        chunk_targets = targets[start:start + HEAD_CHUNK]
        logsm = torch.log_softmax(logits, dim=-1)
        logprobs.append(logsm.gather(1, chunk_targets[:, None])[:, 0])
        greedy.append(logits.argmax(dim=-1) == chunk_targets)
    return torch.cat(logprobs), torch.cat(greedy)


def iter_loglikelihood(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[LoglikelihoodRequest],
    *,
    max_rows: int,
    token_budget: int,
    max_length: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """Score every request; yield (index in `requests`, result) as each batch completes.

    Requests whose model input is identical (the choices " A", " B", " C", " D" after one
    question: same context, single-token continuations) share one row: the body runs once and
    each request reads its own target off the same positions.
    """
    encoded = [_encode(tokenizer, r, max_length) for r in requests]
    row_of_input: dict[tuple[int, ...], int] = {}
    inputs: list[list[int]] = []
    requests_of_row: list[list[int]] = []
    for index, item in enumerate(encoded):
        key = tuple(item.input_ids)
        if key not in row_of_input:
            row_of_input[key] = len(inputs)
            inputs.append(item.input_ids)
            requests_of_row.append([])
        requests_of_row[row_of_input[key]].append(index)

    device = next(model.parameters()).device
    body, head = body_and_head(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plan = plan_batches([len(x) for x in inputs], max_rows=max_rows, token_budget=token_budget)
    for batch in plan:
        width = batch.padded_length
        # Right padding: with causal attention, pads after a row's last token cannot change it.
        input_ids = torch.full((len(batch.indices), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch.indices), width), dtype=torch.long)
        rows, cols, targets, served = [], [], [], []
        for row, unique in enumerate(batch.indices):
            n = len(inputs[unique])
            input_ids[row, :n] = torch.tensor(inputs[unique])
            attention[row, :n] = 1
            for index in requests_of_row[unique]:
                k = len(encoded[index].targets)
                rows += [row] * k
                cols += range(n - k, n)
                targets += encoded[index].targets
                served.append(index)
        with torch.inference_mode():
            hidden = body(input_ids=input_ids.to(device), attention_mask=attention.to(device)).last_hidden_state
            picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
            token_logprobs, token_greedy = head_logprobs(
                model, head, picked, torch.tensor(targets, dtype=torch.long, device=device)
            )
        logprob_list = token_logprobs.double().cpu().tolist()
        greedy_list = token_greedy.cpu().tolist()
        offset = 0
        for index in served:
            k = len(encoded[index].targets)
            # Summed on the host in float64, in token order: a fixed reduction order.
            total = 0.0
            for value in logprob_list[offset:offset + k]:
                total += value
            yield index, LoglikelihoodResult(
                logprob=total, is_greedy=all(greedy_list[offset:offset + k]), n_tokens=k
            )
            offset += k
        if progress is not None:
            progress(len(served))
