"""Loading a local checkpoint safely: local files only, no checkpoint code, no silent pickles.

A partner hands us a folder or a file; before transformers touches it we check everything we can
check cheaply and refuse with a one-line message that says how to fix it: the path must exist (a
missing path must never fall through to a hub lookup), a folder needs config.json, a tokenizer and
safetensors weights whose headers match their sizes, a model type transformers knows without running
the checkpoint's own code, and a .gguf file must really be GGUF. Pickled weights (*.bin, *.pt) can
run code when unpickled, so they are refused unless the caller asks for them by name.

Anything transformers still raises is wrapped into a one-line ModelError, so the CLI never shows a
traceback for a bad checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.errors import ModelError
from evalkit.model.policy import Precision, choose_precision

if TYPE_CHECKING:
    import torch

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
SAFETENSORS_INDEX = "model.safetensors.index.json"
GGUF_MAGIC = b"GGUF"
# safetensors itself refuses headers above 100 MB; a larger length means the bytes are not a header.
_MAX_HEADER_BYTES = 100_000_000

_NOT_FOUND_HINT = "give a local folder with config.json and *.safetensors, or a .gguf file"
_REMOTE_CODE = "needs its own code (trust_remote_code); evalkit never runs code from a checkpoint"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference (eval mode, on its device) and what it was loaded from."""

    model: torch.nn.Module
    tokenizer: Any  # a transformers tokenizer; typed loosely to keep transformers out of imports
    precision: Precision
    source: Path
    format: str  # "safetensors" | "gguf" | "pickle"
    chat_template: str | None

    @property
    def chat_template_sha256(self) -> str | None:
        if self.chat_template is None:
            return None
        return hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest()


def _human(n: int) -> str:
    if n >= 10**9:
        return f"{n / 10**9:.1f} GB"
    if n >= 10**6:
        return f"{n / 10**6:.0f} MB"
    if n >= 10**3:
        return f"{n / 10**3:.0f} kB"
    return f"{n} bytes"


def _sizes(declared: int, held: int) -> tuple[str, str]:
    a, b = _human(declared), _human(held)
    return (a, b) if a != b else (f"{declared} bytes", f"{held} bytes")


