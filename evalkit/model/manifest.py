"""Model identity: a manifest of every file's name, size and SHA-256, and one digest over it all.

A report is bound to the exact weights it measured through this digest. The digest is the SHA-256
of the RFC 8785 canonical JSON of `{"format", "files": [{"path", "size", "sha256"}, ...]}`, so it
binds file *names* as well as contents: swapping `tokenizer.json` for another file of the same bytes
under a different name changes the identity (model-signing's root digest omits names; ours does
not). The folder's own name is not bound, so a checkpoint can be copied anywhere.

Large files are hashed in fixed-size shards. A file larger than `shard_size` (default 1 GiB, as
in OpenSSF model-signing) is cut into shards `[start, end)` of `shard_size` bytes (the last one
shorter), each with its own SHA-256; its entry carries `"shards": [{"start", "end", "sha256"}, ...]`
instead of a whole-file `"sha256"`. Files no larger than `shard_size` keep their whole-file SHA-256.
A manifest with no sharded file is exactly the v1 format (same JSON, same digest as before shards
existed); one with a sharded file uses format `evalkit.model-manifest/v2` and records
`"shard_size"`, so the digest binds names, sizes, shard boundaries and contents.

Hashing is parallel across *all* pieces of all files (whole small files and shards of large
ones) on a thread pool, so one 100 GB file keeps every core busy; hashlib releases the GIL on
large buffers and every piece is read exactly once in 8 MiB chunks through its own file handle.
torch is not needed here: `evalkit verify` can check a model without loading it.

`to_model_signing` exports the manifest in the OpenSSF model-signing predicate shape (resources
named `path` or `path:start:end`, and its ROOT digest) for interoperability.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from evalkit.errors import ModelError

MANIFEST_FORMAT = "evalkit.model-manifest/v1"  # no file sharded; unchanged since before shards
MANIFEST_FORMAT_SHARDED = "evalkit.model-manifest/v2"  # some file sharded; records shard_size
CHUNK_BYTES = 8 * 1024 * 1024
DEFAULT_SHARD_SIZE = 1024 * 1024 * 1024  # 1 GiB

# Version-control and download-cache leftovers are not part of a model.
_EXCLUDED_DIRS = frozenset({".git", ".cache"})
_EXCLUDED_FILES = frozenset({".gitattributes"})


@dataclass(frozen=True)
class Shard:
    start: int  # inclusive byte offset
    end: int  # exclusive byte offset
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "sha256": self.sha256}


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the manifest root, POSIX separators
    size: int
    sha256: str = ""  # whole-file digest; empty for a sharded file
    shards: tuple[Shard, ...] = ()  # non-empty only for a file larger than the shard size

    @property
    def sharded(self) -> bool:
        return bool(self.shards)

    def to_dict(self) -> dict[str, Any]:
        if self.shards:
            return {"path": self.path, "size": self.size, "shards": [s.to_dict() for s in self.shards]}
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def shard_bounds(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The `[start, end)` pieces a file of `size` bytes is cut into (one piece when it fits)."""
    if size <= shard_size:
        return [(0, size)]
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


@dataclass(frozen=True)
class ModelManifest:
    root_name: str  # folder (or file) name; informative only, not part of the digest
    files: tuple[FileEntry, ...]  # sorted by path
    digest: str
    shard_size: int | None = None  # recorded (and bound) only when some file is sharded

    @property
    def format(self) -> str:
        return MANIFEST_FORMAT_SHARDED if any(f.shards for f in self.files) else MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        if self.format == MANIFEST_FORMAT:
            return {
                "format": MANIFEST_FORMAT,
                "files": [entry.to_dict() for entry in self.files],
                "digest": self.digest,
            }
        return {
            "format": MANIFEST_FORMAT_SHARDED,
            "shard_size": self.shard_size,
            "files": [entry.to_dict() for entry in self.files],
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, root_name: str = "") -> ModelManifest:
        """Rebuild a manifest read from a report (v1 or v2); refuses one whose digest does not match."""
        fmt = data.get("format")
        if fmt not in (MANIFEST_FORMAT, MANIFEST_FORMAT_SHARDED):
            raise ModelError(
                f"model manifest has format {fmt!r}; expected {MANIFEST_FORMAT!r} "
                f"or {MANIFEST_FORMAT_SHARDED!r}"
            )
        try:
            shard_size: int | None = None
            if fmt == MANIFEST_FORMAT_SHARDED:
                shard_size = data["shard_size"]
                if type(shard_size) is not int or shard_size <= 0:
                    raise ValueError(f"shard_size must be a positive integer, not {shard_size!r}")
            entries = []
            for f in data["files"]:
                if fmt == MANIFEST_FORMAT or "shards" not in f:
                    entries.append(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])))
                else:
                    shards = tuple(Shard(int(s["start"]), int(s["end"]), str(s["sha256"])) for s in f["shards"])
                    entries.append(FileEntry(str(f["path"]), int(f["size"]), "", shards))
            files = tuple(sorted(entries, key=lambda e: e.path))
            if shard_size is not None:
                _check_shards(files, shard_size)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model manifest is malformed: {exc}") from None
        digest = manifest_digest(files, shard_size)
        if data.get("digest") != digest:
            raise ModelError(
                f"model manifest digest {data.get('digest')!r} does not match its file list ({digest})"
            )
        return cls(root_name=str(data.get("root_name", root_name)), files=files, digest=digest, shard_size=shard_size)


