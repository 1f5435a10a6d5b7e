"""One prepared script for a lent GPU session: every check that needs a GPU, time-boxed, one report.

GPU time comes in short, rare slots (about 15 minutes, start-up included), so this runs everything
we cannot check on a CPU in one go, records every number, and never overruns its budget:

1. triton_head: the Triton LM-head kernel (`kernels/head_triton.py`) against the torch reference
   (`kernels/head_reference.py`) on CUDA, fp32 and bf16, N in 1/7/300/4096 rows, H 576/2048,
   V 49152 and a ragged 50257, with and without bias + logit_scale + softcap: max |Δ logprob|,
   greedy agreement and row invariance, against the tolerances of tests/test_head_kernels.py;
   kernel and reference times (informative only).
2. bf16_vs_fp32: bundled-suite log-likelihood requests (MMLU 0-shot and 5-shot, PIQA) scored by
   the Engine in fp32 and in bf16, each against a plain unbatched transformers forward in fp32
   with an fp64 log-softmax: max/mean |Δ| per request and per token, argmax-choice agreement.
3. batch_invariance: Engine log-likelihoods at max_rows 1, 7, 64 and reversed order must be
   bit-identical (fp32 and bf16); the report's own self-tests (invariance_self_test,
   generation_self_test); greedy generation identical at 1, 4 and 16 slots.
4. benchmarks: scripts/bench_scoring.py and scripts/bench_generate.py as subprocesses on a
   random-weight ~1B Llama (built from a config, bf16), and bench_scoring in fp32 on the small model.

Nothing needs the network. The small model is the installed default model (SmolLM2-135M) when
present, else random weights from its config. The tokenizer is, in order: --tokenizer, the small
model's, the default model's, or a byte-level BPE trained here on the bundled suites' text (same
vocabulary size as SmolLM2's; token counts then differ somewhat from a real tokenizer's).

    .venv/bin/python scripts/gpu_check.py --out $OUT              # CUDA: about 8 minutes
    python scripts/gpu_check.py --device cpu --smoke --out /tmp/gc  # CI: every stage, tiny, < 1 min

Writes gpu_check.json (every number, pass/fail per stage, versions, GPU) and gpu_check.md (tables to
paste into an issue note) into --out, after every stage, so a run cut short still leaves its
results. Exit 0: every check ran and passed; 1: a check failed, errored or ran out of time;
2: bad usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(SCRIPTS))  # bench_scoring's workload builder

# No hub access, ever: set before anything imports huggingface_hub (as benchlib does).
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --------------------------------------------------------------------------------------------
# what is checked, and against what

# From tests/test_head_kernels.py: kernel vs reference on CUDA (fp32 1e-4, bf16 2e-2), and in the
# interpreter (fp16 5e-3; the interpreter cannot run bf16). Argmax may flip only at near-ties: at
# most 1% of rows, as the CUDA test allows.
HEAD_TOL = {"float32": 1e-4, "bfloat16": 2e-2, "float16": 5e-3}
HEAD_GREEDY_MISMATCH = 0.01
# The "all" variant: bias, a logit scale below 1 (above 1 it would stretch one bf16 rounding step
# of a logit past the 2e-2 tolerance) and Gemma 2's softcap of 30.
HEAD_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"bias": False, "logit_scale": None, "softcap": None},
    "bias+scale+softcap": {"bias": True, "logit_scale": 0.75, "softcap": 30.0},
}
# Engine fp32 vs the unbatched fp32 forward: a summed log-probability of up to ~30 tokens through
# 30 layers differs by rounding only (~1e-5 a token); a misaligned or mis-masked token moves it by
# more than 0.1.
FP32_MAX_ABS = 1e-3
# bf16 vs the fp32 reference: SmolLM2-135M's real weights on a CPU give a mean |Δ| of 0.10 a token
# (0.5 at most) and the same choice on 38 of 38 items. Choices closer than that may swap; a wrong
# cast or a misaligned token costs nats a token, and many swapped choices.
BF16_MIN_CHOICE_AGREEMENT = 0.9
BF16_MAX_MEAN_ABS_PER_TOKEN = 0.25

# SmolLM2-135M's shape: the small model when the installed default model is absent.
SMALL_CONFIG = {
    "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "intermediate_size": 1536, "max_position_embeddings": 8192, "rope_theta": 100000.0,
    "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
}
# A ~1.07B Llama (Llama-3.2-1B-like body, SmolLM2's vocabulary): large enough to fill the chip.
LARGE_CONFIG = {
    "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 8192, "max_position_embeddings": 8192, "rope_theta": 500000.0,
    "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
}
TINY_CONFIG = {
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 128, "max_position_embeddings": 2048, "tie_word_embeddings": False,
}
TINY_LARGE_CONFIG = {**TINY_CONFIG, "hidden_size": 128, "intermediate_size": 256, "tie_word_embeddings": True}


@dataclass(frozen=True)
class Sizes:
    """How big each stage is: full on a GPU, tiny in smoke mode. caps: most seconds per stage."""

    head_rows: tuple[int, ...]
    head_shapes: tuple[tuple[int, int], ...]  # (H, V)
    head_vocab_split: int | None  # None: the kernel's default
    head_repeats: int
    workload_items: dict[str, int]  # bench_scoring workload -> items, for stages 2 and 3
    generate_requests: int
    generate_max_new: int
    tokenizer_vocab: int
    small_config: dict[str, Any] | None  # None: SmolLM2's (or the installed default model)
    large_config: dict[str, Any]
    caps: dict[str, float]
    bench_scoring_large: list[str]
    bench_generate_large: list[str]
    bench_scoring_small: list[str]


def full_sizes(args: argparse.Namespace) -> Sizes:
    return Sizes(
        head_rows=(1, 7, 300, 4096),
        head_shapes=((576, 49152), (576, 50257), (2048, 49152), (2048, 50257)),
        head_vocab_split=None,
        head_repeats=5,
        workload_items={"mmlu_0shot": 40, "cloze": 40, "mmlu_5shot": 8},
        generate_requests=20,
        generate_max_new=24,
        tokenizer_vocab=49152,
        small_config=None,
        large_config=LARGE_CONFIG,
        caps={
            "triton_head": 100, "prepare_models": 60, "bf16_vs_fp32": 60, "batch_invariance": 90, "build_large_model": 60,
            "bench_scoring_large_bf16": 170, "bench_generate_large_bf16": 150, "bench_scoring_small_fp32": 90,
        },
        bench_scoring_large=["--workloads", "mmlu_0shot,cloze", "--n-items", str(args.n_items)],
        bench_generate_large=[
            "--workloads", "gsm8k", "--n-prompts", str(args.n_prompts), "--slots", str(args.slots),
            "--lmeval-batch-sizes", "64", "--decode-slots", f"{args.slots},{2 * args.slots}",
        ],
        bench_scoring_small=["--workloads", "mmlu_0shot", "--n-items", "100"],
    )


def smoke_sizes(args: argparse.Namespace) -> Sizes:
    return Sizes(
        head_rows=(1, 7, 70),
        head_shapes=((64, 1000), (96, 777)),
        head_vocab_split=256,  # several splits and a ragged last one, as at full size
        head_repeats=1,
        workload_items={"mmlu_0shot": 4, "cloze": 3, "mmlu_5shot": 2},
        generate_requests=8,
        generate_max_new=10,
        tokenizer_vocab=4096,
        small_config=TINY_CONFIG,
        large_config=TINY_LARGE_CONFIG,
        caps=dict.fromkeys(full_sizes(args).caps, 120.0),
        bench_scoring_large=["--workloads", "mmlu_0shot", "--n-items", "2"],
        # lm-eval's workers each take seconds to start; --with-lm-eval brings them back.
        bench_generate_large=["--workloads", "gsm8k", "--n-prompts", "2", "--slots", "2", "--decode-slots", "2", "--decode-tokens", "4"]
        + ([] if args.with_lm_eval else ["--lmeval-batch-sizes="]),
        bench_scoring_small=["--workloads", "mmlu_0shot", "--n-items", "2"],
    )


# --------------------------------------------------------------------------------------------
# plumbing: the clock, the report, progress


class Clock:
    def __init__(self, budget_s: float):
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


class OutOfTime(Exception):
    """A stage's deadline passed between two of its steps; what it measured so far is kept."""