def check_safetensors(file: Path) -> None:
    """Refuse a truncated or corrupt safetensors file by reading only its header.

    Layout: 8-byte little-endian header length, a JSON header mapping tensor names to
    {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section), then
    the data. The largest `end` must equal the size of the data section exactly.
    """
    name = file.name
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelError(f"{name} is truncated: it holds {size} bytes, too few for a header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_HEADER_BYTES:
            raise ModelError(f"{name} is corrupt: its header length ({header_len}) is implausible")
        if header_len > size - 8:
            raise ModelError(
                f"{name} is truncated: its {_human(header_len)} header is cut off "
                f"(the file holds {_human(size)})"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{name} is corrupt: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelError(f"{name} is corrupt: its header is not a JSON object")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            if not (0 <= int(begin) <= int(stop)):
                raise ValueError
            end = max(end, int(stop))
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{name} is corrupt: tensor {key!r} has no valid data_offsets") from None
    held = size - 8 - header_len
    if end > held:
        declared_s, held_s = _sizes(end, held)
        raise ModelError(
            f"{name} is truncated: its header declares {declared_s} of tensors but the file holds {held_s}"
        )
    if end < held:
        declared_s, held_s = _sizes(end, held)
        raise ModelError(
            f"{name} is corrupt: its header declares {declared_s} of tensors "
            f"but the file holds {held_s} (unexpected trailing bytes)"
        )


def check_gguf(file: Path) -> None:
    with open(file, "rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{file.name} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}); "
            "give a real .gguf file or a folder with config.json and *.safetensors"
        )


def _check_config(folder: Path) -> None:
    from transformers import CONFIG_MAPPING

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(
            f"{folder} has no config.json; {_NOT_FOUND_HINT} "
            "(for a Hugging Face checkpoint, copy the whole repository folder)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_file} is not a JSON object")
    if "auto_map" in config:
        raise ModelError(f"{folder.name}: config.json declares auto_map, so the model {_REMOTE_CODE}")
    model_type = config.get("model_type")
    if not model_type:
        raise ModelError(f"{config_file} has no model_type; evalkit cannot tell which architecture it is")
    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"{folder.name}: model_type {model_type!r} is unknown to transformers, so the model "
            f"{_REMOTE_CODE} (or a newer transformers)"
        )


def _check_weights(folder: Path, allow_pickle: bool) -> str:
    """Check the weight files of a folder; returns the format that will be loaded."""
    shards = sorted(folder.glob("*.safetensors"))
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            wanted = sorted(set(weight_map.values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{SAFETENSORS_INDEX} in {folder} is corrupt") from None
        missing = [name for name in wanted if not (folder / name).is_file()]
        if missing:
            raise ModelError(
                f"{folder} is incomplete: {SAFETENSORS_INDEX} names shard(s) that are missing: "
                + ", ".join(missing)
            )
    if shards:
        for shard in shards:
            check_safetensors(shard)
        return "safetensors"
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if not pickles:
        raise ModelError(f"{folder} holds no weights; {_NOT_FOUND_HINT}")
    if not allow_pickle:
        raise ModelError(
            f"{folder.name} holds only pickled weights ({', '.join(pickles)}), which can run code "
            "when loaded; convert to safetensors or pass --allow-pickle if you trust it"
        )
    return "pickle"


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "copy the tokenizer files from the model's repository into the folder"
        )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info logs and progress bars while it loads; restore them after.

    Library code never prints: the caller owns the terminal. (The GGUF dequantisation bar is
    unconditional in transformers and may still show.)
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _check_loading_info(source: Path, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights do not all fit the model transformers built from it.

    transformers would fill missing or mis-shaped weights with random values; an evaluation of
    that model would be a lie.
    """
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelError(
            f"{source.name} lacks {len(missing)} weight(s) the model needs "
            f"(first: {missing[0]}); the checkpoint is incomplete"
        )
    mismatched = sorted(info.get("mismatched_keys") or [], key=lambda item: str(item[0]))
    if mismatched:
        key, in_checkpoint, in_model = mismatched[0]
        raise ModelError(
            f"{source.name}: {len(mismatched)} weight(s) do not match the shapes config.json implies "
            f"(first: {key} is {list(in_checkpoint)} in the checkpoint, {list(in_model)} in the model)"
        )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    if line.endswith(":") and len(lines) > 1:  # "Error(s) in loading X:" says little on its own
        line = f"{line} {lines[1]}"
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _chat_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the unnamed one is "default"
        template = template.get("default")
    return template if isinstance(template, str) and template else None


def load_model(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    allow_pickle: bool = False,
    weights: bool = True,
) -> LoadedModel:
    """Load a local Hugging Face folder or a single .gguf file for inference.

    weights=False runs every check (missing and mis-shaped weights included) but builds the model
    on the meta device, keeping no weights: for a backend that loads them itself (vLLM), so that
    they are not held twice.
    Raises ModelError (one line, with the fix) for anything wrong with the path or checkpoint.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelError(f"model path {source} does not exist; {_NOT_FOUND_HINT}")
    precision = choose_precision(device, dtype)

    if source.is_dir():
        _check_config(source)
        _check_tokenizer(source)
        fmt = _check_weights(source, allow_pickle)
        folder, extra = source, {"use_safetensors": fmt == "safetensors"}
    elif source.suffix.lower() == ".gguf":
        check_gguf(source)
        fmt = "gguf"
        folder, extra = source.parent, {"gguf_file": source.name}
    else:
        raise ModelError(f"model path {source} is a file but not a .gguf; {_NOT_FOUND_HINT}")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if precision.is_cuda:
        # TF32 rounds fp32 matmul inputs to 10 mantissa bits, and whether it is used can vary with
        # shapes; off, a sample's numbers do not depend on batch size. Process-wide on purpose.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                folder, **common, **({"gguf_file": source.name} if fmt == "gguf" else {})
            )
            # ignore_mismatched_sizes only lets us report shape problems ourselves (transformers'
            # own error points at a log we silence); any mismatch is still refused below.
            model, info = AutoModelForCausalLM.from_pretrained(
                folder,
                dtype=precision.torch_dtype,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **common,
                **extra,
                **({} if weights else {"device_map": "meta"}),
            )
            _check_loading_info(source, info)
            model = (model.to(precision.device) if weights else model).eval()
    except ModelError:
        raise
    except Exception as exc:  # transformers raises many types; the user needs one line
        raise ModelError(f"could not load {source}: {_first_line(exc)}") from exc

    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Batched inference needs a pad id; eos is the conventional stand-in and never scored.
        tokenizer.pad_token = tokenizer.eos_token

    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        precision=precision,
        source=source,
        format=fmt,
        chat_template=_chat_template(tokenizer),
    )
