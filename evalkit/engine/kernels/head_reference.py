"""Chunked, batch-invariant LM-head scoring in plain torch: the reference every kernel is held to.

Scoring a continuation token needs two numbers from the vocabulary logits of its position: the
target's log-probability and whether the target is the argmax. Computing them the obvious way
(`log_softmax(head(hidden).float())`) materialises N x V fp32 logits (1024 x 128k x 4 B = 0.5 GB)
and, worse for a reproducible evaluation, the matmul's reduction strategy may change with N, so a
row's numbers can depend on its neighbours. Here:

- the vocabulary is walked in fixed-size slices, merged into a running fp32 (max, sum of exp) in a
  fixed order (slice 0, 1, 2, ...), so at most row_chunk x vocab_chunk logits exist at once;
- rows go through in fixed row_chunk-sized blocks, the last one padded with zero rows, so every
  matmul and reduction has the same shape whatever N is, and a row's result is bit-identical
  whether it is scored alone, among 7 rows or among 300, in any order (batch invariance).

This file runs on CPU (and on CUDA where triton is missing); `head_triton` is the same
computation as a CUDA kernel and the tests compare the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_VOCAB_CHUNK = 8192
DEFAULT_ROW_CHUNK = 128


def check_head_inputs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    bias: Tensor | None,
    softcap: float | None,
) -> None:
    """Raise ValueError, saying what to pass instead, if the inputs cannot be scored together.

    Shared by the reference and the Triton kernel so both refuse the same things.
    """
    if hidden.dim() != 2 or weight.dim() != 2:
        raise ValueError(
            f"hidden must be [N, H] and weight [V, H]; got {tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden size differs: hidden has H={hidden.shape[1]}, weight has H={weight.shape[1]}")
    if weight.shape[0] == 0:
        raise ValueError("weight has an empty vocabulary (V=0)")
    if hidden.dtype != weight.dtype:
        raise ValueError(
            f"hidden is {hidden.dtype} but weight is {weight.dtype}: cast hidden to the head's dtype, "
            "as the model's own forward would"
        )
    if targets.shape != (hidden.shape[0],) or targets.dtype != torch.long:
        raise ValueError(
            f"targets must be int64 of shape [{hidden.shape[0]}]; got {targets.dtype} {tuple(targets.shape)}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape [{weight.shape[0]}]; got {tuple(bias.shape)}")
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap must be positive (or None to disable it); got {softcap}")
    if targets.numel() and bool(((targets < 0) | (targets >= weight.shape[0])).any()):
        # An out-of-range id would silently score against no logit at all.
        raise ValueError(f"targets must lie in [0, {weight.shape[0]}); got ids outside that range")


def slice_logits(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    logit_scale: float | None,
    softcap: float | None,
) -> Tensor:
    """fp32 logits of one vocabulary slice, post-processed as transformers' models do.

    hidden: [R, H]; weight: [C, H] (a slice of the head's rows); bias: [C] or None. Returns [R, C] fp32.
    The matmul runs in the model dtype (as nn.Linear does) before the upcast, so the numbers equal
    the model's own logits rather than a more precise variant of them.
    """
    logits = F.linear(hidden, weight, bias).float()
    # In place: F.linear's output is fresh (and .float() of it too), and this caps the transient
    # memory at one [R, C] buffer.
    if logit_scale is not None:
        logits.mul_(logit_scale)  # Cohere
    if softcap is not None:
        logits.div_(softcap).tanh_().mul_(softcap)  # Gemma 2's final_logit_softcapping
    return logits


def _score_block(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    bias: Tensor | None,
    logit_scale: float | None,
    softcap: float | None,
    vocab_chunk: int,
) -> tuple[Tensor, Tensor]:
    """hidden: [R, H] (R = row_chunk, already padded); targets: [R]. Returns ([R] fp32, [R] bool)."""
    rows = hidden.shape[0]
    device = hidden.device
    run_max = torch.full((rows,), float("-inf"), dtype=torch.float32, device=device)
    run_sum = torch.zeros(rows, dtype=torch.float32, device=device)
    target_logit = torch.zeros(rows, dtype=torch.float32, device=device)
    best = torch.full((rows,), float("-inf"), dtype=torch.float32, device=device)
    best_index = torch.zeros(rows, dtype=torch.long, device=device)
    vocab = weight.shape[0]
    for v0 in range(0, vocab, vocab_chunk):
        v1 = min(v0 + vocab_chunk, vocab)
        logits = slice_logits(
            hidden, weight[v0:v1], None if bias is None else bias[v0:v1], logit_scale, softcap
        )
        # The target logit lives in exactly one slice; read it before the buffer is overwritten.
        in_slice = (targets >= v0) & (targets < v1)
        local = (targets - v0).clamp_(0, v1 - v0 - 1)
        target_logit = torch.where(in_slice, logits.gather(1, local[:, None])[:, 0], target_logit)
        # max over a dim returns the first maximal index; a later slice must be strictly greater
        # to take over, so across slices the first index wins ties too, as argmax does.
        slice_max, slice_index = logits.max(dim=1)
        better = slice_max > best
        best = torch.where(better, slice_max, best)
        best_index = torch.where(better, slice_index + v0, best_index)
        # Online log-sum-exp: rescale the running sum to the new max, add this slice's terms.
        new_max = torch.maximum(run_max, slice_max)
        run_sum = run_sum * torch.exp(run_max - new_max) + logits.sub_(new_max[:, None]).exp_().sum(dim=1)
        run_max = new_max
    logprob = target_logit - (run_max + torch.log(run_sum))
    return logprob, best_index == targets


def head_logprobs_reference(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    bias: Tensor | None = None,
    logit_scale: float | None = None,
    softcap: float | None = None,
    vocab_chunk: int = DEFAULT_VOCAB_CHUNK,
    row_chunk: int = DEFAULT_ROW_CHUNK,
) -> tuple[Tensor, Tensor]:
    """log P(target) and whether the target is the argmax, for each row.

    hidden: [N, H] in the model dtype; weight: [V, H] (the LM head); targets: [N] int64;
    bias: [V] or None. Returns (logprob [N] float32, is_greedy [N] bool).

    Logits are `hidden @ weight.T (+ bias)` in the model dtype, then fp32, then `* logit_scale`,
    then `tanh(x / softcap) * softcap`, the order transformers' models use. At most
    row_chunk x vocab_chunk logits exist at once. Rows are scored in blocks of exactly row_chunk
    rows (the last padded with zeros) and vocabulary slices are merged in a fixed order, so each
    row's result is bit-identical whatever other rows are present.
    """
    if vocab_chunk <= 0 or row_chunk <= 0:
        raise ValueError(f"vocab_chunk and row_chunk must be positive; got {vocab_chunk} and {row_chunk}")
    check_head_inputs(hidden, weight, targets, bias, softcap)
    n = hidden.shape[0]
    logprob = torch.empty(n, dtype=torch.float32, device=hidden.device)
    greedy = torch.empty(n, dtype=torch.bool, device=hidden.device)
    block = hidden.new_zeros(row_chunk, hidden.shape[1])
    block_targets = targets.new_zeros(row_chunk)
    for r0 in range(0, n, row_chunk):
        r1 = min(r0 + row_chunk, n)
        # Copy into a fixed-shape block: the padding rows are zeros (and target 0) and are dropped.
        block.zero_()
        block_targets.zero_()
        block[: r1 - r0] = hidden[r0:r1]
        block_targets[: r1 - r0] = targets[r0:r1]
        block_logprob, block_greedy = _score_block(
            block, weight, block_targets, bias, logit_scale, softcap, vocab_chunk
        )
        logprob[r0:r1] = block_logprob[: r1 - r0]
        greedy[r0:r1] = block_greedy[: r1 - r0]
    return logprob, greedy
