"""Benchmark evalkit's generation engine against lm-eval's HF `generate_until` and plain transformers.

What it measures, on the same model, the same prompts and the same machine, in one run:

- two workloads built from the bundled suites by evalkit's own prompt builder: GSM8K (the suite's
  default few-shot chain-of-thought prompt, 256 new tokens, greedy, its stop strings; rows end at
  very different lengths) and a chat-templated safety set (XSTest, 128 new tokens). Each is the
  first `--n-prompts` samples. Chat prompts are rendered to text once (the model's own template),
  so every system is fed exactly the same text, with no special tokens added;
- evalkit: `Engine.generate`-equivalent `iter_generate` with `--slots` rows (continuous batching);
- plain transformers: `model.generate` on left-padded batches of `--slots` prompts, longest first
  (its best order), greedy, with `stop_strings`;
- vLLM, with `--with-vllm` (a CUDA machine with `evalkit[vllm]`): evalkit's vLLM backend on the
  same prompts, `--slots` sequences at once;
- lm-eval: `HFLM.generate_until` fed the same (context, until, max_gen_toks) requests, at batch
  sizes 64, 8 and 1 (the fastest counts; a run that has already taken longer than the best so far
  cannot win and is stopped);
- per workload: generated tokens per second for each system (the tokens of evalkit's completions,
  the useful work, divided by each system's wall time for the whole generation call), the ratios,
  peak memory of each (the worker's ru_maxrss, weights included) and whether the greedy outputs are
  token for token identical to transformers' (and text for text to lm-eval's);
- evalkit's decode FLOP/s as a fraction of the machine's measured matmul rate: useful decode work
  is 2 x (non-embedding parameters + hidden x vocab) per generated token of a running row, divided
  by the time spent in decode steps. Per workload above, and in a sweep over slot counts
  (`--decode-slots`, evalkit only): as many chat prompts as slots, `--decode-tokens` new tokens
  each, so the slots stay full; the JSON's `decode_flop_fraction` is the sweep's largest slot count.

Every system x setting runs in its own child process, so peak memory is measured separately; model
loading is not timed. Everything runs offline from local files.

    python scripts/bench_generate.py                        # SmolLM2-135M, fp32, CPU
    python scripts/bench_generate.py --n-prompts 8 --workloads safety_chat
    python scripts/bench_generate.py --model /models/llama-1b --device cuda --dtype bfloat16 --slots 128

It prints a table, then as its last line one JSON object with the numbers.
"""

from __future__ import annotations

import argparse
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
    spawn_worker,
    synchronize,
    time_limit,
    warm_up,
)

# name -> (bundled suite, default prompt count)
WORKLOADS: dict[str, tuple[str, int]] = {"gsm8k": ("gsm8k", 64), "safety_chat": ("xstest", 64)}
# Largest first: the likely fastest on any machine, so slower settings can be stopped early.
LMEVAL_BATCH_SIZES = ("64", "8", "1")


# --------------------------------------------------------------------------------------------
# workloads: (text, stop strings, max new tokens) per prompt, identical for every system


def build_workload(name: str, n_prompts: int, tokenizer: Any) -> list[dict[str, Any]]:
    from evalkit.engine.tokenize import chat_prompt
    from evalkit.paths import bundled_suites_dir
    from evalkit.prompts import build_requests
    from evalkit.runner import select_samples
    from evalkit.suite import load_suite

    suite = load_suite(bundled_suites_dir() / WORKLOADS[name][0])
    fewshot = suite.manifest.fewshot.default if suite.manifest.fewshot else 0
    samples = select_samples(suite.eval_samples, n_prompts, None)
    prompts = []
    for item in build_requests(suite, samples, fewshot):
        request = item.generate
        assert request is not None
        text = chat_prompt(tokenizer, request.prompt, request.system) if request.chat else request.prompt
        prompts.append({"text": text, "stop": list(request.stop), "max_new_tokens": request.max_new_tokens})
    return prompts


# --------------------------------------------------------------------------------------------
# workers: one system x setting per child process


