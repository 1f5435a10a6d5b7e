"""Plumbing shared by the benchmark scripts: offline set-up, child-process workers, timing, the
machine's matmul rate. Imported by bench_scoring.py and bench_generate.py (same folder)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing evalkit

# No hub access, ever: set before anything imports huggingface_hub.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class OutOfTime(BaseException):
    """Raised in a worker by SIGALRM; a BaseException so no `except Exception` swallows it."""


class time_limit:
    """Raise OutOfTime in the block after `seconds` (None: no limit). SIGALRM, main thread only."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds

    def __enter__(self) -> None:
        if self.seconds:
            signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _expire(signum: int, frame: object) -> None:
        raise OutOfTime()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def warm_up(model: Any, device: str) -> None:
    """One tiny forward outside the timed part, the same for every system (first-call set-up)."""
    import torch

    with torch.inference_mode():
        model(torch.ones((1, 8), dtype=torch.long, device=model.device))
    synchronize(device)


def measure_matmul(device: str, dtype: str, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of the best of `repeats` size x size matmuls in `dtype` on `device`."""
    import torch

    a = torch.randn(size, size, dtype=getattr(torch, dtype), device=device)
    b = torch.randn(size, size, dtype=getattr(torch, dtype), device=device)
    best = math.inf
    for _ in range(repeats + 2):  # the first two warm up
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def spawn_worker(script: str, opts: dict[str, Any], workdir: Path, label: str) -> dict[str, Any]:
    """Run `script --worker OPTS` in a child process; its JSON result, or {"failed": reason} with the
    end of its log. A child per run measures each system's peak memory on its own."""
    out, log_file = workdir / f"{label}.json", workdir / f"{label}.log"
    opts = {**opts, "out": str(out)}
    # The worker stops its own timed part (time_limit); this only catches a worker that hangs.
    hard_limit = opts["time_limit"] + 600 if opts.get("time_limit") else None
    start = time.perf_counter()
    with log_file.open("w") as stream:
        try:
            code = subprocess.run(
                [sys.executable, script, "--worker", json.dumps(opts)],
                stdout=stream,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=hard_limit,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0 or not out.is_file():
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
        return {"failed": f"exit {code}: " + " | ".join(tail)}
    return {**json.loads(out.read_text()), "wall_seconds": time.perf_counter() - start}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_mem_limit_mb() -> int:
    """70% of the memory available now: a runaway child fails to allocate, nothing gets killed."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(int(line.split()[1]) * 0.7 / 1024)
    except OSError:
        pass
    return 0


def body_parameters(model: Any) -> int:
    """Parameters outside the input embeddings and the LM head (the per-token matmul work)."""
    skip = {
        id(p)
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        if m is not None
        for p in m.parameters()
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