def _check_shards(files: tuple[FileEntry, ...], shard_size: int) -> None:
    """A v2 manifest must shard exactly the files larger than shard_size, at the fixed boundaries."""
    if not any(f.shards for f in files):
        raise ValueError(f"format {MANIFEST_FORMAT_SHARDED} but no file is sharded")
    for f in files:
        if f.size > shard_size:
            if not f.shards:
                raise ValueError(f"{f.path} is larger than the shard size but has no shards")
            if [(s.start, s.end) for s in f.shards] != shard_bounds(f.size, shard_size):
                raise ValueError(f"{f.path} has shard boundaries that do not tile it in {shard_size}-byte shards")
        elif f.shards:
            raise ValueError(f"{f.path} fits in one shard but is sharded")


def manifest_digest(files: tuple[FileEntry, ...] | list[FileEntry], shard_size: int | None = None) -> str:
    """SHA-256 hex of the canonical JSON of the format tag, shard size (v2) and sorted file entries.

    Without a sharded file this is the v1 digest, byte for byte as before shards existed.
    """
    entries = [entry.to_dict() for entry in sorted(files, key=lambda e: e.path)]
    if any(f.shards for f in files):
        if shard_size is None:
            raise ModelError("a manifest with sharded files needs its shard_size")
        body: dict[str, Any] = {"format": MANIFEST_FORMAT_SHARDED, "shard_size": shard_size, "files": entries}
    else:
        body = {"format": MANIFEST_FORMAT, "files": entries}
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def list_model_files(path: Path) -> list[tuple[str, Path]]:
    """(manifest name, real file to read) for every file of a checkpoint, sorted by name.

    A symlink is followed only when it stays inside the folder (a tokenizer shared by two
    names, say); one pointing outside could make the manifest describe files the folder does
    not hold, so it is refused.
    """
    if not path.exists() and not path.is_symlink():
        raise ModelError(f"{path} does not exist")
    if not path.is_dir():
        if not path.is_file():
            raise ModelError(f"{path} is not a regular file or folder")
        return [(path.name, path.resolve())]

    root = path.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                raise ModelError(
                    f"{here / name} is a symlink to a folder; copy the checkpoint with `cp -rL` "
                    "so it holds regular files"
                )
        dirnames[:] = sorted(d for d in dirnames if d not in _EXCLUDED_DIRS)
        for name in filenames:
            if name in _EXCLUDED_FILES:
                continue
            file = here / name
            rel = file.relative_to(root).as_posix()
            if file.is_symlink():
                target = file.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    raise ModelError(
                        f"{rel} in {path} is a symlink to {target}, outside the folder; copy the "
                        "checkpoint with `cp -rL` so it holds the files themselves"
                    )
                found.append((rel, target))
            elif file.is_file():
                found.append((rel, file))
            else:
                raise ModelError(f"{rel} in {path} is not a regular file (a pipe or device?)")
    found.sort(key=lambda item: item[0])
    return found


def _hash_file(file: Path, progress: Callable[[int], None] | None) -> tuple[int, str]:
    """The whole file, to its end, whatever its size now: (bytes read, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK_BYTES)  # reused: one 8 MiB buffer per task, not one per chunk
    view = memoryview(buffer)
    with open(file, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(n)
    return size, digest.hexdigest()


def _hash_range(file: Path, start: int, end: int, progress: Callable[[int], None] | None) -> str:
    """Bytes [start, end) of a file, through its own handle; refuses a file that shrank meanwhile."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    offset = start
    with open(file, "rb", buffering=0) as handle:
        handle.seek(start)
        while offset < end:
            want = min(CHUNK_BYTES, end - offset)
            n = handle.readinto(view[:want])
            if not n:
                raise ModelError(f"{file} shrank while it was being hashed (no bytes at offset {offset})")
            digest.update(view[:n])
            offset += n
            if progress is not None:
                progress(n)
    return digest.hexdigest()


