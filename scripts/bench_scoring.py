"""Benchmark evalkit's log-likelihood engine against lm-evaluation-harness's Hugging Face backend.

What it measures, on the same model, the same data and the same machine, in one run:

- four workloads built from the bundled suites: MMLU zero-shot, MMLU five-shot, a two-choice cloze
  task with multi-token choices (PIQA) and TruthfulQA MC1 (many multi-token choices after a
  six-shot primer). Each is a deterministic subset of `--n-items` items, turned into (context,
  continuation) requests by evalkit's own prompt builder, so both systems score exactly the same
  pairs (each worker checks a digest of them);
- lm-eval: `HFLM.loglikelihood` fed those requests directly (no task or dataset system, no hub),
  at batch sizes 8, 32, 1 and "auto"; the fastest counts. A run slower than the best so far
  cannot win: once past the best time it is stopped (`--no-early-stop` lets every run finish);
- evalkit: `Engine(model, tokenizer, EngineSettings(...)).loglikelihood(requests)`, the model
  loaded by `evalkit.model.load_model`;
- per workload: items per second for both and their ratio, peak memory of each (the worker's
  `ru_maxrss`, so model weights included), accuracy of each (an item is right when the choice with
  the largest summed log-likelihood is the target) and the largest per-request |difference| in
  log-likelihood between evalkit and the fastest lm-eval run, and of each against an exact
  reference (every distinct input alone through plain transformers in fp32, log-softmax and sums
  in fp64; a third worker, not timed);
- the machine's matmul rate (best of several square matmuls in the benchmark's dtype) and
  evalkit's useful FLOP/s on MMLU zero-shot as a fraction of it. Useful work is what any scorer
  must do at least: 2 x non-embedding parameters x (tokens of the distinct contexts + continuation
  tokens), plus the LM head at continuation positions (2 x hidden x vocab per continuation token).

Every system x setting runs in its own child process (this script with `--worker`), so peak memory
is measured separately; the model load is not timed, the scoring call is. On CPU each child gets an
address-space limit (`--mem-limit-mb`), so lm-eval's "auto" probe meets an allocation error (and
halves its batch) instead of the kernel's OOM killer. Everything runs offline from local files.

    python scripts/bench_scoring.py                    # SmolLM2-135M, fp32, CPU: < 10 min on 2 cores
    python scripts/bench_scoring.py --dtype float32,bfloat16       # a table per dtype
    python scripts/bench_scoring.py --model /models/llama-1b --device cuda --n-items 500

It prints a table, then as its last line one JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    OutOfTime,
    body_parameters,
    default_mem_limit_mb,
    log,
    measure_matmul,
    synchronize,
    time_limit,
    warm_up,
)
from benchlib import (
    spawn_worker as spawn_script_worker,
)

# name -> (bundled suite, few-shot examples, default item count). The defaults keep the whole run
# under ten minutes on two CPU cores with SmolLM2-135M (about nine and a half on a quiet machine): lm-eval
# runs four times per workload and recomputes every choice's context (TruthfulQA: ~8 choices x ~280
# tokens per item), and each worker spends a few seconds starting up.
WORKLOADS: dict[str, tuple[str, int, int]] = {
    "mmlu_0shot": ("mmlu", 0, 40),
    "mmlu_5shot": ("mmlu", 5, 40),
    "cloze": ("piqa", 0, 100),
    "truthfulqa_mc": ("truthfulqa_mc", 0, 16),
}
# Likely fastest on a CPU first, so that slower settings can be stopped early. On a CPU "auto"
# probes 5 forward passes at 64 x the longest request before scoring anything.
BASELINE_BATCH_SIZES = ("8", "32", "1", "auto")


# --------------------------------------------------------------------------------------------
# workloads


def build_workload(name: str, n_items: int) -> tuple[list[Any], list[tuple[int, int, int]]]:
    """(requests, items): evalkit LoglikelihoodRequests, and per item (first request, choices, target).

    Deterministic, so the parent and every worker build the same list. The subset is
    `select_samples` spread over the suite's first group_by field, as `evalkit run --limit` does,
    except for few-shot: there it takes the first items in suite order, so that, as in a full run
    (about 250 questions per MMLU subject), items share their shots; a subset spread over 57
    subjects would share none.
    """
    from evalkit.paths import bundled_suites_dir
    from evalkit.prompts import build_requests, target_index
    from evalkit.runner import select_samples
    from evalkit.suite import load_suite

    suite_name, fewshot, _ = WORKLOADS[name]
    suite = load_suite(bundled_suites_dir() / suite_name)
    stratum = suite.manifest.group_by[0] if suite.manifest.group_by and not fewshot else None
    samples = select_samples(suite.eval_samples, n_items, stratum)
    requests: list[Any] = []
    items: list[tuple[int, int, int]] = []
    for prompted in build_requests(suite, samples, fewshot):
        items.append((len(requests), len(prompted.loglikelihood), target_index(suite.manifest, prompted.sample.fields)))
        requests.extend(prompted.loglikelihood)
    return requests, items


def digest_pairs(requests: list[Any]) -> str:
    pairs = [[r.context, r.continuation] for r in requests]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


def accuracy(logliks: list[float], items: list[tuple[int, int, int]]) -> float:
    """Share of items whose largest summed log-likelihood is the target's (first on ties)."""
    right = 0
    for first, n, target in items:
        scores = logliks[first : first + n]
        right += max(range(n), key=lambda i: (scores[i], -i)) == target
    return right / len(items)


