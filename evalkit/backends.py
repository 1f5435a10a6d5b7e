"""Which engine runs a run's requests: evalkit's own, or vLLM (`--backend vllm`).

The runner asks this module, so that it keeps one code path: what to check before anything loads,
how to load the model, the token budget, the engine, and what the report records about it.

With vLLM the weights are loaded by vLLM only. evalkit's loader still runs every check it runs for
its own engine (no checkpoint code, no unasked pickles, safetensors headers, missing or mis-shaped
weights, tokenizer, chat template digest), but builds the model on the meta device: each tensor is
read once and dropped, none is kept, and no second copy of the weights ever reaches the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.config import RunConfig
from evalkit.engine import Engine, EngineSettings
from evalkit.engine.memory import TokenBudget, choose_token_budget
from evalkit.errors import ConfigError
from evalkit.model import LoadedModel, load_model
from evalkit.perf import grid as perf_grid

VLLM = "vllm"


def check_plan(config: RunConfig, suite_kinds: Sequence[str]) -> None:
    """Refuse, before any loading, a vLLM run that cannot work here or that this version does not do."""
    if config.backend != VLLM:
        return
    from evalkit.engine.vllm_backend import import_vllm, require_cuda

    import_vllm()
    require_cuda()
    if config.device.strip().lower() == "cpu":
        raise ConfigError("--backend vllm runs on CUDA GPUs; drop --device cpu, or use --backend evalkit")
    if config.device.strip().lower().startswith("cuda:"):
        raise ConfigError(
            f"--backend vllm uses every visible GPU and cannot pick {config.device}; "
            "choose GPUs with CUDA_VISIBLE_DEVICES and pass --device cuda (or auto)"
        )
    if config.model and Path(config.model).suffix.lower() == ".gguf":
        raise ConfigError("--backend vllm loads Hugging Face folders (safetensors), not .gguf files; use --backend evalkit")
    if perf_grid.KIND in suite_kinds:
        raise ConfigError(
            "the perf suite times evalkit's own engine on the model; run it with --backend evalkit"
        )
    if config.judge is not None:
        raise ConfigError(
            "--judge runs on evalkit's engine beside the model, and vLLM holds the GPU; "
            "judge in a separate run with --backend evalkit"
        )


def load(config: RunConfig, model_path: Path) -> LoadedModel:
    """The model under test: on its device for evalkit's engine; checked on the meta device for vLLM."""
    return load_model(
        model_path, device=config.device, dtype=config.dtype, allow_pickle=config.allow_pickle,
        weights=config.backend != VLLM,
    )


def token_budget(config: RunConfig, loaded: LoadedModel) -> TokenBudget:
    if config.backend == VLLM:
        return TokenBudget(config.token_budget or 0, "not used: vLLM sizes its own batches and key/value cache")
    return choose_token_budget(loaded.model, config.token_budget)


def build_engine(config: RunConfig, loaded: LoadedModel, settings: EngineSettings) -> Any:
    """evalkit's Engine, or a VllmEngine with the same interface (engine/vllm_backend.py)."""
    if config.backend != VLLM:
        return Engine(loaded.model, loaded.tokenizer, settings)
    from evalkit.engine.vllm_backend import VllmEngine

    return VllmEngine.from_folder(
        loaded.source, tokenizer=loaded.tokenizer, model=loaded.model, settings=settings,
        dtype=loaded.precision.dtype, seed=config.seed, weights_format=loaded.format,
    )


def describe(engine: Any) -> Any:
    """The report's `engine.backend`: "evalkit", or vLLM's version and setup."""
    setup = getattr(engine, "setup", None)
    return setup.describe() if setup is not None else "evalkit"