def _default_workers() -> int:
    return max(1, min(32, os.cpu_count() or 1))


def _hash_all(
    files: list[tuple[str, Path]],
    workers: int | None,
    progress: Callable[[int], None] | None,
    shard_size: int | None = DEFAULT_SHARD_SIZE,
) -> tuple[FileEntry, ...]:
    """Hash every file; with `shard_size`, files larger than it are hashed shard by shard.

    Every piece (a whole small file, or one shard of a large one) is one task on a shared pool,
    so a single large file spreads over all workers. `shard_size=None` never shards.
    """
    report: Callable[[int], None] | None = None
    if progress is not None:
        # Workers report from several threads; serialise so callers need not be thread-safe.
        lock = threading.Lock()
        user_progress = progress

        def locked(n: int) -> None:
            with lock:
                user_progress(n)

        report = locked

    # Tasks: (file index, start, end) for a shard; (file index, None, None) for a whole file.
    tasks: list[tuple[int, int | None, int | None]] = []
    sizes: list[int] = []
    for index, (_, real) in enumerate(files):
        size = real.stat().st_size
        sizes.append(size)
        if shard_size is not None and size > shard_size:
            tasks.extend((index, start, end) for start, end in shard_bounds(size, shard_size))
        else:
            tasks.append((index, None, None))

    def run(task: tuple[int, int | None, int | None]) -> tuple[int, str]:
        index, start, end = task
        real = files[index][1]
        if start is None or end is None:
            return _hash_file(real, report)
        return end - start, _hash_range(real, start, end, report)

    if workers is None:
        workers = _default_workers()
    workers = max(1, min(workers, len(tasks)))
    if workers == 1:
        results = [run(task) for task in tasks]
    else:
        # Largest pieces first, so a big file's shards do not end up alone at the tail.
        def length(i: int) -> int:
            index, start, end = tasks[i]
            return (end - start) if start is not None and end is not None else sizes[index]

        order = sorted(range(len(tasks)), key=length, reverse=True)
        results_by_task: list[tuple[int, str] | None] = [None] * len(tasks)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-hash") as pool:
            for i, result in zip(order, pool.map(lambda i: run(tasks[i]), order), strict=True):
                results_by_task[i] = result
        results = [r for r in results_by_task if r is not None]

    entries: list[FileEntry] = []
    position = 0
    for index, (name, real) in enumerate(files):
        index_tasks = []
        while position < len(tasks) and tasks[position][0] == index:
            index_tasks.append((tasks[position], results[position]))
            position += 1
        (_, start, _), _ = index_tasks[0]
        if start is None:
            size, sha = index_tasks[0][1]
            entries.append(FileEntry(name, size, sha))
        else:
            shards = tuple(Shard(s, e, sha) for (_, s, e), (_, sha) in index_tasks)  # type: ignore[arg-type]
            if real.stat().st_size != sizes[index]:
                raise ModelError(f"{real} changed size while it was being hashed")
            entries.append(FileEntry(name, sizes[index], "", shards))
    return tuple(entries)


