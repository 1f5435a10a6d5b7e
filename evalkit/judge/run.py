"""The judge pass: after every suite has run, a local judge model reads each answer it can judge.

The runner keeps the completions of the run in memory, so the judge sees answers to harmful prompts
even though their rows keep only a digest. Each judged row gains `judge` = {prompt, output,
output_sha256, finish_reason} and the judge's per-sample values (parse.py). A judge answer that
does not parse, to a harmful prompt whose completion is redacted, is stored as a digest too: it
could quote the completion. (A parsed answer is exactly the fixed format, so it quotes nothing.)

The judge is loaded by the model loader and run by the same engine as the model under test,
greedy; when it is the same checkpoint the loaded model is reused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from evalkit.config import RunConfig
from evalkit.engine import Engine, EngineSettings, GenerateRequest, GenerateResult
from evalkit.engine.memory import choose_token_budget
from evalkit.errors import ConfigError, ModelError
from evalkit.judge.parse import judge_values
from evalkit.judge.prompts import PROMPT_FOR_SCORER, RAW_SUFFIX, get_prompt
from evalkit.model import LoadedModel, ModelManifest, build_manifest, load_model
from evalkit.prompts import render


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]: ...


def judge_path(judge: str) -> Path:
    """The judge's checkpoint; `default` (as in a profile's `judge: default`) is the installed
    default model, as for --model."""
    if judge == "default":
        from evalkit.model.default_model import default_model_dir

        return default_model_dir()
    return Path(judge).expanduser()


def check_judge_plan(judge: str | None, scorers: Mapping[str, str]) -> None:
    """Before any model work: the judge path exists and at least one suite can be judged."""
    if judge is None:
        return
    if not judge_path(judge).exists():
        raise ModelError(f"judge path {judge} does not exist; give a local folder or .gguf file to --judge")
    if not any(s in PROMPT_FOR_SCORER for s in scorers.values()):
        raise ConfigError(
            f"--judge was given but no suite here is judged (suites scored by "
            f"{', '.join(sorted(PROMPT_FOR_SCORER))}; these use {', '.join(sorted(set(scorers.values())))})"
        )


def judge_request(prompt_version: str, request: str, answer: str, chat: bool) -> GenerateRequest:
    """The generation request that asks the judge about one answer."""
    prompt = get_prompt(prompt_version)
    text = render(prompt.template, {"request": request, "answer": answer})
    return GenerateRequest(
        prompt=text if chat else text + RAW_SUFFIX,
        max_new_tokens=prompt.max_new_tokens,
        stop=prompt.stop,
        chat=chat,
    )


def judge_record(prompt_version: str, output: str, finish_reason: str, redacted: bool) -> dict[str, Any]:
    """The row's `judge` entry; an unparsable answer to a redacted completion keeps only its digest."""
    record: dict[str, Any] = {
        "prompt": prompt_version,
        "output_sha256": hashlib.sha256(output.encode("utf-8")).hexdigest(),
        "finish_reason": finish_reason,
        "output": output,
    }
    if redacted and judge_values({"judge": record, "values": {"refused": 0.0}})["judge_unparsed"]:
        del record["output"]
    return record


def _load(config: RunConfig, model_path: Path, loaded: LoadedModel, manifest: ModelManifest) -> tuple[LoadedModel, ModelManifest, bool]:
    """The judge, its manifest, and whether it is the model under test (then reused, not reloaded)."""
    assert config.judge is not None
    path = judge_path(config.judge)
    if path.resolve() == model_path.expanduser().resolve():
        return loaded, manifest, True
    judge = load_model(path, device=config.device, dtype=config.dtype, allow_pickle=config.allow_pickle)
    return judge, build_manifest(path), False


def judge_rows(
    generate: Callable[[list[GenerateRequest]], list[GenerateResult]],
    rows: Sequence[dict[str, Any]],
    scorers: Mapping[str, str],
    completions: Mapping[tuple[str, int], str],
    *,
    chat: bool,
) -> dict[str, Any]:
    """Judge every row of a judgeable suite in place, with `generate` (the judge engine's); return
    what the report records about the pass: prompts, suites, rows judged, unparsed answers.

    rows: samples.jsonl rows in their final order (completions to harmful prompts already removed);
    scorers: suite ref -> scorer; completions: (suite ref, row index) -> the model's completion
    (a row with several sampled completions has none here, and is not judged: `skipped`).
    """
    judgeable = [r for r in rows if scorers.get(r["suite"]) in PROMPT_FOR_SCORER]
    targets = [r for r in judgeable if (r["suite"], r["index"]) in completions]
    versions = [PROMPT_FOR_SCORER[scorers[r["suite"]]] for r in targets]
    results = generate([
        judge_request(v, r["prompt"], completions[(r["suite"], r["index"])], chat) for r, v in zip(targets, versions)
    ])
    unparsed = 0
    for row, version, result in zip(targets, versions, results):
        # A row without its completion is a redacted answer to a harmful prompt (not --show-harmful).
        row["judge"] = judge_record(version, result.text, result.finish_reason, "completion" not in row)
        values = judge_values(row)
        unparsed += int(values["judge_unparsed"])
        row["values"] = {**row["values"], **values}
    return {
        "chat": chat,
        "generation": "greedy",
        "prompts": {v: get_prompt(v).describe() for v in sorted(set(versions))},
        "suites": list(dict.fromkeys(r["suite"] for r in targets)),
        "rows": len(targets),
        "unparsed": unparsed,
        "skipped": len(judgeable) - len(targets),
    }


def run_judge(
    config: RunConfig,
    rows: Sequence[dict[str, Any]],
    scorers: Mapping[str, str],
    completions: Mapping[tuple[str, int], str],
    *,
    model_path: Path,
    loaded: LoadedModel,
    manifest: ModelManifest,
    progress: Progress,
) -> dict[str, Any]:
    """Load the judge (config.judge), judge the rows in place (judge_rows) with the engine, greedy;
    return the report's `judge` entry: the judge's identity and the pass."""
    started = time.time()
    judge, judge_manifest, same = _load(config, model_path, loaded, manifest)
    budget = choose_token_budget(judge.model, config.token_budget)
    engine = Engine(judge.model, judge.tokenizer, EngineSettings(
        max_rows=config.batch_size, token_budget=budget.tokens, deterministic=config.deterministic,
    ))
    n = sum(1 for r in rows if scorers.get(r["suite"]) in PROMPT_FOR_SCORER)
    with progress.task(f"judge: {n} answers", None):
        judged = judge_rows(engine.generate, rows, scorers, completions, chat=judge.chat_template is not None)
    return {
        "name": judge.source.name,
        "format": judge.format,
        "manifest_digest": judge_manifest.digest,
        "files": len(judge_manifest.files),
        "bytes": sum(f.size for f in judge_manifest.files),
        "chat_template_sha256": judge.chat_template_sha256,
        "architecture": type(judge.model).__name__,
        "parameters": sum(p.numel() for p in judge.model.parameters()),
        "same_as_model": same,
        "precision": {"device": judge.precision.device, "dtype": judge.precision.dtype},
        **judged,
        "seconds": round(time.time() - started, 3),
    }