def generate_with_evalkit(prompts: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    from evalkit.engine import GenerateRequest
    from evalkit.engine.generate import GenerationStats, iter_generate
    from evalkit.model import load_model

    loaded = load_model(Path(opts["model"]), device=opts["device"], dtype=opts["dtype"])
    model, tokenizer = loaded.model, loaded.tokenizer
    requests = [
        GenerateRequest(p["text"], opts.get("max_new_tokens") or p["max_new_tokens"], stop=tuple(p["stop"]))
        for p in prompts
    ]
    # The budget never binds here: every system may keep all its rows' caches at once.
    need = max(len(tokenizer(p["text"], add_special_tokens=False)["input_ids"]) + p["max_new_tokens"] for p in prompts)
    stats = GenerationStats()
    warm_up(model, opts["device"])
    start = time.perf_counter()
    results = dict(iter_generate(
        model, tokenizer, requests, max_rows=opts["slots"], token_budget=opts["slots"] * need,
        max_length=int(model.config.max_position_embeddings), stats=stats,
    ))
    synchronize(opts["device"])
    seconds = time.perf_counter() - start
    ordered = [results[i] for i in range(len(requests))]
    flops_per_token = 2.0 * (body_parameters(model) + model.config.hidden_size * model.config.vocab_size)
    return {
        "seconds": seconds,
        "token_ids": [list(r.token_ids) for r in ordered],
        "texts": [r.text for r in ordered],
        "decode_seconds": stats.decode_seconds,
        "decode_flops": flops_per_token * stats.decode_row_tokens,
        "decode_steps": stats.decode_steps,
        "decode_row_tokens": stats.decode_row_tokens,
        "prefill_seconds": stats.prefill_seconds,
    }


def generate_with_transformers(prompts: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        opts["model"], dtype=getattr(torch, opts["dtype"]), local_files_only=True
    ).to(opts["device"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(opts["model"], local_files_only=True)
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [tokenizer(p["text"], add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
    token_ids: list[list[int]] = [[] for _ in prompts]
    warm_up(model, opts["device"])
    start = time.perf_counter()
    for first in range(0, len(order), opts["slots"]):
        batch = order[first:first + opts["slots"]]
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[r, width - len(encoded[i]):] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), do_sample=False,
                max_new_tokens=max(prompts[i]["max_new_tokens"] for i in batch),
                stop_strings=prompts[batch[0]]["stop"] or None, tokenizer=tokenizer, pad_token_id=pad_id,
            )
        for r, i in enumerate(batch):
            token_ids[i] = out[r, width:].tolist()
    synchronize(opts["device"])
    return {"seconds": time.perf_counter() - start, "token_ids": token_ids}


def generate_with_lm_eval(prompts: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=opts["model"], batch_size=int(opts["batch_size"]), dtype=opts["dtype"], device=opts["device"])
    instances = [
        Instance(
            request_type="generate_until", doc={}, idx=i,
            arguments=(p["text"], {"until": p["stop"], "max_gen_toks": p["max_new_tokens"], "do_sample": False}),
        )
        for i, p in enumerate(prompts)
    ]
    warm_up(lm.model, opts["device"])
    with time_limit(opts["time_limit"]):
        start = time.perf_counter()
        texts = lm.generate_until(instances, disable_tqdm=True)
        synchronize(opts["device"])
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "texts": list(texts)}


def generate_with_vllm(prompts: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
    """vLLM through evalkit's backend (`--backend vllm`): the same prompts, greedy, `--slots`
    sequences at once (its max_num_seqs), vLLM planning its own batches."""
    from evalkit.engine import EngineSettings, GenerateRequest
    from evalkit.engine.vllm_backend import VllmEngine

    engine = VllmEngine.from_folder(opts["model"], settings=EngineSettings(max_rows=opts["slots"]), dtype=opts["dtype"])
    requests = [GenerateRequest(p["text"], p["max_new_tokens"], stop=tuple(p["stop"])) for p in prompts]
    engine.generate(requests[:1])  # warm-up: CUDA graphs, kernels
    start = time.perf_counter()
    results = engine.generate(requests)
    synchronize(opts["device"])
    return {
        "seconds": time.perf_counter() - start,
        "token_ids": [list(r.token_ids) for r in results],
        "texts": [r.text for r in results],
    }


SYSTEMS = {
    "evalkit": generate_with_evalkit, "transformers": generate_with_transformers, "lm_eval": generate_with_lm_eval,
    "vllm": generate_with_vllm,
}


def run_worker(opts: dict[str, Any]) -> int:
    """Child-process entry: one workload with one system, JSON to opts["out"]."""
    from transformers import AutoTokenizer

    if opts["mem_limit_mb"] and not opts["device"].startswith("cuda"):
        limit = int(opts["mem_limit_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    tokenizer = AutoTokenizer.from_pretrained(opts["model"], local_files_only=True)
    prompts = build_workload(opts["workload"], opts["n_prompts"], tokenizer)
    try:
        result = SYSTEMS[opts["system"]](prompts, opts)
    except OutOfTime:
        result = {"timed_out": True}
    result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if opts["device"].startswith("cuda"):
        import torch

        result["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    Path(opts["out"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------
# the parent: spawn workers, compare, report


def identical_tokens(ours: list[list[int]], theirs: list[list[int]]) -> int:
    """Prompts whose evalkit tokens are a prefix of transformers' (transformers pads finished rows
    and runs on to the batch's end; evalkit stops at the stop string or end of sequence)."""
    return sum(a == b[: len(a)] for a, b in zip(ours, theirs))


def bench_workload(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n_prompts = args.n_prompts or WORKLOADS[name][1]
    common = {
        "workload": name, "n_prompts": n_prompts, "model": str(args.model), "dtype": args.dtype,
        "device": args.device, "mem_limit_mb": args.mem_limit_mb, "slots": args.slots, "time_limit": None,
    }
    script = str(Path(__file__).resolve())
    log(f"{name}: {n_prompts} prompts, {args.slots} slots")
    ours = spawn_worker(script, {**common, "system": "evalkit"}, workdir, f"{name}-evalkit")
    if "failed" in ours:
        raise SystemExit(f"evalkit failed on {name}: {ours['failed']}")
    tokens = sum(len(t) for t in ours["token_ids"])
    log(f"  evalkit: {ours['seconds']:.1f} s, {tokens} tokens, peak {ours['peak_mem_mb']:.0f} MB")
    hf = spawn_worker(script, {**common, "system": "transformers"}, workdir, f"{name}-transformers")
    if "failed" in hf:
        raise SystemExit(f"transformers failed on {name}: {hf['failed']}")
    log(f"  transformers bs={args.slots}: {hf['seconds']:.1f} s, peak {hf['peak_mem_mb']:.0f} MB")
    runs: dict[str, dict[str, Any]] = {}
    for batch_size in args.lmeval_batch_sizes:
        best = min((r["seconds"] for r in runs.values() if "seconds" in r), default=None)
        limit = best + 5 if best is not None and args.early_stop else None
        run = spawn_worker(script, {**common, "system": "lm_eval", "batch_size": batch_size, "time_limit": limit}, workdir, f"{name}-lm_eval-bs{batch_size}")
        if run.get("timed_out"):
            run["note"] = f"stopped after {limit:.0f} s (slower than the best so far)"
        elif "failed" in run:
            run["note"] = f"failed: {run['failed'][-120:]}"
        runs[batch_size] = run
        log(f"  lm-eval bs={batch_size}: " + (f"{run['seconds']:.1f} s, peak {run['peak_mem_mb']:.0f} MB" if "seconds" in run else run["note"]))
    vllm = None
    if args.with_vllm:
        vllm = spawn_worker(script, {**common, "system": "vllm"}, workdir, f"{name}-vllm")
        if "failed" in vllm:
            raise SystemExit(f"vLLM failed on {name}: {vllm['failed']}")
        log(f"  vLLM ({args.slots} sequences): {vllm['seconds']:.1f} s")
    done = {bs: r for bs, r in runs.items() if "seconds" in r}
    best_bs = min(done, key=lambda bs: done[bs]["seconds"]) if done else None
    lmeval = done.get(best_bs) if best_bs else None
    identical = identical_tokens(ours["token_ids"], hf["token_ids"])
    same_text_lmeval = sum(a == b for a, b in zip(ours["texts"], lmeval["texts"])) if lmeval else None
    row = {
        "tokens_per_s": tokens / ours["seconds"],
        "lmeval_tokens_per_s": tokens / lmeval["seconds"] if lmeval else None,
        "hf_tokens_per_s": tokens / hf["seconds"],
        "ratio_vs_lmeval": lmeval["seconds"] / ours["seconds"] if lmeval else None,
        "ratio_vs_hf": hf["seconds"] / ours["seconds"],
        "peak_mem_mb": ours["peak_mem_mb"],
        "lmeval_peak_mem_mb": lmeval["peak_mem_mb"] if lmeval else None,
        "hf_peak_mem_mb": hf["peak_mem_mb"],
        "identical_to_hf": identical == n_prompts,
        "identical_to_hf_count": identical,
        "identical_text_to_lmeval_count": same_text_lmeval,
        "lmeval_batch_size": int(best_bs) if best_bs else None,
        # vLLM, when asked for (--with-vllm): its tok/s on evalkit's token count, evalkit's ratio to
        # it, and how many of its greedy outputs are transformers' too.
        "vllm_tokens_per_s": tokens / vllm["seconds"] if vllm else None,
        "ratio_vs_vllm": vllm["seconds"] / ours["seconds"] if vllm else None,
        "vllm_identical_to_hf_count": identical_tokens(vllm["token_ids"], hf["token_ids"]) if vllm else None,
        "n_prompts": n_prompts,
        "tokens": tokens,
    }
    row["decode_flop_fraction"] = ours["decode_flops"] / ours["decode_seconds"] / (args.matmul_gflops * 1e9)
    extra = {
        "decode_flops": ours["decode_flops"], "decode_seconds": ours["decode_seconds"],
        "prefill_seconds": ours["prefill_seconds"], "lmeval_runs": {bs: {k: r.get(k) for k in ("seconds", "peak_mem_mb", "note")} for bs, r in runs.items()},
    }
    return {"row": row, "extra": extra}


def decode_sweep(args: argparse.Namespace, workdir: Path) -> dict[int, dict[str, float]]:
    """evalkit alone on `slots` chat prompts per slot count, `--decode-tokens` new tokens each."""
    script = str(Path(__file__).resolve())
    sweep: dict[int, dict[str, float]] = {}
    for slots in args.decode_slots:
        opts = {
            "workload": "safety_chat", "n_prompts": slots, "model": str(args.model), "dtype": args.dtype,
            "device": args.device, "mem_limit_mb": args.mem_limit_mb, "slots": slots, "time_limit": None,
            "system": "evalkit", "max_new_tokens": args.decode_tokens,
        }
        run = spawn_worker(script, opts, workdir, f"decode-{slots}")
        if "failed" in run:
            raise SystemExit(f"evalkit failed in the decode sweep at {slots} slots: {run['failed']}")
        sweep[slots] = {
            "decode_flop_fraction": run["decode_flops"] / run["decode_seconds"] / (args.matmul_gflops * 1e9),
            "decode_tokens_per_s": run["decode_row_tokens"] / run["decode_seconds"],
            "rows_per_step": run["decode_row_tokens"] / max(1, run["decode_steps"]),
            "peak_mem_mb": run["peak_mem_mb"],
        }
        log(
            f"  decode at {slots} slots: {sweep[slots]['decode_tokens_per_s']:.0f} tok/s, "
            f"{sweep[slots]['rows_per_step']:.0f} rows per step, "
            f"{sweep[slots]['decode_flop_fraction']:.1%} of the matmul rate"
        )
    return sweep


def print_table(results: dict[str, dict], summary: dict[str, Any], footer: str) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = Table(title=f"generation: evalkit vs lm-eval generate_until vs transformers generate ({summary['device']}, {summary['dtype']})")
    for column in ("workload", "tok/s evalkit", "tok/s lm-eval (bs)", "tok/s HF", "x lm-eval", "x HF", "peak MB ek / lm / HF", "identical to HF", "decode FLOP frac."):
        table.add_column(column)
    console_notes: list[str] = []
    for name, result in results.items():
        r = result["row"]
        table.add_row(
            name, fmt(r["tokens_per_s"], ".1f"), f"{fmt(r['lmeval_tokens_per_s'], '.1f')} ({r['lmeval_batch_size']})",
            fmt(r["hf_tokens_per_s"], ".1f"), fmt(r["ratio_vs_lmeval"], ".2f"), fmt(r["ratio_vs_hf"], ".2f"),
            f"{fmt(r['peak_mem_mb'], '.0f')} / {fmt(r['lmeval_peak_mem_mb'], '.0f')} / {fmt(r['hf_peak_mem_mb'], '.0f')}",
            f"{r['identical_to_hf_count']}/{r['n_prompts']}",
            fmt(r["decode_flop_fraction"], ".1%"),
        )
        if r["vllm_tokens_per_s"] is not None:
            console_notes.append(
                f"{name}: vLLM {r['vllm_tokens_per_s']:.1f} tok/s, evalkit {r['ratio_vs_vllm']:.2f}x of it, "
                f"vLLM greedy identical to HF {r['vllm_identical_to_hf_count']}/{r['n_prompts']}"
            )
    console = Console(stderr=True, width=170)
    console.print(table)
    for line in console_notes:
        console.print(line)
    if summary["decode_sweep"]:
        sweep = Table(title=f"evalkit decode, slots kept full (chat prompts, {summary['decode_tokens']} new tokens each)")
        for column in ("slots", "rows per step", "decode tok/s", "FLOP fraction", "peak MB"):
            sweep.add_column(column)
        for slots, point in summary["decode_sweep"].items():
            sweep.add_row(
                str(slots), f"{point['rows_per_step']:.0f}", f"{point['decode_tokens_per_s']:.0f}",
                f"{point['decode_flop_fraction']:.1%}", f"{point['peak_mem_mb']:.0f}",
            )
        console.print(sweep)
    console.print(
        f"decode FLOP fraction at the largest slot count: {fmt(summary['decode_flop_fraction'], '.1%')} of "
        f"{summary['matmul_gflops']:.0f} GFLOP/s (workloads together: "
        f"{fmt(summary['decode_flop_fraction_workloads'], '.1%')}); {footer}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from evalkit.model import default_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_dir(), help="a local Hugging Face folder")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (every system)")
    parser.add_argument("--n-prompts", type=int, default=None, help="prompts per workload (default: " + ", ".join(f"{k} {v[1]}" for k, v in WORKLOADS.items()) + ")")
    parser.add_argument("--slots", type=int, default=64, help="evalkit's slots = transformers' batch size")
    parser.add_argument("--decode-slots", default="64,128,256", help="slot counts of the decode sweep (empty: none)")
    parser.add_argument("--decode-tokens", type=int, default=64, help="new tokens per prompt in the decode sweep")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS))
    parser.add_argument("--lmeval-batch-sizes", default=",".join(LMEVAL_BATCH_SIZES), help="tried in this order")
    parser.add_argument("--mem-limit-mb", type=int, default=default_mem_limit_mb(), help="address-space limit per CPU worker (0: none)")
    parser.add_argument("--no-early-stop", dest="early_stop", action="store_false", help="let every lm-eval batch size finish")
    parser.add_argument("--with-vllm", action="store_true", help="also run vLLM (evalkit[vllm], CUDA) with --slots sequences")
    args = parser.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.lmeval_batch_sizes = [b.strip() for b in args.lmeval_batch_sizes.split(",") if b.strip()]
    try:
        args.decode_slots = sorted({int(n) for n in args.decode_slots.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--decode-slots takes comma-separated slot counts; got {args.decode_slots!r}")
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a Hugging Face model folder (run `evalkit install-model` for the default)")
    if args.with_vllm:
        from evalkit.engine.vllm_backend import import_vllm, require_cuda
        from evalkit.errors import EngineError

        try:
            import_vllm()
            require_cuda()
        except EngineError as error:
            parser.error(f"--with-vllm: {error}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    matmul_gflops = measure_matmul(args.device, "float32" if args.dtype == "float16" and args.device == "cpu" else args.dtype)
    log(f"matmul: {matmul_gflops:.1f} GFLOP/s ({args.dtype}, {args.device})")
    args.matmul_gflops = matmul_gflops
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        for name in args.workloads:
            results[name] = bench_workload(name, args, Path(tmp))
        sweep = decode_sweep(args, Path(tmp))
    decode_flops = sum(r["extra"]["decode_flops"] for r in results.values())
    decode_seconds = sum(r["extra"]["decode_seconds"] for r in results.values())
    summary = {
        "workloads": {name: result["row"] for name, result in results.items()},
        "decode_flop_fraction": sweep[max(sweep)]["decode_flop_fraction"] if sweep else None,
        "decode_flop_fraction_workloads": decode_flops / decode_seconds / (matmul_gflops * 1e9) if decode_seconds else None,
        "decode_sweep": sweep,
        "decode_tokens": args.decode_tokens,
        "matmul_gflops": matmul_gflops,
        "slots": args.slots,
        "model": str(args.model),
        "device": args.device,
        "dtype": args.dtype,
    }
    footer = (
        f"total {time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.1f} at start and "
        f"{os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} CPUs (other processes distort timings)"
    )
    print_table(results, summary, footer)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        raise SystemExit(run_worker(json.loads(sys.argv[2])))
    raise SystemExit(main())
