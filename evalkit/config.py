"""The run configuration: one frozen, validated record from a profile file plus command-line values.

Every problem is reported at once (`config.yaml: batch_size: must be at least 1`), and the frozen
config is written into the report, so a run can be repeated exactly from its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalkit.errors import ConfigError
from evalkit.paths import bundled_configs_dir
from evalkit.perf.grid import PerfOverride


class SuiteSpec(BaseModel):
    """One suite to run. suite: a bundled name or a folder; fewshot: examples before each question
    (None: the suite's default); limit: at most this many samples, a deterministic subset spread
    across the suite's first group_by field (e.g. one MMLU question per subject before a second)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(min_length=1)
    fewshot: int | None = Field(default=None, ge=0)
    limit: int | None = Field(default=None, ge=1)

    @property
    def ref(self) -> str:
        """How results name this run of the suite: `mmlu`, or `mmlu:5shot` when few-shot is set."""
        return self.suite if self.fewshot is None else f"{self.suite}:{self.fewshot}shot"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str | None = Field(default=None, description="the profile file's name, if any")
    description: str = ""
    model: str | None = Field(default=None, description="local checkpoint folder or .gguf file")
    judge: str | None = Field(
        default=None, description="local checkpoint of a judge model for refusal/strongreject suites (evalkit/judge/)"
    )
    suites: tuple[SuiteSpec, ...] = Field(min_length=1)
    device: Literal["auto", "cpu", "cuda"] | str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=32, ge=1, le=4096, description="most rows in one batch")
    token_budget: int | None = Field(
        default=None, ge=64, description="most tokens (rows x length) in one batch; None: from free memory"
    )
    limit: int | None = Field(default=None, ge=1, description="caps every suite's sample count")
    seed: int = Field(default=1234, ge=0, description="drives every sampled generation (per-sample streams)")
    system_prompt: str | None = Field(
        default=None, description="system message for every chat suite, replacing the suite's own"
    )
    deterministic: bool = Field(
        default=True, description="fixed shapes: per-sample numbers independent of batch size and order"
    )
    backend: Literal["evalkit", "vllm"] = Field(
        default="evalkit", description="the engine: evalkit's own, or vLLM (pip install 'evalkit[vllm]'; CUDA only)"
    )
    trust: tuple[str, ...] = Field(default=(), description="public keys trusted to sign suite packs")
    require_signed_suites: bool = Field(
        default=False, description="refuse any suite that is not a pack signed by a trusted key"
    )
    show_harmful: bool = False
    allow_pickle: bool = False
    perf: PerfOverride | None = Field(
        default=None, description="replaces a performance suite's grid or timing settings (evalkit/perf/grid.py)"
    )

    def suite_limit(self, spec: SuiteSpec) -> int | None:
        limits = [x for x in (spec.limit, self.limit) if x is not None]
        return min(limits) if limits else None


def _format_errors(source: str, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        problems.append(f"{source}: {where}: {item['msg']}")
    return problems


def resolve_profile(name_or_path: str) -> Path:
    """A config file path, or the name of a bundled profile (configs/NAME.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_configs_dir() / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    known = sorted(p.stem for p in bundled_configs_dir().glob("*.yaml"))
    raise ConfigError(
        f"config {name_or_path!r} is neither a file nor a bundled profile; profiles: {', '.join(known)}"
    )


def load_config(config_file: str | None, overrides: dict[str, Any]) -> RunConfig:
    """Profile file values, then every override that is not None; validated as one."""
    data: dict[str, Any] = {}
    source = "command line"
    if config_file:
        path = resolve_profile(config_file)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data.update(loaded)
        data.setdefault("profile", path.stem)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "suites" not in data:
        raise ConfigError("no suite to run; pass --suite NAME (see `evalkit suites`) or --config PROFILE")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = _format_errors(source if config_file else "command line", exc)
        raise ConfigError("invalid run configuration:\n  " + "\n  ".join(problems)) from None
