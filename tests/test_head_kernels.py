"""The fused LM-head scorers: the torch reference against a naive full computation, the reference's
batch invariance and bounded memory, and the Triton kernels against the reference (on CPU through
Triton's interpreter where triton is installed, directly on CUDA where there is a GPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from evalkit.engine.kernels import head_logprobs, head_logprobs_reference

REPO = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_CUDA = torch.cuda.is_available()


def _naive(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    logit_scale: float | None = None,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full [N, V] logits in fp32 from the same (possibly bf16) tensors: the obvious computation."""
    logits = F.linear(hidden.float(), weight.float(), None if bias is None else bias.float())
    if logit_scale is not None:
        logits = logits * logit_scale
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    logprob = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
    return logprob, logits.argmax(dim=-1) == targets


def _problem(
    n: int, h: int, v: int, dtype: torch.dtype, seed: int, with_bias: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits of std 0.5 (|x| < ~3), so rounding them to bf16 moves each by at most ~8e-3, well
    inside the 2e-2 tolerance (at |x| in [4, 8) it would be up to 1.6e-2); half the targets are
    the row's argmax, so is_greedy is exercised both ways."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g)
    weight = torch.randn(v, h, generator=g) * (0.5 / h**0.5)
    bias = torch.randn(v, generator=g) * 0.5 if with_bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    logits = F.linear(hidden, weight, bias)
    targets[::2] = logits.argmax(dim=-1)[::2]
    return hidden.to(dtype), weight.to(dtype), targets, None if bias is None else bias.to(dtype)


# --- the reference equals the naive computation --------------------------------------------------

CASES = {
    # name: (N, H, V, vocab_chunk, row_chunk, bias, logit_scale, softcap)
    "plain": (200, 64, 5000, 1024, 128, False, None, None),
    "bias": (200, 64, 5000, 1024, 128, True, None, None),
    "logit_scale": (200, 64, 5000, 1024, 128, False, 0.7, None),
    "softcap": (200, 64, 5000, 1024, 128, False, None, 2.0),
    "bias_scale_softcap": (200, 64, 5000, 1024, 128, True, 1.5, 3.0),
    "one_chunk": (50, 32, 700, 8192, 128, False, None, None),
    "ragged_vocab_and_rows": (131, 48, 3001, 512, 64, True, None, None),
    "tiny_chunks": (9, 16, 257, 16, 4, False, None, None),
    "one_row": (1, 64, 4000, 1000, 128, False, None, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
def test_reference_matches_naive_full_computation(name: str, dtype: torch.dtype, tol: float) -> None:
    n, h, v, vocab_chunk, row_chunk, with_bias, logit_scale, softcap = CASES[name]
    hidden, weight, targets, bias = _problem(n, h, v, dtype, seed=len(name), with_bias=with_bias)
    got, got_greedy = head_logprobs_reference(
        hidden, weight, targets, bias=bias, logit_scale=logit_scale, softcap=softcap,
        vocab_chunk=vocab_chunk, row_chunk=row_chunk,
    )
    want, want_greedy = _naive(hidden, weight, targets, bias, logit_scale, softcap)
    assert got.dtype == torch.float32 and got_greedy.dtype == torch.bool and got.shape == (n,)
    assert (got - want).abs().max().item() <= tol
    if dtype == torch.float32:
        assert torch.equal(got_greedy, want_greedy)
    else:
        # bf16 rounding of the logits may create or break near-ties; the argmax of the model's
        # own (bf16) logits is the one to match.
        model_logits = F.linear(hidden, weight, bias).float()
        if logit_scale is not None:
            model_logits = model_logits * logit_scale
        if softcap is not None:
            model_logits = torch.tanh(model_logits / softcap) * softcap
        assert torch.equal(got_greedy, model_logits.argmax(dim=-1) == targets)
    if n > 1:
        assert got_greedy.any() and not got_greedy.all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_ties_go_to_the_first_index_across_and_within_chunks(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(7)
    h, v = 32, 300
    weight = torch.randn(v, h, generator=g) * 0.1
    top = torch.randn(h, generator=g)
    # Column 5 is every row's maximum; 6 (same chunk) and 200 (a later chunk) are exact copies.
    for j in (5, 6, 200):
        weight[j] = top
    hidden = top.repeat(6, 1) + torch.randn(6, h, generator=g) * 0.01
    targets = torch.tensor([5, 6, 200, 5, 6, 200])
    logprob, greedy = head_logprobs_reference(
        hidden.to(dtype), weight.to(dtype), targets, vocab_chunk=128, row_chunk=4
    )
    assert greedy.tolist() == [True, False, False, True, False, False]
    # Equal logits, equal probabilities.
    assert (logprob[1] - logprob[0]).abs() <= 1e-6 and (logprob[2] - logprob[0]).abs() <= 1e-6


def test_softcap_saturation_ties_go_to_the_first_index() -> None:
    # tanh saturates to exactly 1.0 in fp32: logits 100 and 200 both cap to 2.0.
    weight = torch.zeros(10, 1)
    weight[3, 0], weight[8, 0] = 100.0, 200.0
    hidden = torch.ones(2, 1)
    _, greedy = head_logprobs_reference(hidden, weight, torch.tensor([3, 8]), softcap=2.0, vocab_chunk=4)
    assert greedy.tolist() == [True, False]


# --- batch invariance ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("softcap", [None, 3.0], ids=["nocap", "softcap"])
def test_reference_row_results_do_not_depend_on_other_rows(dtype: torch.dtype, softcap: float | None) -> None:
    hidden, weight, targets, bias = _problem(300, 64, 3000, dtype, seed=11, with_bias=True)
    kwargs: dict[str, Any] = {"bias": bias, "softcap": softcap, "vocab_chunk": 1024}
    full_lp, full_greedy = head_logprobs_reference(hidden, weight, targets, **kwargs)
    rev_lp, rev_greedy = head_logprobs_reference(hidden.flip(0), weight, targets.flip(0), **kwargs)
    for i in (0, 3, 127, 128, 200, 299):
        alone_lp, alone_greedy = head_logprobs_reference(hidden[i:i + 1], weight, targets[i:i + 1], **kwargs)
        seven = torch.tensor([(i + k * 37) % 300 for k in (3, 1, 0, 5, 2, 6, 4)])  # i sits third
        seven_lp, seven_greedy = head_logprobs_reference(hidden[seven], weight, targets[seven], **kwargs)
        for lp, greedy in [
            (alone_lp[0], alone_greedy[0]),
            (seven_lp[2], seven_greedy[2]),
            (full_lp[i], full_greedy[i]),
            (rev_lp[299 - i], rev_greedy[299 - i]),
        ]:
            assert torch.equal(lp, alone_lp[0]) and torch.equal(greedy, alone_greedy[0]), i


def test_reference_empty_input_gives_empty_results() -> None:
    logprob, greedy = head_logprobs_reference(torch.zeros(0, 8), torch.zeros(5, 8), torch.zeros(0, dtype=torch.long))
    assert logprob.shape == (0,) and greedy.shape == (0,) and greedy.dtype == torch.bool


@pytest.mark.parametrize(
    "hidden, weight, targets, message",
    [
        (torch.zeros(2, 8), torch.zeros(5, 8), torch.tensor([0, 5]), "targets must lie in"),
        (torch.zeros(2, 8), torch.zeros(5, 8), torch.tensor([0, -1]), "targets must lie in"),
        (torch.zeros(2, 8), torch.zeros(5, 8, dtype=torch.bfloat16), torch.tensor([0, 1]), "cast hidden"),
        (torch.zeros(2, 8), torch.zeros(5, 7), torch.tensor([0, 1]), "hidden size differs"),
        (torch.zeros(2, 8), torch.zeros(5, 8), torch.tensor([0, 1], dtype=torch.int32), "int64"),
    ],
)
def test_reference_refuses_inputs_it_cannot_score(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        head_logprobs_reference(hidden, weight, targets)


# --- memory --------------------------------------------------------------------------------------


class _LargestOutput(TorchDispatchMode):
    """Records the element count of the largest tensor any aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


def test_reference_never_holds_more_than_one_chunk_of_logits() -> None:
    n, h, v, vocab_chunk, row_chunk = 512, 32, 20000, 4096, 128
    hidden, weight, targets, _ = _problem(n, h, v, torch.float32, seed=3)
    with _LargestOutput() as probe:
        head_logprobs_reference(hidden, weight, targets, softcap=5.0, vocab_chunk=vocab_chunk, row_chunk=row_chunk)
    assert probe.largest <= row_chunk * vocab_chunk  # 524,288 elements, against N x V = 10,240,000


def test_dispatch_uses_the_reference_on_cpu() -> None:
    hidden, weight, targets, _ = _problem(10, 16, 100, torch.float32, seed=5)
    got = head_logprobs(hidden, weight, targets, softcap=2.0)
    want = head_logprobs_reference(hidden, weight, targets, softcap=2.0)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


# --- the Triton kernels --------------------------------------------------------------------------

# Runs in a fresh interpreter because TRITON_INTERPRET is read when a kernel is defined, i.e. when
# head_triton is first imported; setting it in this process would depend on test order.
_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from evalkit.engine.kernels.head_reference import head_logprobs_reference
    from evalkit.engine.kernels.head_triton import head_logprobs_triton

    cases = json.loads(sys.argv[1])
    results = {}
    for name, case in cases.items():
        g = torch.Generator().manual_seed(case["seed"])
        dtype = getattr(torch, case["dtype"])
        n, h, v = case["n"], case["h"], case["v"]
        hidden = torch.randn(n, h, generator=g)
        weight = torch.randn(v, h, generator=g) / h ** 0.5
        copies = case.get("copies_of_0", [])
        if copies:
            weight[copies] = weight[0].clone()
            hidden[: n // 2] = weight[0] * 8  # column 0 and its copies tie for these rows' maximum
        bias = torch.randn(v, generator=g) * 0.5 if case["bias"] else None
        targets = torch.randint(0, v, (n,), generator=g)
        targets[::2] = torch.nn.functional.linear(hidden, weight, bias).argmax(-1)[::2]
        if copies:
            targets[1 : n // 2 : 2] = copies[-1]  # a copy: equal logit, but not the first index
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        kw = dict(bias=bias, logit_scale=case["scale"], softcap=case["softcap"])
        lp, greedy = head_logprobs_triton(hidden, weight, targets, vocab_split=case["split"], **kw)
        ref_lp, ref_greedy = head_logprobs_reference(hidden, weight, targets, **kw)
        results[name] = {
            "max_diff": (lp - ref_lp).abs().max().item(),
            "greedy_equal": bool(torch.equal(greedy, ref_greedy)),
            "n_greedy": int(greedy.sum()),
        }
    print(json.dumps(results))
    """
)

_TRITON_CASES: dict[str, dict[str, Any]] = {
    # V=1000 with splits of 256 and tiles of 128: a ragged last split and a ragged last tile;
    # H=96: a ragged last K tile; N=37 and 150: one partial row block and several.
    "fp32_plain": {"dtype": "float32", "n": 37, "h": 96, "v": 1000, "split": 256},
    "fp32_bias": {"dtype": "float32", "n": 150, "h": 96, "v": 1000, "split": 256, "bias": True},
    "fp32_scale": {"dtype": "float32", "n": 37, "h": 64, "v": 1000, "split": 256, "scale": 0.75},
    "fp32_softcap": {"dtype": "float32", "n": 37, "h": 64, "v": 1000, "split": 256, "softcap": 2.0},
    "fp32_all": {"dtype": "float32", "n": 70, "h": 40, "v": 777, "split": 128, "bias": True, "scale": 1.5,
                 "softcap": 3.0},
    "fp32_one_split": {"dtype": "float32", "n": 20, "h": 32, "v": 500, "split": 2048},
    "fp32_ties": {"dtype": "float32", "n": 20, "h": 32, "v": 600, "split": 256, "copies_of_0": [1, 300]},
    "fp16_bias_softcap": {"dtype": "float16", "n": 37, "h": 96, "v": 1000, "split": 256, "bias": True,
                          "softcap": 2.0},
}
_TRITON_TOL = {"float32": 1e-4, "float16": 5e-3}


def _seeded(cases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    defaults = {"bias": False, "scale": None, "softcap": None}
    return {name: {**defaults, **case, "seed": i} for i, (name, case) in enumerate(sorted(cases.items()))}


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (optional extra `gpu`): interpreter check skipped")
def test_triton_kernel_matches_reference_in_the_interpreter() -> None:
    cases = _seeded(_TRITON_CASES)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_SCRIPT, json.dumps(cases)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, case in cases.items():
        got = results[name]
        assert got["max_diff"] <= _TRITON_TOL[case["dtype"]], (name, got)
        assert got["greedy_equal"] and got["n_greedy"] > 0, (name, got)
    # No batch-invariance check here: the interpreter's tl.dot is numpy's matmul, whose BLAS rounds
    # a row differently depending on its position in the tile. That says nothing about the GPU
    # kernel, whose invariance the CUDA test below checks.


@pytest.mark.skipif(not (HAS_CUDA and HAS_TRITON), reason="needs a CUDA GPU and triton")
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
@pytest.mark.parametrize("softcap", [None, 30.0], ids=["nocap", "softcap"])
def test_triton_kernel_matches_reference_on_cuda(dtype: torch.dtype, tol: float, softcap: float | None) -> None:
    # Llama-like shape at a small N: several row blocks, many vocabulary splits, H in many K tiles.
    hidden, weight, targets, bias = _problem(300, 1024, 32003, dtype, seed=13, with_bias=True)
    hidden, weight, targets, bias = (t.cuda() for t in (hidden, weight, targets, bias))
    got, got_greedy = head_logprobs(hidden, weight, targets, bias=bias, softcap=softcap)
    want, want_greedy = head_logprobs_reference(hidden, weight, targets, bias=bias, softcap=softcap)
    assert (got - want).abs().max().item() <= tol
    # Argmax can flip only where the top two logits are within rounding of each other.
    assert (got_greedy != want_greedy).float().mean().item() <= 0.01
    for i in (0, 64, 299):
        alone, alone_greedy = head_logprobs(hidden[i:i + 1], weight, targets[i:i + 1], bias=bias, softcap=softcap)
        assert torch.equal(alone[0], got[i]) and torch.equal(alone_greedy[0], got_greedy[i])
    rev, _ = head_logprobs(hidden.flip(0), weight, targets.flip(0), bias=bias, softcap=softcap)
    assert torch.equal(rev.flip(0), got)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (optional extra `gpu`): GPU compile check skipped")
@pytest.mark.parametrize("arch, dtype", [(90, "bf16"), (80, "fp32")], ids=["sm90-bf16", "sm80-fp32"])
def test_triton_kernels_compile_for_nvidia_gpus(
    arch: int, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lower both kernels to GPU machine code with Triton's bundled ptxas, no GPU needed: the
    interpreter above runs the kernels' Python, not what the compiler accepts (types, layouts,
    shared memory), so this is the CPU-side guard against a kernel that only fails on a GPU."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set in this process: the kernels are interpreted, not compiled")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # compile for real, not from a cache
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from evalkit.engine.kernels import head_triton as kernels

    target = GPUTarget("cuda", arch, 32)
    f32 = "*fp32"
    partial_signature = {
        "hidden_ptr": f"*{dtype}", "weight_ptr": f"*{dtype}", "bias_ptr": f"*{dtype}", "targets_ptr": "*i64",
        "part_max_ptr": f32, "part_sum_ptr": f32, "part_target_ptr": f32, "part_best_ptr": f32,
        "part_index_ptr": "*i32", "n_rows": "i32", "vocab": "i32", "hidden_size": "i32",
        "stride_hn": "i32", "stride_hk": "i32", "stride_wv": "i32", "stride_wk": "i32",
        "logit_scale": "fp32", "softcap": "fp32",
    }
    constants = {
        "HAS_BIAS": True, "HAS_SCALE": True, "HAS_SOFTCAP": True, "IEEE_FP32": dtype == "fp32",
        "SPLIT": kernels.DEFAULT_VOCAB_SPLIT, "BLOCK_N": kernels.BLOCK_N, "BLOCK_V": kernels.BLOCK_V,
        "BLOCK_K": kernels.BLOCK_K_FP32 if dtype == "fp32" else kernels.BLOCK_K_16BIT,
    }
    signature = {**partial_signature, **dict.fromkeys(constants, "constexpr")}
    compiled = triton.compile(
        ASTSource(kernels._head_partial_kernel, signature, constants),
        target=target,
        options={"num_warps": kernels.NUM_WARPS, "num_stages": kernels.NUM_STAGES, "enable_fp_fusion": False},
    )
    assert compiled.asm.get("cubin") and compiled.metadata.shared <= 64 * 1024
    merge_signature = {
        "part_max_ptr": f32, "part_sum_ptr": f32, "part_target_ptr": f32, "part_best_ptr": f32,
        "part_index_ptr": "*i32", "targets_ptr": "*i64", "logprob_ptr": f32, "greedy_ptr": "*i8",
        "n_rows": "i32", "n_splits": "i32", "SPLIT": "constexpr", "BLOCK_N": "constexpr",
    }
    merge_constants = {"SPLIT": kernels.DEFAULT_VOCAB_SPLIT, "BLOCK_N": kernels.MERGE_BLOCK_N}
    merged = triton.compile(
        ASTSource(kernels._head_merge_kernel, merge_signature, merge_constants),
        target=target,
        options={"num_warps": kernels.NUM_WARPS, "enable_fp_fusion": False},
    )
    assert merged.asm.get("cubin")