def build_manifest(
    path: Path,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> ModelManifest:
    """Hash a checkpoint folder (every regular file under it) or a single file such as a .gguf.

    Files larger than `shard_size` bytes are hashed in shards of that size, in parallel with
    everything else on `workers` threads (default: the CPU count, at most 32). `progress(nbytes)`
    is called as bytes are read, for a progress bar. Raises ModelError for a missing path, an
    empty folder, or a symlink leading outside the folder.
    """
    if type(shard_size) is not int or shard_size <= 0:
        raise ModelError(f"shard_size must be a positive integer, not {shard_size!r}")
    path = Path(path)
    files = list_model_files(path)
    if not files:
        raise ModelError(f"{path} is an empty folder; it holds no model files")
    entries = _hash_all(files, workers, progress, shard_size)
    recorded = shard_size if any(e.shards for e in entries) else None
    return ModelManifest(
        root_name=path.name, files=entries, digest=manifest_digest(entries, recorded), shard_size=recorded
    )


def verify_manifest(path: Path, expected: ModelManifest, *, workers: int | None = None) -> list[str]:
    """Re-hash `path` with `expected`'s shard size and list how it differs; empty means identical.

    A changed sharded file is reported shard by shard ("shard 3/12 [2147483648, 3221225472)"), so
    the damaged region of a large file is named.
    """
    path = Path(path)
    try:
        files = list_model_files(path)
        actual_entries = _hash_all(files, workers, None, expected.shard_size) if files else ()
    except (ModelError, OSError) as exc:
        return [str(exc)]
    actual = {entry.path: entry for entry in actual_entries}
    wanted = {entry.path: entry for entry in expected.files}
    problems: list[str] = []
    for name in sorted(wanted.keys() | actual.keys()):
        if name not in actual:
            problems.append(f"missing file: {name}")
        elif name not in wanted:
            problems.append(f"extra file: {name}")
        else:
            want, got = wanted[name], actual[name]
            if want.shards and got.shards and want.size == got.size:
                total = len(want.shards)
                for number, (w, g) in enumerate(zip(want.shards, got.shards, strict=True), start=1):
                    if w.sha256 != g.sha256:
                        problems.append(
                            f"changed file: {name}, shard {number}/{total} [{w.start}, {w.end}) "
                            f"(sha256 {w.sha256[:12]}… expected; found {g.sha256[:12]}…)"
                        )
            elif want.shards or got.shards:
                problems.append(
                    f"changed file: {name} ({want.size} bytes expected; found {got.size} bytes)"
                )
            elif got.sha256 != want.sha256 or got.size != want.size:
                problems.append(
                    f"changed file: {name} (sha256 {want.sha256[:12]}…, {want.size} bytes "
                    f"expected; found {got.sha256[:12]}…, {got.size} bytes)"
                )
    return problems


def _model_signing_order(name: str, start: int = 0, end: int = 0) -> tuple[tuple[str, ...], int, int]:
    # model-signing sorts its resource keys as dataclasses: (PurePosixPath, start, end), i.e. by
    # path components, then numerically by offsets (not by the "path:start:end" string).
    return (tuple(name.split("/")), start, end)


def to_model_signing(manifest: ModelManifest) -> dict[str, Any]:
    """The manifest as an OpenSSF model-signing v1.0 predicate body plus its ROOT digest.

    Returns `{"serialization": {...}, "resources": [{"name", "algorithm", "digest"}...], "root"}`.
    A manifest without sharded files uses method "files" (resource name = path). A sharded one
    uses method "shards" with its shard_size, where *every* file is named "path:start:end"
    (a small file is the single shard "path:0:size", whose digest is its whole-file SHA-256).
    Resources are in model-signing's order (path components, then numeric offsets), and
    `root` = SHA-256 of the concatenated raw 32-byte digests in that order, as model-signing's
    `Payload` computes it.

    The ROOT digest covers digest values only: names (and sizes) are bound only through the
    resources list in this format. That is why evalkit's own `digest`, which binds names, sizes,
    shard boundaries and contents in one hash, differs from `root`. `ignore_paths` lists what
    `build_manifest` skips (at any depth in evalkit; model-signing applies them from the root).
    """
    sharded = manifest.shard_size is not None and any(f.shards for f in manifest.files)
    serialization: dict[str, Any] = {
        "method": "shards" if sharded else "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": sorted(_EXCLUDED_DIRS | _EXCLUDED_FILES),
    }
    keyed: list[tuple[tuple[tuple[str, ...], int, int], str, str]] = []
    for f in manifest.files:
        if not sharded:
            keyed.append((_model_signing_order(f.path), f.path, f.sha256))
        elif f.shards:
            for s in f.shards:
                keyed.append((_model_signing_order(f.path, s.start, s.end), f"{f.path}:{s.start}:{s.end}", s.sha256))
        else:
            keyed.append((_model_signing_order(f.path, 0, f.size), f"{f.path}:0:{f.size}", f.sha256))
    if sharded:
        serialization["shard_size"] = manifest.shard_size
    keyed.sort(key=lambda item: item[0])
    resources = [{"name": name, "algorithm": "sha256", "digest": digest} for _, name, digest in keyed]
    root = hashlib.sha256(b"".join(bytes.fromhex(digest) for _, _, digest in keyed)).hexdigest()
    return {"serialization": serialization, "resources": resources, "root": root}
