"""The device and dtype policy: what "auto" picks on each kind of machine, and what it refuses."""

from __future__ import annotations

import pytest
import torch

from evalkit.errors import ModelError
from evalkit.model.policy import Precision, choose_precision


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def fake_cuda(monkeypatch: pytest.MonkeyPatch, *, bf16: bool, name: str, count: int = 1) -> None:
    """Make this CPU-only torch believe it has `count` CUDA devices called `name`."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 0) if bf16 else (7, 0))


def test_auto_on_cpu_is_float32_reference(no_cuda: None) -> None:
    precision = choose_precision()
    assert precision == Precision(
        "cpu",
        "float32",
        "auto: CPU, float32 (bf16 matmuls are faster on some CPUs but float32 is the reference)",
    )
    assert precision.torch_dtype is torch.float32


def test_auto_on_bf16_gpu_is_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, bf16=True, name="NVIDIA H100 80GB HBM3")
    precision = choose_precision()
    assert (precision.device, precision.dtype) == ("cuda", "bfloat16")
    assert precision.reason == "auto: CUDA device NVIDIA H100 80GB HBM3 supports bf16"
    assert precision.torch_dtype is torch.bfloat16


def test_auto_on_old_gpu_is_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, bf16=False, name="Tesla V100")
    precision = choose_precision("cuda", "auto")
    assert (precision.device, precision.dtype) == ("cuda", "float16")
    assert precision.reason == "auto: CUDA device Tesla V100 has no bf16, using float16"


def test_indexed_cuda_device_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, bf16=True, name="NVIDIA A100", count=2)
    assert choose_precision("cuda:1").device == "cuda:1"
    assert choose_precision("cuda:1").dtype == "bfloat16"


def test_cuda_index_past_the_last_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, bf16=True, name="NVIDIA A100", count=2)
    with pytest.raises(ModelError, match=r"cuda:2.* does not exist: this machine has 2 CUDA device"):
        choose_precision("cuda:2")


def test_explicit_dtype_is_recorded_as_requested(no_cuda: None) -> None:
    assert choose_precision("cpu", "bfloat16") == Precision("cpu", "bfloat16", "requested by --dtype")
    assert choose_precision("auto", "float32").reason == "requested by --dtype"


def test_explicit_float16_on_gpu_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, bf16=True, name="NVIDIA H100")
    assert choose_precision("cuda", "float16") == Precision("cuda", "float16", "requested by --dtype")


def test_float16_on_cpu_is_refused_with_the_fix(no_cuda: None) -> None:
    with pytest.raises(ModelError) as info:
        choose_precision("cpu", "float16")
    assert str(info.value) == (
        "float16 on CPU is ~80x slower than bfloat16 here; use --dtype bfloat16 or float32"
    )
    with pytest.raises(ModelError, match="float16 on CPU"):
        choose_precision("auto", "float16")  # auto resolves to CPU here


def test_cuda_requested_without_cuda_is_refused(no_cuda: None) -> None:
    with pytest.raises(ModelError, match=r"CUDA is not available.*use --device cpu"):
        choose_precision("cuda")
    with pytest.raises(ModelError, match="CUDA is not available"):
        choose_precision("cuda:0", "bfloat16")


def test_unknown_values_suggest_close_matches(no_cuda: None) -> None:
    with pytest.raises(ModelError, match=r"unknown dtype 'bfloat61'; did you mean 'bfloat16'\?"):
        choose_precision("cpu", "bfloat61")
    with pytest.raises(ModelError, match=r"unknown device 'cdua'; did you mean 'cuda'\?"):
        choose_precision("cdua")
    with pytest.raises(ModelError, match=r"unknown device 'tpu'.*choose one of: auto, cpu, cuda"):
        choose_precision("tpu")


def test_errors_are_one_line(no_cuda: None) -> None:
    for device, dtype in [("cdua", "auto"), ("cpu", "half-ish"), ("cuda", "auto"), ("cpu", "float16")]:
        with pytest.raises(ModelError) as info:
            choose_precision(device, dtype)
        assert "\n" not in str(info.value)


def test_common_short_spellings_are_accepted(no_cuda: None) -> None:
    assert choose_precision("CPU", "bf16").dtype == "bfloat16"
    assert choose_precision("cpu", "fp32").dtype == "float32"
