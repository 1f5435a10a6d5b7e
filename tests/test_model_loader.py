"""Loading a checkpoint: what loads, with which precision, and the one-line refusal for each bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest
import torch

from evalkit.errors import ModelError
from evalkit.model.loader import LoadedModel, load_model

CPU_REASON = "auto: CPU, float32 (bf16 matmuls are faster on some CPUs but float32 is the reference)"


@pytest.fixture
def tiny_copy(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model that a test may damage."""
    return Path(shutil.copytree(tiny_llama_dir, tmp_path / "tiny"))


def _one_line_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ModelError) as info:
        load_model(path, device="cpu", **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, message
    return message


def _next_token_logits(loaded: LoadedModel, text: str) -> torch.Tensor:
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"].to(loaded.precision.device)
    with torch.no_grad():
        return loaded.model(input_ids=ids).logits[0, -1].float()


# --- what loads ----------------------------------------------------------------------------------


def test_tiny_model_loads_on_cpu_in_float32(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir, device="cpu")
    assert loaded.format == "safetensors"
    assert loaded.source == tiny_llama_dir
    assert loaded.precision.device == "cpu" and loaded.precision.dtype == "float32"
    assert loaded.precision.reason == CPU_REASON
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32
    logits = _next_token_logits(loaded, "The capital of France is")
    assert logits.shape == (len(loaded.tokenizer),)
    assert torch.isfinite(logits).all()


def test_tiny_model_loads_in_bfloat16_on_request(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir, device="cpu", dtype="bfloat16")
    assert (loaded.precision.dtype, loaded.precision.reason) == ("bfloat16", "requested by --dtype")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert torch.isfinite(_next_token_logits(loaded, "Hello world")).all()


def test_tokenizer_and_chat_template_come_along(tiny_llama_dir: Path) -> None:
    loaded = load_model(str(tiny_llama_dir), device="cpu")
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "<|endoftext|>"
    assert loaded.chat_template is not None and "<|im_start|>" in loaded.chat_template
    expected = hashlib.sha256(loaded.chat_template.encode()).hexdigest()
    assert loaded.chat_template_sha256 == expected
    text = "Question: What is two plus three?\nAnswer: five."
    assert loaded.tokenizer.decode(loaded.tokenizer(text)["input_ids"]) == text


def test_missing_pad_token_becomes_eos(tiny_copy: Path) -> None:
    config_file = tiny_copy / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("pad_token", None)
    config_file.write_text(json.dumps(config))
    loaded = load_model(tiny_copy, device="cpu")
    assert loaded.tokenizer.pad_token == "<|endoftext|>"


def test_sharded_safetensors_load(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, local_files_only=True)
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_llama_dir / name, folder / name)
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("*.safetensors"))) > 1
    loaded = load_model(folder, device="cpu")
    reference = load_model(tiny_llama_dir, device="cpu")
    text = "The quick brown fox"
    assert torch.equal(_next_token_logits(loaded, text), _next_token_logits(reference, text))


def test_missing_shard_is_named(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, local_files_only=True)
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    shutil.copy(tiny_llama_dir / "tokenizer.json", folder / "tokenizer.json")
    last = max(folder.glob("*.safetensors"))
    last.unlink()
    message = _one_line_error(folder)
    assert "is incomplete" in message and last.name in message


def test_pickle_only_folder_loads_when_allowed(tiny_copy: Path) -> None:
    _make_pickle_only(tiny_copy)
    loaded = load_model(tiny_copy, device="cpu", allow_pickle=True)
    assert loaded.format == "pickle"
    assert torch.isfinite(_next_token_logits(loaded, "Hello")).all()


# --- what is refused -----------------------------------------------------------------------------


def test_missing_path_is_refused_without_hub_lookup(tmp_path: Path) -> None:
    # A name that looks like a hub id must not be looked up anywhere.
    for path in (tmp_path / "nope", Path("HuggingFaceTB/SmolLM2-135M-Instruct")):
        message = _one_line_error(path)
        assert message == (
            f"model path {path} does not exist; give a local folder with config.json and "
            "*.safetensors, or a .gguf file"
        )


def test_folder_without_config_is_refused(tiny_copy: Path) -> None:
    (tiny_copy / "config.json").unlink()
    assert "has no config.json" in _one_line_error(tiny_copy)


def test_folder_without_tokenizer_is_refused(tiny_copy: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tiny_copy / name).unlink()
    message = _one_line_error(tiny_copy)
    assert "has no tokenizer" in message and "tokenizer.json" in message


