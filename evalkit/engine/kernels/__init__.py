"""Fused LM-head scoring: log P(target) and greedy-match per row without N x V logits.

`head_logprobs` is what the engine calls. On CUDA with triton installed it runs the Triton kernels
(`head_triton`); everywhere else the plain torch reference (`head_reference`), which is also what
the kernels are tested against. triton is only imported when a CUDA tensor asks for it, so CPU
runs never pay its import.
"""

from __future__ import annotations

from torch import Tensor

from evalkit.engine.kernels.head_reference import (
    DEFAULT_ROW_CHUNK,
    DEFAULT_VOCAB_CHUNK,
    head_logprobs_reference,
)

__all__ = ["head_logprobs", "head_logprobs_reference", "triton_available"]


def triton_available() -> bool:
    """Whether the Triton kernels can be built here (triton 3 or later importable)."""
    from evalkit.engine.kernels import head_triton

    return head_triton.triton_available()


def head_logprobs(
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
    """log P(target) [N] float32 and is-argmax [N] bool for hidden [N, H], weight [V, H], targets [N].

    The Triton kernels on CUDA when triton is importable, else the reference. vocab_chunk and
    row_chunk shape the reference's blocks only: the kernels use their own fixed tiles (see
    `head_triton`), so the two paths agree to rounding, not bit for bit.
    """
    if hidden.is_cuda and triton_available():
        from evalkit.engine.kernels.head_triton import head_logprobs_triton

        return head_logprobs_triton(
            hidden, weight, targets, bias=bias, logit_scale=logit_scale, softcap=softcap
        )
    return head_logprobs_reference(
        hidden,
        weight,
        targets,
        bias=bias,
        logit_scale=logit_scale,
        softcap=softcap,
        vocab_chunk=vocab_chunk,
        row_chunk=row_chunk,
    )
