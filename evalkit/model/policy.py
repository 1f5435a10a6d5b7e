"""Device and dtype policy: which hardware and number format a run uses, and why.

The choice is made once, checked against the machine, and recorded with a one-sentence reason so a
report can say not only *what* precision produced its numbers but *why* that precision was chosen.
"auto" picks bf16 on CUDA devices that do it natively, fp16 on older CUDA devices, and fp32 on CPU
(the reference: bf16 matmuls are faster on some CPUs, but fp32 is what other numbers are checked
against). Requests that cannot work, or would be absurdly slow, are refused with the fix.

torch is imported inside the functions so that importing `evalkit.model` (for example to verify a
manifest) stays cheap.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.errors import ModelError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES = ("auto", "float32", "bfloat16", "float16")

_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


@dataclass(frozen=True)
class Precision:
    """Where the model runs and in which number format, with the reason for the choice."""

    device: str  # "cpu", "cuda" or "cuda:N"
    dtype: str  # "float32", "bfloat16" or "float16"
    reason: str  # one sentence, recorded in the report

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def _suggest(value: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _parse_device(device: str) -> tuple[str, int | None]:
    """Normalise a device string; returns ("cpu" | "cuda" | "auto", cuda index or None)."""
    value = device.strip().lower()
    if value in ("auto", "cpu", "cuda"):
        return value, None
    match = _CUDA_INDEX.match(value)
    if match:
        return "cuda", int(match.group(1))
    raise ModelError(
        f"unknown device {device!r}{_suggest(value, DEVICES)} (choose one of: {', '.join(DEVICES)})"
    )


def _parse_dtype(dtype: str) -> str:
    value = dtype.strip().lower()
    # Common spellings people type; mapping them is kinder than refusing.
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    value = aliases.get(value, value)
    if value in DTYPES:
        return value
    raise ModelError(f"unknown dtype {dtype!r}{_suggest(value, DTYPES)} (choose one of: {', '.join(DTYPES)})")


def _cuda_name(index: int | None) -> str:
    import torch

    try:
        return torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device())
    except Exception:  # noqa: BLE001 - the name only feeds the reason sentence; never fail on it
        return "(unknown)"


def _cuda_bf16_native(index: int | None) -> bool:
    """Whether the device does bf16 in hardware (Ampere or later); emulated bf16 is slow."""
    import torch

    try:
        if index is None or index == torch.cuda.current_device():
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        if torch.version.hip:  # every ROCm device torch supports does bf16
            return True
        return torch.cuda.get_device_capability(index)[0] >= 8
    except Exception:  # noqa: BLE001 - a device that cannot say is treated as having no bf16
        return False


def choose_precision(device: str = "auto", dtype: str = "auto") -> Precision:
    """Choose and check the device and dtype for a run.

    device: auto | cpu | cuda | cuda:N. dtype: auto | float32 | bfloat16 | float16.
    Raises ModelError (one line, with the fix) for unknown values, CUDA asked for but absent, a
    CUDA index past the last device, and float16 on CPU.
    """
    import torch

    kind, index = _parse_device(device)
    wanted = _parse_dtype(dtype)

    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} asked for but CUDA is not available here "
                "(no GPU, or a CPU-only torch build); use --device cpu"
            )
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise ModelError(
                f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    resolved = "cpu" if kind == "cpu" else ("cuda" if index is None else f"cuda:{index}")

    if wanted != "auto":
        if resolved == "cpu" and wanted == "float16":
            # CPU kernels for fp16 matmuls are scalar fallbacks on most builds.
            raise ModelError(
                "float16 on CPU is ~80x slower than bfloat16 here; use --dtype bfloat16 or float32"
            )
        return Precision(resolved, wanted, "requested by --dtype")

    if resolved == "cpu":
        return Precision(
            "cpu",
            "float32",
            "auto: CPU, float32 (bf16 matmuls are faster on some CPUs but float32 is the reference)",
        )
    name = _cuda_name(index)
    if _cuda_bf16_native(index):
        return Precision(resolved, "bfloat16", f"auto: CUDA device {name} supports bf16")
    return Precision(resolved, "float16", f"auto: CUDA device {name} has no bf16, using float16")
