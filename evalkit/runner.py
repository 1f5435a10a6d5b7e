"""The runner: the only module that knows the order of the pipeline.

config -> suites (all validated before the model loads) -> model + manifest -> engine -> per-sample
rows (journaled as they complete) -> aggregates -> report files -> signed envelope.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

import evalkit
from evalkit import backends
from evalkit import report as files
from evalkit.config import RunConfig, SuiteSpec
from evalkit.engine import Engine, EngineSettings
from evalkit.engine.selftest import generation_self_test, invariance_self_test
from evalkit.environment import describe_environment, git_commit
from evalkit.judge.agreement import add_judge_fields
from evalkit.judge.run import check_judge_plan, run_judge
from evalkit.errors import ConfigError, ReportError, VerificationError
from evalkit.model import LoadedModel, build_manifest, choose_precision, list_model_files
from evalkit.prompts import build_requests, choice_texts, row_target, target_text
from evalkit.report.files import Journal, canonical, json_line, json_text, read_jsonl, write_atomic, write_lines_atomic
from evalkit.report.html import REPORT_HTML, render_html
from evalkit.report.markdown import render_markdown
from evalkit.report.samples import generation_row, multiple_choice_row, suite_results
from evalkit.scoring.refusal import CLASSIFIER_VERSION
from evalkit.suite import Sample, Suite, load_suite
from evalkit.paths import cache_dir
from evalkit.perf import grid as perf_grid
from evalkit.perf.measure import run_perf_suite
from evalkit.suite.pack import load_suite_ref
from evalkit.trust import PAYLOAD_TYPE_INTOTO, PREDICATE_TYPE_REPORT, SigningKey, build_statement, load_verify_key
from evalkit.trust import resource
from evalkit.trust import sign_envelope, statement_bytes, write_envelope
from evalkit.trust.merkle import MERKLE_SCHEME, merkle_root


class Progress(Protocol):
    """Progress reporting, supplied by the CLI (rich bars) or silent in library use."""

    def task(self, description: str, total: int | None) -> ContextManager[Callable[[int], None]]: ...


class SilentProgress:
    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        yield lambda n: None


@dataclass(frozen=True)
class PlannedSuite:
    """pack: where the suite came from a pack, its sha256, file name and verified signers."""

    spec: SuiteSpec
    suite: Suite
    fewshot: int
    samples: tuple[Sample, ...]
    pack: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunOutcome:
    out_dir: Path
    report: dict[str, Any]
    signed_by: tuple[str, ...]


def select_samples(samples: Sequence[Sample], limit: int | None, stratum: str | None) -> tuple[Sample, ...]:
    """At most `limit` samples, taken round-robin across the values of `stratum` (in order of first
    appearance), returned in suite order. Deterministic: the same suite and limit give the same
    subset on every machine."""
    if limit is None or limit >= len(samples):
        return tuple(samples)
    buckets: dict[Any, list[int]] = {}
    for position, sample in enumerate(samples):
        key = sample.fields.get(stratum) if stratum else None
        buckets.setdefault(key, []).append(position)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for positions in buckets.values():
            if depth < len(positions) and len(chosen) < limit:
                chosen.append(positions[depth])
        depth += 1
    return tuple(samples[p] for p in sorted(chosen))


def plan_suites(config: RunConfig) -> list[PlannedSuite]:
    """Load and validate every suite before any model work, so mistakes surface in seconds."""
    planned = []
    refs = [spec.ref for spec in config.suites]
    if len(set(refs)) != len(refs):
        raise ConfigError(f"a suite is listed twice with the same few-shot setting: {', '.join(refs)}")
    trusted = [load_verify_key(Path(p)) for p in config.trust]
    for spec in config.suites:
        folder, pack = load_suite_ref(
            spec.suite, trusted_keys=trusted, require_signed=config.require_signed_suites, cache_dir=cache_dir()
        )
        suite = load_suite(folder)
        if pack is not None and suite.digest != pack["suite_digest"]:
            raise VerificationError(f"suite pack {pack['pack_file']} changed after it was checked; run again")
        fewshot_cfg = suite.manifest.fewshot
        fewshot = spec.fewshot if spec.fewshot is not None else (fewshot_cfg.default if fewshot_cfg else 0)
        if fewshot and (fewshot_cfg is None or fewshot > fewshot_cfg.max):
            most = fewshot_cfg.max if fewshot_cfg else 0
            raise ConfigError(f"suite {suite.name!r} allows at most {most} few-shot examples, not {fewshot}")
        stratum = suite.manifest.group_by[0] if suite.manifest.group_by else None
        samples = select_samples(perf_grid.eval_samples(suite, config.perf), config.suite_limit(spec), stratum)
        planned.append(PlannedSuite(spec, suite, fewshot, samples, pack))
    return planned


def _is_harmful(suite: Suite, sample: Sample) -> bool:
    harmful = suite.manifest.harmful
    if harmful is None:
        return False
    return harmful.field is None or str(sample.fields.get(harmful.field)) in harmful.values


def _run_suite(
    planned: PlannedSuite, engine: Engine, journal: Journal, config: RunConfig, progress: Progress,
    completions: dict[tuple[str, int], str] | None = None,
) -> None:
    """completions: filled with (suite ref, row index) -> completion, for the judge pass."""
    suite, manifest = planned.suite, planned.suite.manifest
    ref = planned.spec.ref
    prompted = build_requests(
        suite, planned.samples, planned.fewshot, run_seed=config.seed, system_prompt=config.system_prompt
    )
    if manifest.kind == "multiple_choice":
        flat = [(s, c) for s, p in enumerate(prompted) for c in range(len(p.loglikelihood))]
        requests = [prompted[s].loglikelihood[c] for s, c in flat]
        pending: dict[int, dict[int, Any]] = {}
        with progress.task(f"{ref}: scoring {len(requests)} choices", len(requests)) as advance:
            for index, result in engine.iter_loglikelihood(requests, advance):
                s, c = flat[index]
                got = pending.setdefault(s, {})
                got[c] = result
                item = prompted[s]
                if len(got) == len(item.loglikelihood):
                    del pending[s]
                    fields = item.sample.fields
                    journal.append(multiple_choice_row(
                        ref, s, item.sample, item.prompt, choice_texts(manifest, fields),
                        row_target(manifest, fields), [got[k] for k in range(len(got))], manifest.scorer,
                    ))
    else:
        flat = [(s, k) for s, p in enumerate(prompted) for k in range(len(p.generations))]
        requests = [prompted[s].generations[k] for s, k in flat]
        done: dict[int, dict[int, Any]] = {}
        with progress.task(f"{ref}: generating {len(requests)} answers", len(requests)) as advance:
            for index, result in engine.iter_generate(requests, advance):
                s, k = flat[index]
                got = done.setdefault(s, {})
                got[k] = result
                item = prompted[s]
                if len(got) < len(item.generations):
                    continue
                del done[s]
                results = [got[k] for k in range(len(got))]
                if completions is not None and len(results) == 1:  # in memory: the row may keep only a digest
                    completions[(ref, s)] = results[0].text
                target = target_text(manifest, item.sample.fields).strip() if manifest.target else None
                journal.append(generation_row(
                    ref, s, item.sample, item.prompt, results, manifest.scorer, target,
                    harmful=_is_harmful(suite, item.sample), show_harmful=config.show_harmful,
                ))


def _generation_entry(manifest: Any, config: RunConfig) -> dict[str, Any]:
    """How a generation suite decoded: what a reader needs to judge or repeat its completions."""
    gen = manifest.generation_or_default
    system = config.system_prompt if config.system_prompt is not None else manifest.prompt.system
    return {
        **gen.model_dump(),
        "chat": manifest.prompt.chat,
        "system_prompt": system if manifest.prompt.chat else None,
        "seeds": "sha256(run_seed, suite, sample id, repeat)" if gen.temperature > 0 else None,
    }


def _suite_entry(planned: PlannedSuite, limit: int | None, config: RunConfig) -> dict[str, Any]:
    manifest = planned.suite.manifest
    return {
        "ref": planned.spec.ref,
        "name": manifest.name,
        "version": manifest.version,
        "digest": planned.suite.digest,
        "source": str(planned.spec.suite),
        "kind": manifest.kind,
        "scorer": manifest.scorer,
        "classifier": CLASSIFIER_VERSION if manifest.scorer in ("refusal", "strongreject") else None,
        "fewshot": planned.fewshot,
        "limit": limit,
        "n_samples": len(planned.samples),
        "description": manifest.description.strip(),
        "license": manifest.license,
        "citation": manifest.citation,
        "group_by": list(manifest.group_by),
        "metric_specs": [m.model_dump() for m in manifest.metrics],
        "generation": _generation_entry(manifest, config) if manifest.kind == "generation" else None,
        "pack": None if planned.pack is None else {
            "sha256": planned.pack["pack_sha256"],
            "file": planned.pack["pack_file"],
            "signed_by": planned.pack["signed_by"],
        },
    }


def _model_entry(loaded: LoadedModel, manifest_digest: str, n_files: int, n_bytes: int) -> dict[str, Any]:
    return {
        "name": loaded.source.name,
        "format": loaded.format,
        "manifest_digest": manifest_digest,
        "manifest_file": files.MODEL_MANIFEST,
        "files": n_files,
        "bytes": n_bytes,
        "chat_template_sha256": loaded.chat_template_sha256,
        "architecture": type(loaded.model).__name__,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
    }


def prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ReportError(f"{out_dir} is not empty; choose a new --out folder (evalkit never overwrites a report)")
    out_dir.mkdir(parents=True, exist_ok=True)


def run_evaluation(
    config: RunConfig,
    out_dir: Path,
    *,
    signing_keys: Sequence[SigningKey] = (),
    progress: Progress = SilentProgress(),
) -> RunOutcome:
    if not config.model:
        raise ConfigError("no model given; pass --model PATH (a local folder or .gguf file)")
    started = time.time()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    planned = plan_suites(config)
    scorers = {p.spec.ref: p.suite.manifest.scorer for p in planned}
    check_judge_plan(config.judge, scorers)  # a missing judge or nothing to judge fails before any loading
    backends.check_plan(config, [p.suite.manifest.kind for p in planned])  # vLLM missing, no CUDA, …
    choose_precision(config.device, config.dtype)  # a bad --device/--dtype fails before any loading
    prepare_out_dir(out_dir)
    model_path = Path(config.model)
    loaded = backends.load(config, model_path)  # for vLLM: checked, weights left to vLLM
    total_bytes = sum(real.stat().st_size for _, real in list_model_files(model_path))
    with progress.task("hashing model files", total_bytes) as advance:
        manifest = build_manifest(model_path, progress=advance)

    budget = backends.token_budget(config, loaded)
    settings = EngineSettings(
        max_rows=config.batch_size, token_budget=budget.tokens, deterministic=config.deterministic
    )
    engine = backends.build_engine(config, loaded, settings)
    journal_path = out_dir / files.SAMPLES_JOURNAL
    journal = Journal(journal_path)
    suite_seconds: dict[str, float] = {}
    completions: dict[tuple[str, int], str] = {}
    try:
        for item in planned:
            t0 = time.time()
            if item.suite.manifest.kind == perf_grid.KIND:  # timed on the model itself, not the engine
                timing = perf_grid.settings(item.suite, config.perf)
                run_perf_suite(item.spec.ref, item.samples, timing, loaded, journal, progress)
            else:
                _run_suite(item, engine, journal, config, progress, completions)
            suite_seconds[item.spec.ref] = round(time.time() - t0, 3)
    finally:
        journal.close()
    with progress.task("invariance self-test", None):
        self_test = invariance_self_test(engine)
        if any(item.suite.manifest.kind == "generation" for item in planned):
            self_test["generation"] = generation_self_test(engine)

    # The journal is in completion order (which depends on batching); samples.jsonl is in suite
    # order, so its bytes, and its digest, depend only on what was computed.
    order = {item.spec.ref: position for position, item in enumerate(planned)}
    rows = sorted(read_jsonl(journal_path), key=lambda r: (order[r["suite"]], r["index"]))
    # The judge reads the in-memory completions and adds its answer and values to the rows in place.
    judge_entry = None if config.judge is None else run_judge(
        config, rows, scorers, completions, model_path=model_path, loaded=loaded, manifest=manifest, progress=progress
    )
    lines = [json_line(r) for r in rows]
    samples_sha256 = write_lines_atomic(out_dir / files.SAMPLES_JSONL, lines)
    # Root of a Merkle tree over the lines: one sample can be disclosed with a proof (evalkit disclose).
    samples_root = merkle_root([line.encode("utf-8")[:-1] for line in lines])
    journal_path.unlink()

    suites = []
    for item in planned:
        entry = _suite_entry(item, config.suite_limit(item.spec), config)
        add_judge_fields(entry, rows)  # the judge's metrics, agreement, or a note that it was needed
        entry["results"] = suite_results(entry, rows)
        if entry["kind"] == perf_grid.KIND:
            entry["performance"] = perf_grid.performance_entry([r for r in rows if r["suite"] == entry["ref"]])
        suites.append(entry)
    n_files = len(manifest.files)
    precision = loaded.precision
    report: dict[str, Any] = {
        "schema": files.REPORT_SCHEMA,
        "evalkit": {"version": evalkit.__version__, "git_commit": git_commit()},
        "config": config.model_dump(mode="json"),
        "model": _model_entry(loaded, manifest.digest, n_files, sum(f.size for f in manifest.files)),
        "precision": {"device": precision.device, "dtype": precision.dtype, "reason": precision.reason},
        "environment": describe_environment(precision.device),
        "engine": {
            "max_rows": settings.max_rows,
            "token_budget": settings.token_budget,
            "token_budget_reason": budget.reason,
            "max_length": engine.max_length,
            "backend": backends.describe(engine),
            "generation": "continuous batching over max_rows slots; greedy, or seeded sampling per suite",
        },
        "determinism": {
            "mode": "deterministic" if config.deterministic else "fast",
            "self_test": self_test,
        },
        "seeds": {"run_seed": config.seed},
        "suites": suites,
        "samples": {
            "file": files.SAMPLES_JSONL, "sha256": samples_sha256, "rows": len(rows),
            "merkle_root": samples_root, "merkle": MERKLE_SCHEME,
        },
        "redaction": {
            "harmful_completions": "shown" if config.show_harmful else "sha256",
            "note": "shown in full (--show-harmful)" if config.show_harmful
            else "completions to harmful prompts are stored as SHA-256 digests only (--show-harmful to keep them)",
        },
        "timing": {
            "started_at": started_at,
            "seconds": round(time.time() - started, 3),
            "suite_seconds": suite_seconds,
        },
    }
    if judge_entry is not None:
        report["judge"] = judge_entry
    report = canonical(report)
    write_atomic(out_dir / files.MODEL_MANIFEST, json_text(manifest.to_dict()))
    write_atomic(out_dir / files.REPORT_JSON, json_text(report))
    write_atomic(out_dir / files.REPORT_MD, render_markdown(report))
    # Rendered without a verdict: `evalkit html OUT --pub KEY` re-renders it with one.
    write_atomic(out_dir / REPORT_HTML, render_html(report))
    signed_by: tuple[str, ...] = ()
    if signing_keys:
        write_envelope(out_dir / files.ENVELOPE, sign_report(report, list(signing_keys)))
        signed_by = tuple(k.keyid for k in signing_keys)
    return RunOutcome(out_dir=out_dir, report=report, signed_by=signed_by)


def report_statement(report: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement of a report: subjects are the model and the suites, by digest; the
    predicate is the report itself (which carries the digest of samples.jsonl)."""
    subjects = [resource(f"model:{report['model']['name']}", report["model"]["manifest_digest"])]
    subjects += [resource(f"suite:{s['name']}@{s['version']}", s["digest"]) for s in report["suites"]]
    if report.get("judge"):  # the judge's weights are bound too: its verdicts are in the results
        subjects.append(resource(f"judge:{report['judge']['name']}", report["judge"]["manifest_digest"]))
    subjects += [
        resource(f"suite-pack:{s['name']}@{s['version']}", s["pack"]["sha256"])
        for s in report["suites"] if s.get("pack")
    ]
    return build_statement(subjects, PREDICATE_TYPE_REPORT, report)


def sign_report(report: dict[str, Any], keys: list[SigningKey]) -> dict[str, Any]:
    return sign_envelope(statement_bytes(report_statement(report)), PAYLOAD_TYPE_INTOTO, keys)