# --------------------------------------------------------------------------------------------
# workers: one system x setting per child process


def score_with_lm_eval(requests: list[Any], opts: dict[str, Any]) -> dict[str, Any]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    batch_size = opts["batch_size"] if opts["batch_size"] == "auto" else int(opts["batch_size"])
    lm = HFLM(pretrained=opts["model"], batch_size=batch_size, dtype=opts["dtype"], device=opts["device"])
    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=(r.context, r.continuation), idx=i)
        for i, r in enumerate(requests)
    ]
    warm_up(lm.model, opts["device"])
    with time_limit(opts["time_limit"]):
        start = time.perf_counter()
        results = lm.loglikelihood(instances, disable_tqdm=True)
        synchronize(opts["device"])
        seconds = time.perf_counter() - start
    chosen = sorted(set(lm.batch_sizes.values())) if batch_size == "auto" else [batch_size]
    return {"logliks": [float(ll) for ll, _ in results], "seconds": seconds, "batch_sizes_used": chosen}


def score_with_evalkit(requests: list[Any], opts: dict[str, Any]) -> dict[str, Any]:
    from evalkit.engine import Engine, EngineSettings
    from evalkit.model import load_model

    loaded = load_model(opts["model"], device=opts["device"], dtype=opts["dtype"])
    settings = EngineSettings(max_rows=opts["max_rows"], token_budget=opts["token_budget"])
    engine = Engine(loaded.model, loaded.tokenizer, settings)
    warm_up(loaded.model, opts["device"])
    with time_limit(opts["time_limit"]):
        start = time.perf_counter()
        results = engine.loglikelihood(requests)
        synchronize(opts["device"])
        seconds = time.perf_counter() - start
    return {
        "logliks": [float(r.logprob) for r in results],
        "seconds": seconds,
        "useful_flops": count_useful_flops(loaded.model, loaded.tokenizer, requests),
    }


