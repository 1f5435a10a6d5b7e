"""What the run ran on: software versions, hardware, the evalkit commit. Recorded in every report."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import evalkit


def git_commit() -> str | None:
    """The commit of the evalkit checkout, read from .git without running git; None if installed."""
    git = Path(evalkit.__file__).resolve().parent.parent / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(device: str) -> dict[str, Any]:
    import os

    import torch
    import transformers

    hardware = f"{_cpu_name()}, {os.cpu_count()} logical CPUs"
    gpu = None
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        gpu = torch.cuda.get_device_name(index)
        hardware = f"{gpu} ({hardware})"
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "gpu": gpu,
        "hardware": hardware,
        "torch_threads": torch.get_num_threads(),
    }
