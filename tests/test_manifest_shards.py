"""Sharded model manifests: large files hashed in fixed-size shards, v1 digests unchanged, OpenSSF export."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from evalkit.errors import ModelError
from evalkit.model.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_FORMAT_SHARDED,
    FileEntry,
    ModelManifest,
    Shard,
    build_manifest,
    to_model_signing,
    verify_manifest,
)

KIB = 1024


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(3 * KIB - 100))  # 3 shards of 1 KiB, last short
    (root / "config.json").write_text('{"a": 1}\n')  # fits in one shard
    return root


def test_large_file_gets_shards_that_tile_it(model: Path) -> None:
    manifest = build_manifest(model, shard_size=KIB)
    entries = {f.path: f for f in manifest.files}
    weights = entries["weights.bin"]
    data = (model / "weights.bin").read_bytes()
    assert weights.sha256 == "" and weights.size == len(data)
    assert [(s.start, s.end) for s in weights.shards] == [(0, 1024), (1024, 2048), (2048, 3 * KIB - 100)]
    assert b"".join(data[s.start : s.end] for s in weights.shards) == data
    for s in weights.shards:
        assert s.sha256 == hashlib.sha256(data[s.start : s.end]).hexdigest()
    config = entries["config.json"]
    assert config.shards == () and config.sha256 == hashlib.sha256((model / "config.json").read_bytes()).hexdigest()
    assert manifest.shard_size == KIB
    assert manifest.to_dict()["format"] == MANIFEST_FORMAT_SHARDED


def test_file_of_exactly_shard_size_is_not_sharded(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x" * KIB)
    manifest = build_manifest(tmp_path, shard_size=KIB)
    assert manifest.files[0].shards == () and manifest.shard_size is None
    assert manifest.to_dict()["format"] == MANIFEST_FORMAT


def test_sharded_digest_is_stable_and_binds_bytes_and_shard_size(model: Path) -> None:
    first = build_manifest(model, shard_size=KIB)
    assert build_manifest(model, shard_size=KIB) == first
    assert build_manifest(model, shard_size=KIB + 1).digest != first.digest
    assert build_manifest(model, shard_size=512).digest != first.digest
    weights = model / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[1500] ^= 0x01  # one byte of the second shard
    weights.write_bytes(bytes(data))
    changed = build_manifest(model, shard_size=KIB)
    assert changed.digest != first.digest
    before = {f.path: f for f in first.files}["weights.bin"].shards
    after = {f.path: f for f in changed.files}["weights.bin"].shards
    assert [a.sha256 == b.sha256 for a, b in zip(before, after, strict=True)] == [True, False, True]


def test_parallel_equals_sequential(model: Path) -> None:
    for i in range(5):
        (model / f"part-{i}.bin").write_bytes(os.urandom(500 + i * 900))
    sequential = build_manifest(model, shard_size=KIB, workers=1)
    assert build_manifest(model, shard_size=KIB, workers=8) == sequential
    assert build_manifest(model, shard_size=KIB, workers=3) == sequential


def test_progress_counts_every_byte_once_with_shards(model: Path) -> None:
    seen: list[int] = []
    manifest = build_manifest(model, shard_size=KIB, workers=4, progress=seen.append)
    assert sum(seen) == sum(f.size for f in manifest.files)


def test_unsharded_manifest_keeps_the_exact_previous_digest(tmp_path: Path) -> None:
    # Pinned with the code before sharding existed (evalkit.model-manifest/v1).
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.bin").write_bytes(bytes(range(256)) * 40)
    (root / "b.txt").write_bytes(b"hello\n")
    (root / "e").write_bytes(b"")
    manifest = build_manifest(root)
    assert manifest.digest == "e4e44d7e54cbcb8b64017f3c7657ff5036275d7d86d82850caff28c24a7191f9"
    assert build_manifest(root, shard_size=KIB * 100).digest == manifest.digest  # nothing sharded
    assert list(manifest.to_dict()) == ["format", "files", "digest"]


@pytest.mark.parametrize("shard_size", [KIB, 1024 * KIB])
def test_from_dict_round_trip_both_formats(model: Path, shard_size: int) -> None:
    manifest = build_manifest(model, shard_size=shard_size)
    data = manifest.to_dict()
    assert data["format"] == (MANIFEST_FORMAT_SHARDED if shard_size == KIB else MANIFEST_FORMAT)
    assert ModelManifest.from_dict(data, root_name="m") == manifest


def test_from_dict_refuses_tampered_shards(model: Path) -> None:
    data = build_manifest(model, shard_size=KIB).to_dict()
    sharded = next(f for f in data["files"] if "shards" in f)
    bad = {**data, "files": [dict(f) for f in data["files"]]}
    entry = next(f for f in bad["files"] if "shards" in f)
    entry["shards"] = [dict(s) for s in sharded["shards"]]
    entry["shards"][1]["sha256"] = "0" * 64
    with pytest.raises(ModelError, match="does not match its file list"):
        ModelManifest.from_dict(bad)
    entry["shards"] = [dict(s) for s in sharded["shards"]]
    entry["shards"][0]["end"] = 1000
    with pytest.raises(ModelError, match="malformed.*shard boundaries"):
        ModelManifest.from_dict(bad)
    with pytest.raises(ModelError, match="malformed"):
        ModelManifest.from_dict({**data, "shard_size": 0})
    with pytest.raises(ModelError, match="does not match its file list"):
        ModelManifest.from_dict({**data, "digest": "0" * 64})


def test_verify_names_the_changed_shard(model: Path) -> None:
    expected = build_manifest(model, shard_size=KIB)
    assert verify_manifest(model, expected) == []
    weights = model / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[2100] ^= 0xFF  # third shard
    weights.write_bytes(bytes(data))
    problems = verify_manifest(model, expected)
    assert len(problems) == 1
    assert problems[0].startswith("changed file: weights.bin, shard 3/3 [2048, 2972)")


def test_verify_reports_a_resized_sharded_file(model: Path) -> None:
    expected = build_manifest(model, shard_size=KIB)
    with open(model / "weights.bin", "ab") as handle:
        handle.write(b"more")
    assert verify_manifest(model, expected) == [
        f"changed file: weights.bin ({3 * KIB - 100} bytes expected; found {3 * KIB - 96} bytes)"
    ]


def test_to_model_signing_files_mode(tmp_path: Path) -> None:
    (tmp_path / "a-b").mkdir()
    (tmp_path / "a-b" / "x").write_bytes(b"1")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_bytes(b"2")
    out = to_model_signing(build_manifest(tmp_path))
    assert out["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".cache", ".git", ".gitattributes"],
    }
    # model-signing sorts by path components: "a/b" before "a-b/x" (a plain string sort would not).
    assert [r["name"] for r in out["resources"]] == ["a/b", "a-b/x"]
    d1, d2 = hashlib.sha256(b"2").digest(), hashlib.sha256(b"1").digest()
    assert out["root"] == hashlib.sha256(d1 + d2).hexdigest()


def test_to_model_signing_shards_mode_root_by_hand(model: Path) -> None:
    manifest = build_manifest(model, shard_size=KIB)
    out = to_model_signing(manifest)
    assert out["serialization"]["method"] == "shards" and out["serialization"]["shard_size"] == KIB
    data = (model / "weights.bin").read_bytes()
    config = (model / "config.json").read_bytes()
    bounds = [(0, 1024), (1024, 2048), (2048, len(data))]
    expected_names = [f"config.json:0:{len(config)}"] + [f"weights.bin:{s}:{e}" for s, e in bounds]
    assert [r["name"] for r in out["resources"]] == expected_names
    assert all(r["algorithm"] == "sha256" for r in out["resources"])
    raw = hashlib.sha256(config).digest() + b"".join(hashlib.sha256(data[s:e]).digest() for s, e in bounds)
    assert out["root"] == hashlib.sha256(raw).hexdigest()
    assert out["root"] != manifest.digest  # ROOT omits names; evalkit's digest binds them


def test_to_model_signing_orders_offsets_numerically(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(os.urandom(12 * 100))
    out = to_model_signing(build_manifest(tmp_path, shard_size=100))
    starts = [int(r["name"].split(":")[1]) for r in out["resources"]]
    assert starts == sorted(starts) and len(starts) == 12  # "w:1000:1100" after "w:900:1000"


def test_entries_compare_as_before() -> None:
    assert FileEntry("a", 3, "x") == FileEntry("a", 3, "x", ())
    assert FileEntry("a", 3, "", (Shard(0, 3, "x"),)).sharded


def test_bad_shard_size_is_refused(model: Path) -> None:
    with pytest.raises(ModelError, match="shard_size"):
        build_manifest(model, shard_size=0)
