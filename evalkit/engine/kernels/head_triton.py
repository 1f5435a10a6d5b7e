"""The chunked LM-head scorer as a Triton kernel for CUDA: logits never leave the chip.

Same contract as `head_reference.head_logprobs_reference` (which the tests hold it to): per row,
log P(target) and whether the target is the argmax, without materialising N x V logits. Each
program multiplies a BLOCK_N-row tile of hidden states by BLOCK_V-row tiles of the head, in
registers, and folds them into a running fp32 (max, sum of exp), target logit and argmax.

Determinism and batch invariance come from fixed choices, never from timing:
- one fixed set of block sizes and launch options (no autotune: autotune picks kernels by timing,
  and its keys usually include the batch size);
- the vocabulary is cut into splits of a fixed *size* (`vocab_split`, not a fixed number of
  splits), one program per (row block, split), so that a handful of rows still fills the GPU;
  the per-split partials are merged by a second kernel that walks the splits in order 0, 1, 2, ...;
- no atomics, no split-K: the H loop accumulates each tile's dot product in fp32 in order;
- multiply-add contraction is off by name (`enable_fp_fusion=False`), so the elementwise numbers
  do not change with Triton's default for it, which Triton 3.10 flips;
- a row's tile has the same shape whichever rows share it (absent rows are masked to zero), and
  no value crosses rows, so a row's result does not depend on its neighbours.

triton is imported guarded: this module imports (and `triton_available()` answers False) where
triton is not installed, as on CPU-only machines. TRITON_INTERPRET=1, set before this module is
first imported, runs the kernels on CPU tensors through Triton's interpreter (fp32 and fp16 only:
the interpreter stores bf16 as raw uint16 and its dot does not convert it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from evalkit.engine.kernels.head_reference import check_head_inputs

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the reference serves them
    triton = None
    tl = None

# Tile sizes, chosen once (see the module docstring for why they are not tuned per shape).
# A 64 x 128 fp32 accumulator is 64 registers a thread at 4 warps. K tiles are 64 wide for 16-bit
# models and 32 for fp32, so one pipeline stage holds 24 KB of operands either way (hidden
# 64 x K, weight K x 128); two stages (48 KB) fit the shared memory of every GPU Triton targets,
# down to 64 KB on AMD's. The tile depends on the dtype only, never on N.
BLOCK_N = 64
BLOCK_V = 128
BLOCK_K_16BIT = 64
BLOCK_K_FP32 = 32
NUM_WARPS = 4
NUM_STAGES = 2
MERGE_BLOCK_N = 128
# Vocabulary columns per program, a multiple of BLOCK_V. At V = 128k it gives 64 programs per row
# block, so even a few rows spread over half an H100's SMs instead of one.
DEFAULT_VOCAB_SPLIT = 2048


def triton_available() -> bool:
    """Whether the Triton kernels can be built here (triton 3 or later importable)."""
    if triton is None:
        return False
    major = int(str(triton.__version__).split(".")[0])
    return major >= 3  # tl.dot's input_precision argument arrived in triton 3


if triton is not None:

    @triton.jit
    def _tanh(x):
        # tanh from exp: libdevice's tanh has no interpreter implementation. Saturates cleanly:
        # exp overflowing to inf gives 1, underflowing to 0 gives -1.
        return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)

    @triton.jit
    def _head_partial_kernel(
        hidden_ptr, weight_ptr, bias_ptr, targets_ptr,
        part_max_ptr, part_sum_ptr, part_target_ptr, part_best_ptr, part_index_ptr,
        n_rows, vocab, hidden_size,
        stride_hn, stride_hk, stride_wv, stride_wk,
        logit_scale, softcap,
        HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
        IEEE_FP32: tl.constexpr, SPLIT: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        """One (row block, vocabulary split): partial max, sum of exp, target logit, argmax.

        Partials are [n_splits, n_rows] buffers; a row whose target is outside this split stores
        a target logit of 0, which the merge ignores.
        """
        pid_row = tl.program_id(0)
        pid_split = tl.program_id(1)
        rows = pid_row * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < n_rows
        rows64 = rows.to(tl.int64)  # V x H and N x H exceed 2**31 elements for large heads
        targets = tl.load(targets_ptr + rows64, mask=row_ok, other=0)
        ks = tl.arange(0, BLOCK_K)

        run_max = tl.full([BLOCK_N], float("-inf"), tl.float32)
        run_sum = tl.zeros([BLOCK_N], tl.float32)
        target_logit = tl.zeros([BLOCK_N], tl.float32)
        best = tl.full([BLOCK_N], float("-inf"), tl.float32)
        best_index = tl.zeros([BLOCK_N], tl.int32)

        v_start = pid_split * SPLIT
        v_end = tl.minimum(v_start + SPLIT, vocab)
        for v0 in range(v_start, v_end, BLOCK_V):
            cols = v0 + tl.arange(0, BLOCK_V)
            col_ok = cols < vocab
            cols64 = cols.to(tl.int64)
            acc = tl.zeros([BLOCK_N, BLOCK_V], tl.float32)
            for k0 in range(0, hidden_size, BLOCK_K):
                k = k0 + ks
                k_ok = k < hidden_size
                h = tl.load(
                    hidden_ptr + rows64[:, None] * stride_hn + k[None, :] * stride_hk,
                    mask=row_ok[:, None] & k_ok[None, :], other=0.0,
                )
                # The weight tile is loaded transposed, [BLOCK_K, BLOCK_V], ready for the dot.
                w = tl.load(
                    weight_ptr + cols64[None, :] * stride_wv + k[:, None] * stride_wk,
                    mask=col_ok[None, :] & k_ok[:, None], other=0.0,
                )
                if IEEE_FP32:
                    # fp32 models: full-precision products, as torch with TF32 off.
                    acc = tl.dot(h, w, acc, input_precision="ieee")
                else:
                    acc = tl.dot(h, w, acc)
            if HAS_BIAS:
                acc += tl.load(bias_ptr + cols64, mask=col_ok, other=0.0).to(tl.float32)[None, :]
            # Round to the model dtype and back, as nn.Linear's bf16/fp16 output is before the
            # upcast: the numbers are the model's own logits. A no-op for fp32.
            logits = acc.to(hidden_ptr.dtype.element_ty).to(tl.float32)
            if HAS_SCALE:
                logits = logits * logit_scale
            if HAS_SOFTCAP:
                logits = _tanh(logits / softcap) * softcap
            logits = tl.where(col_ok[None, :], logits, float("-inf"))

            # The target column appears at most once; every other term added is an exact zero.
            hit = cols64[None, :] == targets[:, None]
            target_logit += tl.sum(tl.where(hit, logits, 0.0), axis=1)
            # First maximal column of the tile; a later tile must be strictly greater to win.
            tile_max = tl.max(logits, axis=1)
            tile_index = tl.min(tl.where(logits == tile_max[:, None], cols[None, :], vocab), axis=1)
            better = tile_max > best
            best = tl.where(better, tile_max, best)
            best_index = tl.where(better, tile_index, best_index)
            new_max = tl.maximum(run_max, tile_max)
            run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
            run_max = new_max

        out = pid_split.to(tl.int64) * n_rows + rows64
        tl.store(part_max_ptr + out, run_max, mask=row_ok)
        tl.store(part_sum_ptr + out, run_sum, mask=row_ok)
        tl.store(part_target_ptr + out, target_logit, mask=row_ok)
        tl.store(part_best_ptr + out, best, mask=row_ok)
        tl.store(part_index_ptr + out, best_index, mask=row_ok)

    @triton.jit
    def _head_merge_kernel(
        part_max_ptr, part_sum_ptr, part_target_ptr, part_best_ptr, part_index_ptr,
        targets_ptr, logprob_ptr, greedy_ptr,
        n_rows, n_splits,
        SPLIT: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        """Fold the per-split partials of each row in split order 0, 1, 2, ... (a fixed order)."""
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < n_rows
        rows64 = rows.to(tl.int64)
        targets = tl.load(targets_ptr + rows64, mask=row_ok, other=0)
        target_split = targets // SPLIT

        run_max = tl.full([BLOCK_N], float("-inf"), tl.float32)
        run_sum = tl.zeros([BLOCK_N], tl.float32)
        target_logit = tl.zeros([BLOCK_N], tl.float32)
        best = tl.full([BLOCK_N], float("-inf"), tl.float32)
        best_index = tl.zeros([BLOCK_N], tl.int32)
        for j in range(n_splits):
            at = j * n_rows + rows64
            part_max = tl.load(part_max_ptr + at, mask=row_ok, other=0.0)
            # Absent rows read a sum of 1, not 0, so their (discarded) log stays finite.
            part_sum = tl.load(part_sum_ptr + at, mask=row_ok, other=1.0)
            new_max = tl.maximum(run_max, part_max)
            run_sum = run_sum * tl.exp(run_max - new_max) + part_sum * tl.exp(part_max - new_max)
            run_max = new_max
            part_target = tl.load(part_target_ptr + at, mask=row_ok, other=0.0)
            target_logit = tl.where(target_split == j, part_target, target_logit)
            part_best = tl.load(part_best_ptr + at, mask=row_ok, other=0.0)
            part_index = tl.load(part_index_ptr + at, mask=row_ok, other=0)
            better = part_best > best
            best = tl.where(better, part_best, best)
            best_index = tl.where(better, part_index, best_index)

        logprob = target_logit - (run_max + tl.log(run_sum))
        tl.store(logprob_ptr + rows64, logprob, mask=row_ok)
        tl.store(greedy_ptr + rows64, (best_index.to(tl.int64) == targets).to(tl.int8), mask=row_ok)


def head_logprobs_triton(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    bias: Tensor | None = None,
    logit_scale: float | None = None,
    softcap: float | None = None,
    vocab_split: int = DEFAULT_VOCAB_SPLIT,
) -> tuple[Tensor, Tensor]:
    """log P(target) and whether the target is the argmax, for each row, by the Triton kernels.

    hidden: [N, H] (model dtype); weight: [V, H]; targets: [N] int64; bias: [V] or None.
    Returns (logprob [N] float32, is_greedy [N] bool). Same logits as the reference: matmul in
    fp32, rounded to the model dtype, then fp32 `* logit_scale`, then `tanh(x / softcap) * softcap`.
    vocab_split: vocabulary columns per program, a positive multiple of BLOCK_V (it changes the
    merge tree, so keep it fixed across runs that must agree bit for bit).
    """
    if not triton_available():
        raise RuntimeError("triton>=3 is not installed: use head_logprobs_reference, or install triton")
    if vocab_split <= 0 or vocab_split % BLOCK_V:
        raise ValueError(f"vocab_split must be a positive multiple of {BLOCK_V}; got {vocab_split}")
    check_head_inputs(hidden, weight, targets, bias, softcap)
    if hidden.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"the Triton head supports float32, float16 and bfloat16; got {hidden.dtype}")
    n, hidden_size = hidden.shape
    vocab = weight.shape[0]
    device = hidden.device
    logprob = torch.empty(n, dtype=torch.float32, device=device)
    greedy = torch.empty(n, dtype=torch.int8, device=device)
    if n == 0:
        return logprob, greedy.bool()
    targets = targets.contiguous()
    n_splits = triton.cdiv(vocab, vocab_split)
    parts = torch.empty((4, n_splits, n), dtype=torch.float32, device=device)
    part_index = torch.empty((n_splits, n), dtype=torch.int32, device=device)
    _head_partial_kernel[(triton.cdiv(n, BLOCK_N), n_splits)](
        hidden, weight, hidden if bias is None else bias.contiguous(), targets,
        parts[0], parts[1], parts[2], parts[3], part_index,
        n, vocab, hidden_size,
        hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
        1.0 if logit_scale is None else float(logit_scale), 1.0 if softcap is None else float(softcap),
        HAS_BIAS=bias is not None, HAS_SCALE=logit_scale is not None, HAS_SOFTCAP=softcap is not None,
        IEEE_FP32=hidden.dtype == torch.float32, SPLIT=vocab_split,
        BLOCK_N=BLOCK_N, BLOCK_V=BLOCK_V,
        BLOCK_K=BLOCK_K_FP32 if hidden.dtype == torch.float32 else BLOCK_K_16BIT,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES, enable_fp_fusion=False,
    )
    _head_merge_kernel[(triton.cdiv(n, MERGE_BLOCK_N),)](
        parts[0], parts[1], parts[2], parts[3], part_index,
        targets, logprob, greedy,
        n, n_splits,
        SPLIT=vocab_split, BLOCK_N=MERGE_BLOCK_N,
        num_warps=NUM_WARPS, enable_fp_fusion=False,
    )
    return logprob, greedy.bool()