def score_with_reference(requests: list[Any], opts: dict[str, Any]) -> dict[str, Any]:
    """The yardstick both systems are held to: each distinct input alone (no batch, no padding), a
    plain transformers forward in fp32, log-softmax in fp64 at the continuation positions, summed
    in fp64. Tokenized as lm-eval does. Not timed: it is a reference, not a competitor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalkit.engine.tokenize import encode_pair

    tokenizer = AutoTokenizer.from_pretrained(opts["model"])
    model = AutoModelForCausalLM.from_pretrained(opts["model"], dtype=torch.float32).to(opts["device"]).eval()
    by_input: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for i, r in enumerate(requests):
        context, continuation = encode_pair(tokenizer, r.context, r.continuation)
        whole = context + continuation
        # MMLU's " A".." D" after one question share their input: one forward serves all four.
        by_input.setdefault(tuple(whole[:-1]), []).append((i, continuation))
    logliks = [0.0] * len(requests)
    with torch.inference_mode():
        for inputs, members in by_input.items():
            # Only the positions that predict continuation tokens (the last ones) need the head.
            keep = max(len(continuation) for _, continuation in members)
            logits = model(torch.tensor([inputs], device=opts["device"]), logits_to_keep=keep).logits[0]
            for i, continuation in members:
                logprobs = torch.log_softmax(logits[keep - len(continuation):].double(), dim=-1)
                logliks[i] = float(logprobs[torch.arange(len(continuation)), torch.tensor(continuation)].sum())
    return {"logliks": logliks, "seconds": None}


def count_useful_flops(model: Any, tokenizer: Any, requests: list[Any]) -> float:
    """2 x non-embedding parameters x (distinct-context tokens + continuation tokens), plus
    2 x hidden x vocab per continuation token (the head). Tokens are split as lm-eval splits them:
    trailing spaces of the context belong to the continuation."""
    body_params = body_parameters(model)
    hidden, vocab = model.config.hidden_size, model.config.vocab_size

    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    context_tokens: dict[str, int] = {}
    continuation_tokens = 0
    for r in requests:
        context = r.context.rstrip()
        if context not in context_tokens:
            context_tokens[context] = n_tokens(context)
        continuation_tokens += max(1, n_tokens(r.context + r.continuation) - context_tokens[context])
    tokens = sum(context_tokens.values()) + continuation_tokens
    return 2.0 * body_params * tokens + 2.0 * hidden * vocab * continuation_tokens


def run_worker(opts: dict[str, Any]) -> int:
    """Child-process entry: score one workload with one system, write JSON to opts["out"]."""
    if opts["mem_limit_mb"] and not opts["device"].startswith("cuda"):
        limit = int(opts["mem_limit_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests, _ = build_workload(opts["workload"], opts["n_items"])
    score = {"evalkit": score_with_evalkit, "lm_eval": score_with_lm_eval, "reference": score_with_reference}[
        opts["system"]
    ]
    try:
        result = score(requests, opts)
    except OutOfTime:
        result = {"timed_out": True}
    result["pairs_sha256"] = digest_pairs(requests)
    result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if opts["device"].startswith("cuda"):
        import torch

        result["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    Path(opts["out"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------
# the parent: spawn workers, compare, report


def spawn_worker(opts: dict[str, Any], workdir: Path, label: str) -> dict[str, Any]:
    return spawn_script_worker(__file__, opts, workdir, label)


def bench_workload(name: str, n_items: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    requests, items = build_workload(name, n_items)
    expected = digest_pairs(requests)
    common = {
        "workload": name,
        "n_items": n_items,
        "model": str(args.model),
        "dtype": args.dtype,
        "device": args.device,
        "mem_limit_mb": args.mem_limit_mb,
    }
    log(f"{name}: {len(items)} items, {len(requests)} requests")
    evalkit = spawn_worker(
        {
            **common,
            "system": "evalkit",
            "max_rows": args.batch_size,
            "token_budget": args.token_budget,
            "time_limit": None,
        },
        workdir,
        f"{name}-evalkit",
    )
    check_worker(evalkit, expected, f"{name} evalkit")
    log(f"  evalkit: {describe_run(evalkit)}")
    reference = spawn_worker({**common, "system": "reference", "dtype": "float32", "time_limit": None}, workdir, f"{name}-reference")
    check_worker(reference, expected, f"{name} fp64 reference")
    log(f"  fp64 reference: {reference['wall_seconds']:.0f} s with start-up")
    runs: dict[str, dict[str, Any]] = {}
    for batch_size in BASELINE_BATCH_SIZES:
        finished = [r["seconds"] for r in runs.values() if "seconds" in r]
        limit = min(finished) + 2 if finished and args.early_stop else None
        run = spawn_worker(
            {**common, "system": "lm_eval", "batch_size": batch_size, "time_limit": limit},
            workdir,
            f"{name}-lm_eval-bs{batch_size}",
        )
        if run.get("timed_out"):
            run["note"] = f"stopped after {limit:.0f} s (slower than the best so far)"
        if "failed" in run:  # e.g. "auto" running out of memory: report it, keep the others
            run["note"] = f"failed: {run['failed'][-120:]}"
        else:
            check_worker(run, expected, f"{name} lm-eval bs={batch_size}")
        runs[batch_size] = run
        log(f"  lm-eval bs={batch_size}: {describe_run(run)}")
    return summarise(name, items, evalkit, runs, reference["logliks"])


def check_worker(result: dict[str, Any], expected: str, what: str) -> None:
    if "failed" in result:
        raise SystemExit(f"{what} failed: {result['failed']}")
    if result["pairs_sha256"] != expected:
        raise SystemExit(f"{what} scored other requests than the parent built (digest mismatch)")


def describe_run(run: dict[str, Any]) -> str:
    if "seconds" not in run:
        return run.get("note", "timed out")
    return (
        f"{run['seconds']:.1f} s scoring ({run['wall_seconds']:.0f} s with start-up), peak {run['peak_mem_mb']:.0f} MB"
    )


def summarise(
    name: str, items: list[tuple[int, int, int]], evalkit: dict, runs: dict[str, dict], reference: list[float]
) -> dict:
    n = len(items)
    done = {bs: r for bs, r in runs.items() if "seconds" in r}
    best_bs = min(done, key=lambda bs: done[bs]["seconds"]) if done else None
    best = done.get(best_bs) if best_bs else None
    ours = evalkit["logliks"]

    def max_diff(other: list[float], to: list[float] = ours) -> float:
        return max(abs(a - b) for a, b in zip(to, other))

    per_batch = {
        bs: {
            "items_per_s": n / r["seconds"] if "seconds" in r else None,
            "peak_mem_mb": r.get("peak_mem_mb"),
            "max_abs_dloglik": max_diff(r["logliks"]) if "logliks" in r else None,
            "batch_sizes_used": r.get("batch_sizes_used"),
            "note": r.get("note", ""),
        }
        for bs, r in runs.items()
    }
    row = {
        "ratio": (best["seconds"] / evalkit["seconds"]) if best else None,
        "items_per_s": n / evalkit["seconds"],
        "baseline_items_per_s": n / best["seconds"] if best else None,
        "peak_mem_mb": evalkit["peak_mem_mb"],
        "baseline_peak_mem_mb": best["peak_mem_mb"] if best else None,
        "acc": accuracy(ours, items),
        "baseline_acc": accuracy(best["logliks"], items) if best else None,
        "max_abs_dloglik": max_diff(best["logliks"]) if best else None,
        "baseline_batch_size": (best_bs if best_bs == "auto" else int(best_bs)) if best_bs else None,
        # Against a plain fp32 forward with fp64 log-softmax, each input alone: how far each system
        # is from the exact numbers (lm-eval sums fp32 token log-probs, evalkit fp64).
        "max_abs_dloglik_ref": max_diff(reference),
        "baseline_max_abs_dloglik_ref": max_diff(reference, best["logliks"]) if best else None,
    }
    extra = {
        "n_items": n,
        "n_requests": sum(k for _, k, _ in items),
        "seconds": evalkit["seconds"],
        "useful_flops": evalkit["useful_flops"],
        "per_batch": per_batch,
        "peak_gpu_mem_mb": evalkit.get("peak_gpu_mem_mb"),
        "baseline_peak_gpu_mem_mb": best.get("peak_gpu_mem_mb") if best else None,
    }
    return {"row": row, "extra": extra}


def print_tables(results: dict[str, dict], summary: dict[str, Any], footer: str) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    gpu = summary["device"].startswith("cuda")
    table = Table(title=f"evalkit vs lm-eval HF: {summary['model']} ({summary['device']}, {summary['dtype']})")
    for column in (
        "workload",
        "items (reqs)",
        "evalkit it/s",
        "lm-eval it/s (bs)",
        "ratio",
        "peak MB evalkit",
        "peak MB lm-eval",
        "acc evalkit",
        "acc lm-eval",
        "max |Δ loglik|",
        "max |Δ| vs fp64 ref (ek / lm-eval)",
    ):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, result in results.items():
        row, extra = result["row"], result["extra"]
        mem, base_mem = fmt(row["peak_mem_mb"], ".0f"), fmt(row["baseline_peak_mem_mb"], ".0f")
        if gpu:
            mem += f" (GPU {fmt(extra['peak_gpu_mem_mb'], '.0f')})"
            base_mem += f" (GPU {fmt(extra['baseline_peak_gpu_mem_mb'], '.0f')})"
        table.add_row(
            name,
            f"{extra['n_items']} ({extra['n_requests']})",
            fmt(row["items_per_s"], ".2f"),
            f"{fmt(row['baseline_items_per_s'], '.2f')} ({row['baseline_batch_size']})",
            fmt(row["ratio"], ".2f") + "x",
            mem,
            base_mem,
            fmt(row["acc"], ".3f"),
            fmt(row["baseline_acc"], ".3f"),
            fmt(row["max_abs_dloglik"], ".2e"),
            f"{fmt(row['max_abs_dloglik_ref'], '.1e')} / {fmt(row['baseline_max_abs_dloglik_ref'], '.1e')}",
        )
    console = Console(width=190)
    console.print(table)

    runs = Table(title="lm-eval per batch size (max |Δ| against evalkit)")
    for column in ("workload", "batch size", "items/s", "peak MB", "max |Δ loglik|", "note"):
        runs.add_column(column)
    for name, result in results.items():
        for bs, run in result["extra"]["per_batch"].items():
            used = run["batch_sizes_used"]
            shown = f"auto -> {','.join(map(str, used))}" if bs == "auto" and used else bs
            runs.add_row(
                name,
                shown,
                fmt(run["items_per_s"], ".2f"),
                fmt(run["peak_mem_mb"], ".0f"),
                fmt(run["max_abs_dloglik"], ".2e"),
                run["note"],
            )
    console.print(runs)
    fraction = summary["flop_fraction"]
    console.print(
        f"matmul rate ({summary['dtype']}, 2048x2048, best of 10): {summary['matmul_gflops']:.1f} GFLOP/s; "
        + (
            f"evalkit useful FLOP/s on mmlu_0shot: {fraction * summary['matmul_gflops']:.1f} GFLOP/s "
            f"= {fraction:.1%} of it"
            if fraction is not None
            else "mmlu_0shot not run: no FLOP fraction"
        )
    )
    console.print(footer)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from evalkit.model import default_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=default_model_dir(),
        help="a local Hugging Face folder (default: the installed default model)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        help="for both systems: float32, bfloat16, or both comma-separated (one table each; default float32)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both systems)")
    parser.add_argument(
        "--n-items",
        type=int,
        default=None,
        help="items per workload (default: " + ", ".join(f"{k} {v[2]}" for k, v in WORKLOADS.items()) + ")",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS)
    )
    parser.add_argument("--batch-size", type=int, default=32, help="evalkit's max rows per batch")
    parser.add_argument("--token-budget", type=int, default=16384, help="evalkit's tokens per batch")
    parser.add_argument(
        "--mem-limit-mb", type=int, default=default_mem_limit_mb(), help="address-space limit per CPU worker (0: none)"
    )
    parser.add_argument(
        "--no-early-stop", dest="early_stop", action="store_false", help="let every lm-eval batch size finish"
    )
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    if not args.dtypes or any(d not in ("float32", "bfloat16") for d in args.dtypes):
        parser.error(f"--dtype takes float32, bfloat16 or both comma-separated; got {args.dtype!r}")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a Hugging Face model folder (run `evalkit install-model` for the default)")
    return args


def bench_dtype(args: argparse.Namespace) -> tuple[dict[str, dict], dict[str, Any]]:
    """Every workload in args.dtype: (per-workload results, the summary the JSON line carries)."""
    matmul_gflops = measure_matmul(args.device, args.dtype)
    log(f"matmul: {matmul_gflops:.1f} GFLOP/s ({args.dtype}, {args.device})")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        for name in args.workloads:
            n_items = args.n_items if args.n_items is not None else WORKLOADS[name][2]
            results[name] = bench_workload(name, n_items, args, Path(tmp))
    zero_shot = results.get("mmlu_0shot")
    flop_fraction = (
        zero_shot["extra"]["useful_flops"] / zero_shot["extra"]["seconds"] / (matmul_gflops * 1e9)
        if zero_shot
        else None
    )
    summary = {
        "workloads": {name: result["row"] for name, result in results.items()},
        "flop_fraction": flop_fraction,
        "matmul_gflops": matmul_gflops,
        "model": str(args.model),
        "device": args.device,
        "dtype": args.dtype,
    }
    return results, summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    runs = [(dtype, bench_dtype(argparse.Namespace(**{**vars(args), "dtype": dtype}))) for dtype in args.dtypes]
    footer = (
        f"total {time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.1f} at start and "
        f"{os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} CPUs (other processes distort timings)"
    )
    for dtype, (results, summary) in runs:
        print_tables(results, summary, footer if dtype == args.dtypes[-1] else "")
    # The first dtype's numbers at the top level (the shape the issue fixes), every dtype's under by_dtype.
    line = dict(runs[0][1][1])
    if len(runs) > 1:
        line["by_dtype"] = {dtype: summary for dtype, (_, summary) in runs}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        raise SystemExit(run_worker(json.loads(sys.argv[2])))
    raise SystemExit(main())
