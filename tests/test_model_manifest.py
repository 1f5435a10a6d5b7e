"""Model identity: the manifest digest binds every file's name, size and bytes, and nothing else."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import rfc8785

from evalkit.errors import ModelError
from evalkit.model.manifest import (
    MANIFEST_FORMAT,
    FileEntry,
    ModelManifest,
    build_manifest,
    verify_manifest,
)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A small fake checkpoint folder, with the noise a git clone of a model repo carries."""
    root = tmp_path / "ckpt"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "llama"}\n')
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 1000)
    (root / "sub" / "extra.txt").write_text("nested\n")
    (root / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "x.lock").write_text("")
    return root


def test_lists_every_file_sorted_with_size_and_sha256(checkpoint: Path) -> None:
    manifest = build_manifest(checkpoint)
    assert manifest.root_name == "ckpt"
    assert [f.path for f in manifest.files] == [
        "config.json",
        "model.safetensors",
        "sub/extra.txt",
        "tokenizer.json",
    ]
    weights = manifest.files[1]
    data = (checkpoint / "model.safetensors").read_bytes()
    assert weights == FileEntry("model.safetensors", len(data), hashlib.sha256(data).hexdigest())


def test_digest_is_sha256_of_canonical_json(checkpoint: Path) -> None:
    manifest = build_manifest(checkpoint)
    body = {
        "format": "evalkit.model-manifest/v1",
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files],
    }
    assert manifest.digest == hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def test_pinned_digest_of_a_known_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    manifest = build_manifest(tmp_path)
    assert manifest.files == (
        FileEntry("a.txt", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    )
    expected = hashlib.sha256(
        b'{"files":[{"path":"a.txt","sha256":'
        b'"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":3}],'
        b'"format":"evalkit.model-manifest/v1"}'
    ).hexdigest()
    assert manifest.digest == expected


def test_digest_is_stable_across_runs_and_folder_names(checkpoint: Path, tmp_path: Path) -> None:
    first = build_manifest(checkpoint)
    assert build_manifest(checkpoint) == first
    moved = checkpoint.rename(tmp_path / "elsewhere")
    assert build_manifest(moved).digest == first.digest  # the folder's own name is not bound


def test_digest_changes_when_one_byte_changes(checkpoint: Path) -> None:
    before = build_manifest(checkpoint).digest
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[12345] ^= 0x01
    weights.write_bytes(bytes(data))
    assert build_manifest(checkpoint).digest != before


def test_digest_binds_file_names(checkpoint: Path) -> None:
    before = build_manifest(checkpoint).digest
    (checkpoint / "tokenizer.json").rename(checkpoint / "tokenizer2.json")
    assert build_manifest(checkpoint).digest != before


def test_parallel_hashing_equals_sequential(checkpoint: Path) -> None:
    for i in range(12):
        (checkpoint / f"shard-{i:02d}.bin").write_bytes(os.urandom(1000 + i * 777))
    assert build_manifest(checkpoint, workers=8) == build_manifest(checkpoint, workers=1)


def test_progress_reports_every_byte_once(checkpoint: Path) -> None:
    seen: list[int] = []
    manifest = build_manifest(checkpoint, workers=4, progress=seen.append)
    assert sum(seen) == sum(f.size for f in manifest.files)


def test_large_file_is_read_in_chunks(tmp_path: Path) -> None:
    from evalkit.model.manifest import CHUNK_BYTES

    data = os.urandom(CHUNK_BYTES * 2 + 5)
    (tmp_path / "big.bin").write_bytes(data)
    seen: list[int] = []
    manifest = build_manifest(tmp_path / "big.bin", progress=seen.append)
    assert seen == [CHUNK_BYTES, CHUNK_BYTES, 5]
    assert manifest.files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_single_file_manifest(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 100)
    manifest = build_manifest(gguf)
    assert manifest.root_name == "model.gguf"
    assert manifest.files == (FileEntry("model.gguf", 104, hashlib.sha256(gguf.read_bytes()).hexdigest()),)


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="empty folder"):
        build_manifest(tmp_path)


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        build_manifest(tmp_path / "nope")


def test_symlink_inside_folder_is_hashed_under_its_own_name(checkpoint: Path) -> None:
    (checkpoint / "alias.json").symlink_to("config.json")
    manifest = build_manifest(checkpoint)
    entries = {f.path: f for f in manifest.files}
    assert entries["alias.json"].sha256 == entries["config.json"].sha256


def test_symlink_leaving_the_folder_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"elsewhere")
    (checkpoint / "model-00002.safetensors").symlink_to(outside)
    with pytest.raises(ModelError, match=r"symlink .*outside the folder.*cp -rL"):
        build_manifest(checkpoint)


def test_round_trips_through_dict(checkpoint: Path) -> None:
    manifest = build_manifest(checkpoint)
    data = manifest.to_dict()
    assert list(data) == ["format", "files", "digest"]
    assert data["format"] == MANIFEST_FORMAT
    assert ModelManifest.from_dict(data, root_name="ckpt") == manifest


def test_from_dict_refuses_a_tampered_file_list(checkpoint: Path) -> None:
    data = build_manifest(checkpoint).to_dict()
    data["files"][0]["size"] += 1
    with pytest.raises(ModelError, match="does not match its file list"):
        ModelManifest.from_dict(data)


def test_verify_is_empty_when_identical(checkpoint: Path) -> None:
    assert verify_manifest(checkpoint, build_manifest(checkpoint)) == []


def test_verify_names_every_difference(checkpoint: Path) -> None:
    expected = build_manifest(checkpoint)
    (checkpoint / "config.json").write_text('{"model_type": "mistral"}\n')
    (checkpoint / "sub" / "extra.txt").unlink()
    (checkpoint / "new.txt").write_text("surprise")
    problems = verify_manifest(checkpoint, expected)
    assert len(problems) == 3
    assert problems[0].startswith("changed file: config.json (sha256 ")
    assert problems[1] == "extra file: new.txt"
    assert problems[2] == "missing file: sub/extra.txt"


def test_verify_reports_a_missing_folder(tmp_path: Path, checkpoint: Path) -> None:
    problems = verify_manifest(tmp_path / "gone", build_manifest(checkpoint))
    assert len(problems) == 1 and "does not exist" in problems[0]