def say(clock: Clock, message: str) -> None:
    print(f"[gpu_check {clock.elapsed():6.1f}s] {message}", flush=True)


def finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become strings (json would write bare NaN, which is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


@dataclass
class Report:
    out: Path
    header: dict[str, Any]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ok(self) -> bool:
        return all(s["status"] in ("pass", "skipped") for s in self.stages.values())

    def write(self, clock: Clock, done: bool = False) -> None:
        data = {
            **self.header,
            "elapsed_s": round(clock.elapsed(), 1),
            "finished": done,
            "ok": self.ok(),
            "stages": self.stages,
        }
        (self.out / "gpu_check.json").write_text(json.dumps(finite(data), indent=2) + "\n")
        try:
            note = markdown(data)
        except Exception as exc:  # noqa: BLE001 - the JSON above holds every number; never lose a run to a table
            note = f"### gpu_check: the markdown could not be written ({type(exc).__name__}: {exc}); see gpu_check.json\n"
        (self.out / "gpu_check.md").write_text(note)


STATUSES = ("pass", "fail", "error", "out_of_time", "skipped")


def run_stage(
    name: str, report: Report, clock: Clock, cap: float, need: float,
    body: Callable[[float, dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Run one stage with a deadline of min(cap, what the budget has left); record what it returns.

    `body(deadline, partial)` returns a dict with at least "status", and keeps what it has measured
    so far in `partial`: an exception becomes status "error" and OutOfTime "out_of_time", both with
    the partial numbers (the other stages still run). A stage that cannot get `need` seconds is not
    started: "skipped: out of time" (and the run does not pass).
    """
    left = clock.left()
    if left < need:
        record = {"status": "out_of_time", "passed": False, "note": f"skipped: out of time ({max(0.0, left):.0f} s left)"}
        say(clock, f"{name}: skipped, out of time")
    else:
        deadline = time.perf_counter() + min(cap, left)
        started = time.perf_counter()
        say(clock, f"{name}: started (up to {min(cap, left):.0f} s)")
        partial: dict[str, Any] = {}
        try:
            record = body(deadline, partial)
        except OutOfTime as stop:
            record = {**partial, "status": "out_of_time", "note": f"stopped: out of time ({stop})"}
        except Exception as exc:  # noqa: BLE001 - one stage's bug must not cost the other stages' numbers
            lines = traceback.format_exc().strip().splitlines()
            record = {**partial, "status": "error", "note": f"{type(exc).__name__}: {exc}"[:500],
                      "traceback": lines[-12:]}
        record["seconds"] = round(time.perf_counter() - started, 2)
        free_gpu_cache()
        record["passed"] = None if record["status"] == "skipped" else record["status"] == "pass"
        say(clock, f"{name}: {record['status']}" + (f" ({record['note']})" if record.get("note") else ""))
    assert record["status"] in STATUSES, record["status"]
    report.stages[name] = record
    report.write(clock)
    return record


def free_gpu_cache() -> None:
    """Hand a finished stage's cached GPU memory back, for the benchmarks' worker processes."""
    import torch

    if torch.cuda.is_available():
        gc.collect()
        # After a kernel fault the CUDA context is broken and this raises too: later in-process
        # stages will report that themselves, and the benchmarks run in fresh processes.
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


def check_time(deadline: float, what: str) -> None:
    if time.perf_counter() > deadline:
        raise OutOfTime(f"before {what}")


# --------------------------------------------------------------------------------------------
# environment


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": version_of("transformers"),
        "tokenizers": version_of("tokenizers"),
        "triton": version_of("triton"),
        "lm_eval": version_of("lm_eval") or version_of("lm-eval"),
        # Not imported: vllm initialises CUDA and takes seconds.
        "vllm": version_of("vllm") if importlib.util.find_spec("vllm") is not None else None,
        "rich": version_of("rich"),
        "evalkit_commit": _git_commit(),
    }
    if device.startswith("cuda"):
        try:
            props = torch.cuda.get_device_properties(torch.device(device).index or 0)
            env.update({
                "gpu": props.name,
                "gpu_capability": f"{props.major}.{props.minor}",
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "gpu_count": torch.cuda.device_count(),
                "cudnn": torch.backends.cudnn.version(),
                "nvidia_driver": _nvidia_driver(),
            })
        except Exception as exc:  # noqa: BLE001 - a device that cannot describe itself may still run the checks
            env["gpu_error"] = f"{type(exc).__name__}: {exc}"
    return env


def _git_commit() -> str | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=False, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):  # the driver version is a nicety, never a reason to stop
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


# --------------------------------------------------------------------------------------------
# tokenizer and model folders, offline

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (  # as SmolLM2 uses it, without its default system prompt (tests/conftest.py)
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TRAINING_SUITES = ("mmlu", "piqa", "gsm8k", "truthfulqa_mc", "xstest")


def train_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE trained on the bundled suites' text (seconds): any text encodes, and the
    suites' text splits into realistic numbers of tokens. The fallback when no tokenizer is here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from evalkit.paths import bundled_suites_dir
    from evalkit.suite import load_suite

    texts: list[str] = []
    for name in TRAINING_SUITES:
        for sample in load_suite(bundled_suites_dir() / name).eval_samples:
            for value in sample.fields.values():
                values = value if isinstance(value, (list, tuple)) else [value]
                texts.extend(v for v in values if isinstance(v, str))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=EOS,
        additional_special_tokens=SPECIAL_TOKENS[1:], clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def resolve_tokenizer(args: argparse.Namespace, sizes: Sizes) -> tuple[Any, str]:
    """(tokenizer, where it came from)."""
    from transformers import AutoTokenizer

    from evalkit.model import default_model_dir
    from evalkit.model.default_model import is_installed

    candidates = [args.tokenizer, args.small_model] + ([default_model_dir()] if is_installed() else [])
    for folder in candidates:
        if folder is not None:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer, str(folder)
    return train_tokenizer(sizes.tokenizer_vocab), f"byte-level BPE trained on the bundled suites (vocab {sizes.tokenizer_vocab})"


def build_model_dir(folder: Path, shape: dict[str, Any], tokenizer: Any, *, device: str, dtype: str, seed: int) -> int:
    """Save a random-weight Llama of `shape` (seeded), with `tokenizer`, as a safetensors folder
    `evalkit.model.load_model` accepts (config.json, *.safetensors, tokenizer). Returns parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos, **shape,
    )
    from evalkit.model.loader import quiet_transformers

    torch.manual_seed(seed)
    with torch.device(device):  # initialising 1B parameters on a GPU takes a second, on a CPU far longer
        model = LlamaForCausalLM(config)
    # Saved from the CPU: the writer then never depends on how it treats device tensors.
    model = model.to("cpu", getattr(torch, dtype)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():  # no progress bars in the progress lines
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def prepare_small_model(args: argparse.Namespace, sizes: Sizes, tokenizer: Any, work: Path) -> SmallModels:
    """The given or installed checkpoint (real weights), else random weights of SmolLM2's shape
    (tiny in smoke mode), saved in fp32 like the default model."""
    from evalkit.model import default_model_dir
    from evalkit.model.default_model import is_installed

    if args.small_model is not None:
        return SmallModels(args.small_model, f"{args.small_model} (its own weights)")
    if sizes.small_config is None and is_installed():
        return SmallModels(default_model_dir(), f"{default_model_dir()} (SmolLM2-135M-Instruct weights)")
    folder = work / "small"
    n_params = build_model_dir(folder, sizes.small_config or SMALL_CONFIG, tokenizer, device=args.device,
                               dtype="float32", seed=0)
    label = "tiny" if args.smoke else "SmolLM2-135M-shaped"
    return SmallModels(folder, f"random weights, {label} Llama ({n_params / 1e6:.1f}M parameters)")


# --------------------------------------------------------------------------------------------
# stage 1: the Triton head kernel against the torch reference


def head_problem(n: int, h: int, v: int, device: str, seed: int) -> dict[str, Any]:
    """As tests/test_head_kernels.py's `_problem`: logits of std 0.5 (|x| < ~3, so bf16 rounding
    stays inside the tolerance) and half the targets the row's argmax (with and without the bias),
    so is_greedy is exercised both ways. fp32; cast per dtype by the caller."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator(device=device).manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, device=device)
    weight = torch.randn(v, h, generator=g, device=device) * (0.5 / h**0.5)
    bias = torch.randn(v, generator=g, device=device) * 0.5
    targets = {}
    for with_bias in (False, True):
        t = torch.randint(0, v, (n,), generator=g, device=device)
        t[::2] = F.linear(hidden, weight, bias if with_bias else None).argmax(dim=-1)[::2]
        targets[with_bias] = t
    return {"hidden": hidden, "weight": weight, "bias": bias, "targets": targets}


def time_ms(fn: Callable[[], Any], device: str, repeats: int) -> float:
    """Median milliseconds of `repeats` calls (after the caller's warm-up call)."""
    import torch

    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def stage_triton_head(device: str, sizes: Sizes, deadline: float, partial: dict[str, Any]) -> dict[str, Any]:
    import torch

    from evalkit.engine.kernels import head_triton

    interpreted = not device.startswith("cuda")
    if not head_triton.triton_available():
        if interpreted:
            return {"status": "skipped", "note": "skipped: triton not installed (CPU interpreter check needs it)"}
        return {"status": "fail", "note": "triton>=3 is not installed: the CUDA head falls back to the reference"}
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference must be fp32, as in a run
    # The interpreter stores bf16 as raw uint16 and its dot does not convert it: fp16 stands in.
    dtypes = ("float32", "float16") if interpreted else ("float32", "bfloat16")
    cases: list[dict[str, Any]] = []
    partial.update({
        "mode": "interpreter" if interpreted else "cuda", "dtypes": list(dtypes), "cases": cases,
        "tolerances": {d: HEAD_TOL[d] for d in dtypes}, "greedy_mismatch_max": HEAD_GREEDY_MISMATCH,
        "vocab_split": sizes.head_vocab_split or head_triton.DEFAULT_VOCAB_SPLIT,
    })
    for seed, (h, v) in enumerate(sizes.head_shapes):
        check_time(deadline, f"H={h} V={v}")
        problem = head_problem(max(sizes.head_rows), h, v, device, seed)
        for dtype in dtypes:
            torch_dtype = getattr(torch, dtype)
            hidden_all, weight = problem["hidden"].to(torch_dtype), problem["weight"].to(torch_dtype)
            for variant, options in HEAD_VARIANTS.items():
                bias = problem["bias"].to(torch_dtype) if options["bias"] else None
                kw = {"bias": bias, "logit_scale": options["logit_scale"], "softcap": options["softcap"]}
                for n in sizes.head_rows:
                    check_time(deadline, f"H={h} V={v} {dtype} {variant} N={n}")
                    targets = problem["targets"][options["bias"]][:n]
                    case = head_case(hidden_all[:n], weight, targets, kw, device, sizes)
                    cases.append({"n": n, "h": h, "v": v, "dtype": dtype, "variant": variant, **case})
    failed = [c for c in cases if not c["passed"]]
    return {
        **partial,
        "status": "fail" if failed else "pass",
        "note": f"{len(failed)} of {len(cases)} cases failed" if failed else f"{len(cases)} cases",
    }


def head_case(hidden: Any, weight: Any, targets: Any, kw: dict[str, Any], device: str, sizes: Sizes) -> dict[str, Any]:
    """One shape x dtype x variant: the kernel against the reference, their times, row invariance."""
    import torch

    from evalkit.engine.kernels.head_reference import head_logprobs_reference
    from evalkit.engine.kernels.head_triton import head_logprobs_triton

    kernel_kw = {**kw, **({"vocab_split": sizes.head_vocab_split} if sizes.head_vocab_split else {})}
    start = time.perf_counter()
    got, got_greedy = head_logprobs_triton(hidden, weight, targets, **kernel_kw)
    if hidden.is_cuda:
        torch.cuda.synchronize()
    first_ms = (time.perf_counter() - start) * 1000  # includes compiling a new specialisation
    want, want_greedy = head_logprobs_reference(hidden, weight, targets, **kw)
    dtype = str(hidden.dtype).removeprefix("torch.")
    case = {
        "max_abs_diff": (got - want).abs().max().item(),
        "greedy_mismatch": (got_greedy != want_greedy).float().mean().item(),
        "n_greedy": int(got_greedy.sum()),
        "kernel_ms": time_ms(lambda: head_logprobs_triton(hidden, weight, targets, **kernel_kw), device, sizes.head_repeats),
        "reference_ms": time_ms(lambda: head_logprobs_reference(hidden, weight, targets, **kw), device, sizes.head_repeats),
        "first_call_ms": first_ms,
    }
    passed = case["max_abs_diff"] <= HEAD_TOL[dtype] and case["greedy_mismatch"] <= HEAD_GREEDY_MISMATCH
    # The interpreter's dot is numpy's, whose rounding depends on a row's place in the tile (see
    # tests/test_head_kernels.py): row invariance says something on the GPU only.
    if hidden.is_cuda and hidden.shape[0] > 1:
        n = hidden.shape[0]
        invariant = True
        for i in sorted({0, n // 2, n - 1}):
            alone, alone_greedy = head_logprobs_triton(hidden[i:i + 1], weight, targets[i:i + 1], **kernel_kw)
            invariant &= torch.equal(alone[0], got[i]) and torch.equal(alone_greedy[0], got_greedy[i])
        reversed_, _ = head_logprobs_triton(hidden.flip(0), weight, targets.flip(0), **kernel_kw)
        case["row_invariant"] = bool(invariant and torch.equal(reversed_.flip(0), got))
        passed = passed and case["row_invariant"]
    case["passed"] = bool(passed)
    return case


# --------------------------------------------------------------------------------------------
# stages 2 and 3: the small model through the Engine


@dataclass
class SmallModels:
    folder: Path
    weights: str  # where the weights came from
    loaded: dict[str, Any] = field(default_factory=dict)  # dtype -> LoadedModel

    def get(self, dtype: str, device: str) -> Any:
        from evalkit.model import load_model

        if dtype not in self.loaded:
            self.loaded[dtype] = load_model(self.folder, device=device, dtype=dtype)
        return self.loaded[dtype]

    def release(self) -> None:
        self.loaded.clear()
        free_gpu_cache()


def workload(sizes: Sizes) -> tuple[list[Any], list[tuple[int, int, int]]]:
    """Bundled-suite requests as bench_scoring builds them, workloads concatenated; items as
    (first request, choices, target)."""
    from bench_scoring import build_workload

    requests: list[Any] = []
    items: list[tuple[int, int, int]] = []
    for name, n in sizes.workload_items.items():
        reqs, its = build_workload(name, n)
        items.extend((first + len(requests), k, target) for first, k, target in its)
        requests.extend(reqs)
    return requests, items


def reference_loglikelihood(model: Any, tokenizer: Any, request: Any) -> tuple[float, bool, int]:
    """An unbatched fp32 forward of plain transformers over context + continuation, fp64
    log-softmax (tests/test_engine.py's reference, on the model's device)."""
    import torch

    from evalkit.engine.tokenize import encode_pair

    context, continuation = encode_pair(tokenizer, request.context, request.continuation)
    ids = torch.tensor([context + continuation], device=model.device)
    with torch.inference_mode():
        logits = model(ids).logits[0]
    positions = list(range(len(context) - 1, len(context) + len(continuation) - 1))
    logprobs = torch.log_softmax(logits[positions].double(), dim=-1).cpu()
    total = sum(logprobs[row, t].item() for row, t in enumerate(continuation))
    greedy = all(logprobs[row].argmax().item() == t for row, t in enumerate(continuation))
    return total, greedy, len(continuation)


def chosen(scores: list[float], items: list[tuple[int, int, int]]) -> list[int]:
    """Per item, the choice with the largest summed log-likelihood (first on ties)."""
    return [max(range(k), key=lambda i: (scores[first + i], -i)) for first, k, _ in items]


def compare_scores(a: list[float], b: list[float], n_tokens: list[int], greedy_a: list[bool], greedy_b: list[bool],
                   items: list[tuple[int, int, int]]) -> dict[str, Any]:
    diffs = [abs(x - y) for x, y in zip(a, b)]
    per_token = [d / max(1, n) for d, n in zip(diffs, n_tokens)]
    choice_a, choice_b = chosen(a, items), chosen(b, items)
    return {
        "max_abs": max(diffs),
        "mean_abs": sum(diffs) / len(diffs),
        "max_abs_per_token": max(per_token),
        "mean_abs_per_token": sum(per_token) / len(per_token),
        "choice_agreement": sum(x == y for x, y in zip(choice_a, choice_b)) / len(items),
        "greedy_flag_agreement": sum(x == y for x, y in zip(greedy_a, greedy_b)) / len(a),
    }


def stage_bf16_vs_fp32(device: str, sizes: Sizes, small: SmallModels, deadline: float, partial: dict[str, Any]) -> dict[str, Any]:
    from bench_scoring import accuracy

    from evalkit.engine import Engine, EngineSettings

    requests, items = workload(sizes)
    partial.update({"model": small.weights, "requests": len(requests), "items": len(items),
                    "workloads": sizes.workload_items})
    fp32 = small.get("float32", device)
    check_time(deadline, "the fp32 reference")
    reference = [reference_loglikelihood(fp32.model, fp32.tokenizer, r) for r in requests]
    ref_scores = [r[0] for r in reference]
    ref_greedy = [r[1] for r in reference]
    n_tokens = [r[2] for r in reference]
    engines: dict[str, list[Any]] = {}
    for dtype in ("float32", "bfloat16"):
        check_time(deadline, f"the {dtype} engine")
        loaded = small.get(dtype, device)
        engines[dtype] = Engine(loaded.model, loaded.tokenizer, EngineSettings()).loglikelihood(requests)

    def scores(dtype: str) -> list[float]:
        return [r.logprob for r in engines[dtype]]

    def greedy(dtype: str) -> list[bool]:
        return [r.is_greedy for r in engines[dtype]]

    comparisons = {
        "engine_fp32_vs_reference": compare_scores(scores("float32"), ref_scores, n_tokens, greedy("float32"), ref_greedy, items),
        "engine_bf16_vs_reference": compare_scores(scores("bfloat16"), ref_scores, n_tokens, greedy("bfloat16"), ref_greedy, items),
        "engine_bf16_vs_engine_fp32": compare_scores(scores("bfloat16"), scores("float32"), n_tokens, greedy("bfloat16"), greedy("float32"), items),
    }
    token_counts_match = all(r.n_tokens == n for dtype in engines for r, n in zip(engines[dtype], n_tokens))
    fp32_ok = comparisons["engine_fp32_vs_reference"]["max_abs"] <= FP32_MAX_ABS and token_counts_match
    bf16 = comparisons["engine_bf16_vs_reference"]
    bf16_ok = bf16["choice_agreement"] >= BF16_MIN_CHOICE_AGREEMENT and bf16["mean_abs_per_token"] <= BF16_MAX_MEAN_ABS_PER_TOKEN
    return {
        **partial,
        "status": "pass" if fp32_ok and bf16_ok else "fail",
        "comparisons": comparisons,
        "accuracy": {"reference_fp32": accuracy(ref_scores, items), "engine_fp32": accuracy(scores("float32"), items),
                     "engine_bf16": accuracy(scores("bfloat16"), items)},
        "token_counts_match": token_counts_match,
        "criteria": {"fp32_max_abs": FP32_MAX_ABS, "bf16_min_choice_agreement": BF16_MIN_CHOICE_AGREEMENT,
                     "bf16_max_mean_abs_per_token": BF16_MAX_MEAN_ABS_PER_TOKEN},
        "fp32_passed": fp32_ok,
        "bf16_passed": bf16_ok,
    }


WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "a", "cat", "sleeps", "in",
         "the", "warm", "sun"]


def generation_requests(sizes: Sizes) -> list[Any]:
    """Prompts of 1 to ~40 words whose rows end at different steps, some with a stop string
    (tests/test_generation.py's pattern)."""
    from evalkit.engine import GenerateRequest

    requests = []
    for i in range(sizes.generate_requests):
        prompt = " ".join(WORDS[(7 * i) % len(WORDS):] + WORDS[: (5 * i) % 11])
        limit = 3 + (11 * i) % (sizes.generate_max_new - 2)
        requests.append(GenerateRequest(prompt, max_new_tokens=limit, stop=(" the",) if i % 5 == 0 else ()))
    return requests


def loglik_max_gap(a: list[Any], b: list[Any]) -> float:
    return max(abs(x.logprob - y.logprob) for x, y in zip(a, b))


def stage_batch_invariance(device: str, sizes: Sizes, small: SmallModels, deadline: float, partial: dict[str, Any]) -> dict[str, Any]:
    from evalkit.engine import Engine, EngineSettings
    from evalkit.engine.selftest import generation_self_test, invariance_self_test

    requests, _ = workload(sizes)
    gen_requests = generation_requests(sizes)
    partial.update({"model": small.weights, "requests": len(requests), "generate_requests": len(gen_requests)})
    per_dtype: dict[str, Any] = {}
    partial["dtypes"] = per_dtype
    for dtype in ("float32", "bfloat16"):
        loaded = small.get(dtype, device)
        engine = Engine(loaded.model, loaded.tokenizer, EngineSettings())
        check_time(deadline, f"{dtype} log-likelihoods")
        base = engine.loglikelihood(requests, max_rows=1)
        runs = {
            "max_rows=7": engine.loglikelihood(requests, max_rows=7),
            "max_rows=64": engine.loglikelihood(requests, max_rows=64),
            "max_rows=64 reversed": engine.loglikelihood(requests[::-1], max_rows=64)[::-1],
        }
        loglik = {name: {"identical": run == base, "max_abs_diff": loglik_max_gap(run, base)} for name, run in runs.items()}
        check_time(deadline, f"{dtype} self-tests")
        self_test = invariance_self_test(engine)
        gen_self_test = generation_self_test(engine)
        check_time(deadline, f"{dtype} generation")
        outputs = {slots: [list(r.token_ids) for r in engine.generate(gen_requests, max_rows=slots)] for slots in (1, 4, 16)}
        generation = {
            "slots": [1, 4, 16],
            "identical": outputs[1] == outputs[4] == outputs[16],
            "rows_differing": sum(not (a == b == c) for a, b, c in zip(outputs[1], outputs[4], outputs[16])),
            "tokens": sum(len(t) for t in outputs[1]),
        }
        # On a CPU in bf16 a decoding row's logits move by a bf16 step with its neighbours (the
        # engine pads nothing in generation), so sampled canaries drift apart: recorded, not judged.
        # On CUDA every check counts.
        judged = device.startswith("cuda") or dtype == "float32"
        per_dtype[dtype] = {
            "loglikelihood_vs_max_rows_1": loglik,
            "self_test": self_test,
            "generation_self_test": gen_self_test,
            "generation": generation,
            "generation_judged": judged,
            "passed": all(v["identical"] for v in loglik.values()) and self_test["bit_identical"]
            and (not judged or (gen_self_test["identical"] and generation["identical"])),
        }
    unjudged = [d for d, v in per_dtype.items() if not v["generation_judged"]
                and not (v["generation_self_test"]["identical"] and v["generation"]["identical"])]
    note = (f"{', '.join(unjudged)} generation differs across slots on this CPU, recorded, not judged: "
            "a row's bf16 logits depend on its neighbours there") if unjudged else ""
    status = "pass" if all(d["passed"] for d in per_dtype.values()) else "fail"
    return {**partial, "status": status, **({"note": note} if note else {})}


# --------------------------------------------------------------------------------------------
# stage 4: the benchmark scripts as subprocesses


def run_bench(script: str, args: list[str], out: Path, label: str, deadline: float) -> dict[str, Any]:
    """Run scripts/`script` with `args` until the deadline; its last stdout line is its JSON.

    Its own process group, so a timeout kills its worker processes too (they hold the GPU)."""
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    command = [sys.executable, str(SCRIPTS / script), *args]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    timeout = max(1.0, deadline - time.perf_counter())
    stdout_file, stderr_file = logs / f"{label}.stdout.txt", logs / f"{label}.stderr.txt"
    with stdout_file.open("w") as stdout, stderr_file.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=REPO, env=env, start_new_session=True)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    record: dict[str, Any] = {"command": " ".join(["python", f"scripts/{script}", *args]), "exit_code": code,
                              "log": f"logs/{label}.stderr.txt"}
    lines = [line for line in stdout_file.read_text(errors="replace").splitlines() if line.strip()]
    if code is None:
        tail = stderr_file.read_text(errors="replace").strip().splitlines()[-3:]
        return {**record, "status": "out_of_time", "note": f"killed after {timeout:.0f} s: " + " | ".join(tail)}
    try:
        summary = json.loads(lines[-1]) if code == 0 and lines else None
    except json.JSONDecodeError:
        summary = None
    if summary is None:
        tail = stderr_file.read_text(errors="replace").strip().splitlines()[-3:]
        return {**record, "status": "fail", "note": f"exit {code}, no JSON last line: " + " | ".join(tail)}
    return {**record, "status": "pass", "summary": summary}


# --------------------------------------------------------------------------------------------
# the markdown note


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def key_numbers(name: str, stage: dict[str, Any]) -> str:
    """One cell: the numbers that matter for this stage."""
    if stage["status"] in ("skipped", "out_of_time") and "cases" not in stage and "summary" not in stage:
        return stage.get("note", "")
    if name == "triton_head" and "cases" in stage:
        worst = {}
        for case in stage["cases"]:
            worst[case["dtype"]] = max(worst.get(case["dtype"], 0.0), case["max_abs_diff"])
        return "; ".join(f"{d} max Δ {fmt(w, '.2e')} (tol {fmt(HEAD_TOL[d], '.0e')})" for d, w in worst.items())
    if name == "bf16_vs_fp32" and "comparisons" in stage:
        c = stage["comparisons"]
        return (f"fp32 max Δ {fmt(c['engine_fp32_vs_reference']['max_abs'], '.2e')}; bf16 mean Δ/token "
                f"{fmt(c['engine_bf16_vs_reference']['mean_abs_per_token'], '.3f')}, choices agree "
                f"{fmt(c['engine_bf16_vs_reference']['choice_agreement'], '.1%')}")
    if name == "batch_invariance" and stage.get("dtypes"):
        cells = "; ".join(f"{d}: {'pass' if v['passed'] else 'NOT identical'}" for d, v in stage["dtypes"].items())
        return cells + (f" ({stage['note']})" if stage.get("note") else "")
    if name.startswith("bench_scoring") and "summary" in stage:
        rows = stage["summary"]["workloads"]
        return "; ".join(f"{w} {fmt(r['items_per_s'], '.1f')} it/s ({fmt(r['ratio'], '.2f')}x lm-eval)" for w, r in rows.items())
    if name.startswith("bench_generate") and "summary" in stage:
        rows = stage["summary"]["workloads"]
        return "; ".join(f"{w} {fmt(r['tokens_per_s'], '.0f')} tok/s ({fmt(r['ratio_vs_hf'], '.2f')}x HF)" for w, r in rows.items())
    if name == "build_large_model" and "parameters" in stage:
        return f"{stage['parameters'] / 1e6:,.1f}M parameters, {stage.get('dtype')}"
    return stage.get("note", "")


def markdown(data: dict[str, Any]) -> str:
    env, stages = data.get("environment", {}), data["stages"]
    verdict = "all checks passed" if data["ok"] and data["finished"] else ("FAILED" if not data["ok"] else "incomplete")
    lines = [
        f"### gpu_check ({data['mode']}, {data['device']}): {verdict}",
        "",
        (f"{env.get('gpu', 'no GPU')} · torch {env.get('torch')} (CUDA {env.get('torch_cuda')}) · "
         f"transformers {env.get('transformers')} · triton {env.get('triton')} · lm-eval {env.get('lm_eval')} · "
         f"vllm {env.get('vllm') or 'not installed'} · evalkit {env.get('evalkit_commit')} · "
         f"{data['elapsed_s']:.0f} s of a {data['budget_s']:.0f} s budget"),
        "",
        f"Tokenizer: {data.get('tokenizer', '-')}. Small model: {data.get('small_model', '-')}.",
        "",
        "| check | status | key numbers | s |",
        "|---|---|---|---|",
    ]
    for name, stage in stages.items():
        lines.append(f"| {name} | {stage['status']} | {key_numbers(name, stage)} | {fmt(stage.get('seconds'), '.0f')} |")
    if stages.get("triton_head", {}).get("cases"):
        lines += triton_table(stages["triton_head"]["cases"])
    if stages.get("bf16_vs_fp32", {}).get("comparisons"):
        lines += comparison_table(stages["bf16_vs_fp32"])
    if stages.get("batch_invariance", {}).get("dtypes"):
        lines += invariance_table(stages["batch_invariance"]["dtypes"])
    for name, stage in stages.items():
        if name.startswith("bench_") and stage.get("summary"):
            lines += ["", f"`{stage['command']}`", ""] + bench_table(name, stage["summary"])
    lines += [""] + [f"- {note}" for note in data.get("notes", [])]
    return "\n".join(lines) + "\n"


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def header(*titles: str) -> list[str]:
    return [row(*titles), row(*["---"] * len(titles))]


def triton_table(cases: list[dict[str, Any]]) -> list[str]:
    """One row per H x V x dtype x variant: worst over N, times at the largest N."""
    lines = ["", "Triton head vs torch reference (worst over N; times at the largest N):", ""]
    lines += header("H", "V", "dtype", "variant", "max abs Δ", "greedy mismatch", "row-invariant",
                    "kernel ms", "reference ms", "pass")
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for case in cases:
        groups.setdefault((case["h"], case["v"], case["dtype"], case["variant"]), []).append(case)
    for (h, v, dtype, variant), group in groups.items():
        largest = max(group, key=lambda c: c["n"])
        invariant = [c["row_invariant"] for c in group if "row_invariant" in c]
        lines.append(row(
            h, v, dtype, variant, fmt(max(c["max_abs_diff"] for c in group), ".2e"),
            fmt(max(c["greedy_mismatch"] for c in group), ".2%"), fmt(all(invariant)) if invariant else "n/a",
            fmt(largest["kernel_ms"], ".2f"), fmt(largest["reference_ms"], ".2f"), fmt(all(c["passed"] for c in group)),
        ))
    return lines


def comparison_table(stage: dict[str, Any]) -> list[str]:
    workloads = ", ".join(f"{k} {v}" for k, v in stage["workloads"].items())
    lines = ["", f"Log-likelihoods, {stage['requests']} requests / {stage['items']} items ({workloads}), {stage['model']}:", ""]
    lines += header("comparison", "max abs Δ", "mean abs Δ", "max Δ/token", "mean Δ/token", "choice agreement",
                    "greedy-flag agreement")
    for label, c in stage["comparisons"].items():
        lines.append(row(label, fmt(c["max_abs"], ".2e"), fmt(c["mean_abs"], ".2e"), fmt(c["max_abs_per_token"], ".2e"),
                         fmt(c["mean_abs_per_token"], ".2e"), fmt(c["choice_agreement"], ".1%"),
                         fmt(c["greedy_flag_agreement"], ".1%")))
    return lines


def invariance_table(dtypes: dict[str, Any]) -> list[str]:
    lines = ["", "Batch invariance (log-likelihoods against max_rows=1; greedy generation at 1/4/16 slots):", ""]
    lines += header("dtype", "max_rows=7", "max_rows=64", "64 reversed", "self-test loglik", "self-test generation",
                    "greedy 1/4/16 slots")
    for dtype, d in dtypes.items():
        cells = [("identical" if r["identical"] else f"Δ {r['max_abs_diff']:.2e}")
                 for r in d["loglikelihood_vs_max_rows_1"].values()]
        st, gen = d["self_test"], d["generation"]
        cells.append("identical" if st["bit_identical"] else f"Δ {st['max_abs_diff']:.2e}")
        unjudged = "" if d["generation_judged"] else " (not judged)"
        cells.append(("identical" if d["generation_self_test"]["identical"] else "differs") + unjudged)
        cells.append(("identical" if gen["identical"] else f"{gen['rows_differing']} rows differ") + unjudged)
        lines.append(row(dtype, *cells))
    return lines


def bench_table(name: str, s: dict[str, Any]) -> list[str]:
    if name.startswith("bench_scoring"):
        lines = header("workload", "evalkit it/s", "lm-eval it/s (bs)", "ratio", "acc evalkit / lm-eval", "max abs Δ loglik")
        for w, r in s["workloads"].items():
            lines.append(row(w, fmt(r["items_per_s"], ".2f"), f"{fmt(r['baseline_items_per_s'], '.2f')} ({r['baseline_batch_size']})",
                             f"{fmt(r['ratio'], '.2f')}x", f"{fmt(r['acc'], '.3f')} / {fmt(r['baseline_acc'], '.3f')}",
                             fmt(r["max_abs_dloglik"], ".2e")))
        return lines + ["", (f"matmul {fmt(s.get('matmul_gflops'), '.0f')} GFLOP/s; evalkit useful FLOP/s on "
                             f"mmlu_0shot = {fmt(s.get('flop_fraction'), '.1%')} of it")]
    lines = header("workload", "evalkit tok/s", "lm-eval tok/s (bs)", "HF tok/s", "x lm-eval", "x HF", "identical to HF")
    for w, r in s["workloads"].items():
        lines.append(row(w, fmt(r["tokens_per_s"], ".1f"), f"{fmt(r['lmeval_tokens_per_s'], '.1f')} ({r['lmeval_batch_size']})",
                         fmt(r["hf_tokens_per_s"], ".1f"), fmt(r["ratio_vs_lmeval"], ".2f"), fmt(r["ratio_vs_hf"], ".2f"),
                         f"{r['identical_to_hf_count']}/{r['n_prompts']}"))
    return lines + ["", (f"matmul {fmt(s.get('matmul_gflops'), '.0f')} GFLOP/s; decode FLOP fraction at "
                         f"{s.get('slots')} slots: {fmt(s.get('decode_flop_fraction'), '.1%')}")]


# --------------------------------------------------------------------------------------------
# command line


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="folder for gpu_check.json/.md and logs")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (cpu needs --smoke)")
    parser.add_argument("--smoke", action="store_true", help="every stage on tiny shapes and models (CI, < 1 min on 2 CPU cores)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="total seconds; stages that would pass it are skipped")
    parser.add_argument("--with-lm-eval", action="store_true", help="smoke mode: also run lm-eval in the benchmarks (slow start-up)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="a local tokenizer folder (default: the small model's, else trained here)")
    parser.add_argument("--small-model", type=Path, default=None, help="a local checkpoint for stages 2, 3 and the fp32 benchmark (default: the installed default model, else random weights)")
    parser.add_argument("--n-items", type=int, default=150, help="bench_scoring items per workload on the 1B model")
    parser.add_argument("--n-prompts", type=int, default=128, help="bench_generate prompts on the 1B model")
    parser.add_argument("--slots", type=int, default=128, help="bench_generate slots on the 1B model")
    args = parser.parse_args(argv)
    device = args.device.strip().lower()
    if device != "cpu" and device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise UsageError(f"--device must be cuda, cuda:N or cpu; got {args.device!r}")
    if device == "cpu" and not args.smoke:
        raise UsageError("--device cpu runs only with --smoke (the full-size checks need a GPU)")
    if args.budget_s <= 0 or min(args.n_items, args.n_prompts, args.slots) < 1:
        raise UsageError("--budget-s, --n-items, --n-prompts and --slots must be positive")
    for flag in ("tokenizer", "small_model"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            raise UsageError(f"--{flag.replace('_', '-')} {folder} is not a folder")
    if args.small_model is not None and not (args.small_model / "config.json").is_file():
        raise UsageError(f"--small-model {args.small_model} has no config.json")
    args.device = device
    return args


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} asked for but CUDA is not available here (no GPU, or a CPU-only torch "
                             f"{torch.__version__}); use --device cpu --smoke")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) here")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.device == "cpu":
            # Read when head_triton is first imported, so set before any evalkit engine import. Only
            # the triton stage calls the kernel directly; the engine on a CPU never reaches it.
            os.environ["TRITON_INTERPRET"] = "1"
        check_device(args.device)
    except UsageError as exc:
        print(f"gpu_check.py: error: {exc}", file=sys.stderr)
        return 2
    import torch

    if torch.device(args.device).index is not None:  # cuda:N: tensors made with device="cuda" go there
        torch.cuda.set_device(torch.device(args.device).index)
    sizes = smoke_sizes(args) if args.smoke else full_sizes(args)
    clock = Clock(args.budget_s)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(args.device)
    notes = [
        ("vllm is installed: bench_generate runs it beside evalkit (--with-vllm)" if env["vllm"] and not args.smoke
         else "vllm is not benchmarked (not installed, or smoke mode)"),
    ]
    if env["vllm"] and not args.smoke:
        sizes.bench_generate_large.append("--with-vllm")
    if args.smoke and not args.with_lm_eval:
        notes.append("smoke mode: bench_generate runs without lm-eval, and bench_scoring (which always runs lm-eval: "
                     "4 more workers, seconds each to start) on the small model only; --with-lm-eval runs them all")
    report = Report(args.out, {
        "schema": "evalkit.gpu_check/1", "mode": "smoke" if args.smoke else "full", "device": args.device,
        "budget_s": args.budget_s, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:] if argv is None else list(argv), "environment": env, "notes": notes,
    })
    say(clock, f"{report.header['mode']} run on {args.device} ({env.get('gpu', 'CPU')}), budget {args.budget_s:.0f} s, "
               f"results in {args.out}")
    report.write(clock)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        run_stages(args, sizes, report, clock, Path(tmp))
    report.write(clock, done=True)
    say(clock, f"done: {'all checks passed' if report.ok() else 'some checks did not pass'}; "
               f"wrote {args.out / 'gpu_check.json'}")
    print("\n" + (args.out / "gpu_check.md").read_text(), end="", flush=True)
    return 0 if report.ok() else 1


def run_stages(args: argparse.Namespace, sizes: Sizes, report: Report, clock: Clock, work: Path) -> None:
    """Every stage in order of importance, so that running out of time costs the least."""
    device, caps = args.device, sizes.caps
    models: dict[str, Any] = {}

    def stage(name: str, body: Callable[[float, dict[str, Any]], dict[str, Any]], need: float = 5) -> bool:
        return run_stage(name, report, clock, caps[name], need, body)["status"] == "pass"

    def not_run(name: str, note: str) -> None:
        report.stages[name] = {"status": "fail", "passed": False, "note": note}
        report.write(clock)

    stage("triton_head", lambda deadline, partial: stage_triton_head(device, sizes, deadline, partial))

    def prepare(deadline: float, partial: dict[str, Any]) -> dict[str, Any]:
        models["tokenizer"], source = resolve_tokenizer(args, sizes)
        report.header["tokenizer"] = f"{source} ({len(models['tokenizer'])} tokens)"
        models["small"] = prepare_small_model(args, sizes, models["tokenizer"], work)
        report.header["small_model"] = models["small"].weights
        return {"status": "pass", "note": f"tokenizer: {report.header['tokenizer']}; small model: {models['small'].weights}"}

    if not stage("prepare_models", prepare):
        for name in ("bf16_vs_fp32", "batch_invariance", "build_large_model", "bench_scoring_large_bf16",
                     "bench_generate_large_bf16", "bench_scoring_small_fp32"):
            not_run(name, "not run: prepare_models did not pass")
        return
    small = models["small"]
    stage("bf16_vs_fp32", lambda deadline, partial: stage_bf16_vs_fp32(device, sizes, small, deadline, partial))
    stage("batch_invariance", lambda deadline, partial: stage_batch_invariance(device, sizes, small, deadline, partial))
    small.release()  # the benchmarks' workers want the GPU's memory

    large = work / "large"

    def build_large(deadline: float, partial: dict[str, Any]) -> dict[str, Any]:
        n_params = build_model_dir(large, sizes.large_config, models["tokenizer"], device=device, dtype="bfloat16", seed=1)
        return {"status": "pass", "parameters": n_params, "dtype": "bfloat16", "config": sizes.large_config}

    def bench(script: str, model: Path, dtype: str, extra: list[str], label: str) -> Callable[..., dict[str, Any]]:
        command = ["--model", str(model), "--device", device, "--dtype", dtype, *extra]
        return lambda deadline, partial: run_bench(script, command, args.out, label, deadline)

    need = 5 if args.smoke else 30  # a benchmark's workers need that long to start before they measure
    if stage("build_large_model", build_large):
        if args.smoke and not args.with_lm_eval:
            report.stages["bench_scoring_large_bf16"] = {
                "status": "skipped", "passed": None,
                "note": "skipped: smoke mode without --with-lm-eval (bench_scoring has no flag to leave lm-eval out)",
            }
        else:
            stage("bench_scoring_large_bf16", bench("bench_scoring.py", large, "bfloat16", sizes.bench_scoring_large,
                                                    "bench_scoring_large_bf16"), need)
        stage("bench_generate_large_bf16", bench("bench_generate.py", large, "bfloat16", sizes.bench_generate_large,
                                                 "bench_generate_large_bf16"), need)
    else:
        not_run("bench_scoring_large_bf16", "not run: the large model was not built")
        not_run("bench_generate_large_bf16", "not run: the large model was not built")
    stage("bench_scoring_small_fp32", bench("bench_scoring.py", small.folder, "float32", sizes.bench_scoring_small,
                                            "bench_scoring_small_fp32"), need)


if __name__ == "__main__":
    raise SystemExit(main())