def test_auto_map_is_refused(tiny_copy: Path) -> None:
    config = json.loads((tiny_copy / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (tiny_copy / "config.json").write_text(json.dumps(config))
    message = _one_line_error(tiny_copy)
    assert "auto_map" in message
    assert "needs its own code (trust_remote_code); evalkit never runs code from a checkpoint" in message


def test_unknown_model_type_is_refused(tiny_copy: Path) -> None:
    config = json.loads((tiny_copy / "config.json").read_text())
    config["model_type"] = "evil_llama"
    (tiny_copy / "config.json").write_text(json.dumps(config))
    message = _one_line_error(tiny_copy)
    assert "'evil_llama' is unknown to transformers" in message
    assert "needs its own code (trust_remote_code)" in message


def _make_pickle_only(folder: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def test_pickle_only_folder_is_refused_by_default(tiny_copy: Path) -> None:
    _make_pickle_only(tiny_copy)
    message = _one_line_error(tiny_copy)
    assert message == (
        "tiny holds only pickled weights (pytorch_model.bin), which can run code when loaded; "
        "convert to safetensors or pass --allow-pickle if you trust it"
    )


def test_folder_without_weights_is_refused(tiny_copy: Path) -> None:
    (tiny_copy / "model.safetensors").unlink()
    assert "holds no weights" in _one_line_error(tiny_copy)


def test_truncated_safetensors_is_refused(tiny_copy: Path) -> None:
    weights = tiny_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    message = _one_line_error(tiny_copy)
    assert message.startswith("model.safetensors is truncated: its header declares ")
    assert "of tensors but the file holds " in message


def test_truncated_safetensors_message_in_megabytes(tmp_path: Path) -> None:
    from evalkit.model.loader import check_safetensors

    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [134_500_000], "data_offsets": [0, 538_000_000]}}
    ).encode()
    file = tmp_path / "model.safetensors"
    with open(file, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 12_000_000)  # sparse: no 12 MB written
    with pytest.raises(ModelError) as info:
        check_safetensors(file)
    assert str(info.value) == (
        "model.safetensors is truncated: its header declares 538 MB of tensors but the file holds 12 MB"
    )


def test_safetensors_cut_inside_its_header_is_refused(tiny_copy: Path) -> None:
    weights = tiny_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    assert _one_line_error(tiny_copy).startswith("model.safetensors is truncated")


def test_corrupt_safetensors_header_is_refused(tiny_copy: Path) -> None:
    weights = tiny_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"\xff" * 32
    weights.write_bytes(bytes(data))
    assert _one_line_error(tiny_copy) == "model.safetensors is corrupt: its header is not valid JSON"


def test_safetensors_with_garbage_length_is_refused(tiny_copy: Path) -> None:
    weights = tiny_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[0:8] = b"\xff" * 8
    weights.write_bytes(bytes(data))
    assert _one_line_error(tiny_copy).startswith("model.safetensors is corrupt")


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a gguf")
    message = _one_line_error(fake)
    assert message.startswith("model.gguf is not a GGUF file")


def test_file_that_is_neither_folder_nor_gguf_is_refused(tiny_llama_dir: Path) -> None:
    message = _one_line_error(tiny_llama_dir / "model.safetensors")
    assert "is a file but not a .gguf" in message


def test_weights_that_do_not_fit_the_config_are_refused(tiny_copy: Path) -> None:
    config = json.loads((tiny_copy / "config.json").read_text())
    config["intermediate_size"] = 96  # the weights are 128 wide
    (tiny_copy / "config.json").write_text(json.dumps(config))
    message = _one_line_error(tiny_copy)
    assert message.startswith("tiny: 6 weight(s) do not match the shapes config.json implies (first: ")
    assert "down_proj.weight is [64, 128] in the checkpoint, [64, 96] in the model)" in message


def test_other_transformers_failures_become_one_line_model_errors(tiny_copy: Path) -> None:
    config = json.loads((tiny_copy / "config.json").read_text())
    config["num_attention_heads"] = 3  # 64 is not divisible by 3: transformers refuses the config
    (tiny_copy / "config.json").write_text(json.dumps(config))
    message = _one_line_error(tiny_copy)
    assert message.startswith(f"could not load {tiny_copy}: ")


def test_checkpoint_missing_weights_is_refused(tiny_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = tiny_copy / "model.safetensors"
    state = load_file(weights)
    del state["model.norm.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    message = _one_line_error(tiny_copy)
    assert "lacks 1 weight(s)" in message and "model.norm.weight" in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tiny_model_loads_on_cuda_with_tf32_off(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir, device="cuda")
    assert loaded.precision.device == "cuda"
    assert next(loaded.model.parameters()).is_cuda
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.isfinite(_next_token_logits(loaded, "The capital of France is")).all()
