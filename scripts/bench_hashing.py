#!/usr/bin/env python3
"""Benchmark evalkit's model hashing against `sha256sum` on the same files.

Creates test files (default: one 1.5 GB file and four 200 MB files) in a temporary folder, or
hashes an existing folder given with --path. Nothing is dropped from the page cache (that needs
root), so every timing is of *cached* reads: it measures hashing throughput, not the disk. The
files are written just before the timings, so they are normally all in cache; the first tool
timed also warms it for the others (a warm-up read is done first to make this even).

Times, in one run: `sha256sum` over all files sequentially (as a user would run it), `sha256sum`
in parallel, one process per file (xargs -P), and evalkit's build_manifest with 1 GiB and
256 MiB shards. Prints GB/s (10^9 bytes per second) for each and the ratios; the last line is a
JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evalkit.model.manifest import build_manifest  # noqa: E402

MB = 1000 * 1000
MIB = 1024 * 1024


def write_file(path: Path, size: int) -> None:
    """Random-looking bytes, fast: one 8 MiB random block, each copy perturbed by a counter."""
    block = bytearray(os.urandom(8 * MIB))
    with open(path, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            block[:8] = counter.to_bytes(8, "little")
            n = min(len(block), size - written)
            handle.write(memoryview(block)[:n])
            written += n
            counter += 1


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, help="hash this existing folder instead of creating files")
    parser.add_argument("--big-mb", type=int, default=1500, help="size of the large file in MB (default 1500)")
    parser.add_argument("--small-mb", type=int, default=200, help="size of each small file in MB (default 200)")
    parser.add_argument("--small-count", type=int, default=4, help="number of small files (default 4)")
    parser.add_argument("--workers", type=int, default=None, help="evalkit hashing threads (default: CPU count)")
    args = parser.parse_args()

    tmp: str | None = None
    if args.path is not None:
        folder = args.path
    else:
        tmp = tempfile.mkdtemp(prefix="evalkit-bench-hash-")
        folder = Path(tmp)
        t = timed(lambda: [
            write_file(folder / "big.bin", args.big_mb * MB),
            *(write_file(folder / f"small-{i}.bin", args.small_mb * MB) for i in range(args.small_count)),
        ])
        print(f"wrote test files in {folder} in {t:.1f} s")
    try:
        files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
        total = sum(os.path.getsize(f) for f in files)
        cores = os.cpu_count() or 1
        print(f"{len(files)} files, {total / 1e9:.2f} GB, {cores} CPU cores; page cache NOT dropped "
              "(cached reads: this measures hashing, not the disk)")
        # Warm-up read so every timing below starts from the same (cached) state.
        for f in files:
            with open(f, "rb", buffering=0) as handle:
                while handle.read(16 * MIB):
                    pass

        results: dict[str, float | None] = {}
        sha = shutil.which("sha256sum")
        if sha:
            results["sha256sum_sequential"] = timed(
                lambda: subprocess.run([sha, *files], check=True, stdout=subprocess.DEVNULL))
            xargs = shutil.which("xargs")
            if xargs:
                results["sha256sum_parallel"] = timed(lambda: subprocess.run(
                    [xargs, "-0", "-n", "1", "-P", str(cores), sha],
                    input="\0".join(files).encode(), check=True, stdout=subprocess.DEVNULL))
        else:
            print("sha256sum not found; skipping it")
        for label, shard in (("evalkit_shard_1GiB", 1024 * MIB), ("evalkit_shard_256MiB", 256 * MIB)):
            results[label] = timed(lambda shard=shard: build_manifest(folder, shard_size=shard, workers=args.workers))

        rates = {k: total / v / 1e9 for k, v in results.items() if v}
        print(f"{'method':<24}{'seconds':>10}{'GB/s':>10}")
        for k, v in results.items():
            print(f"{k:<24}{v:>10.2f}{rates[k]:>10.2f}")
        ratios = {}
        base = rates.get("sha256sum_sequential")
        if base:
            for k in ("evalkit_shard_1GiB", "evalkit_shard_256MiB", "sha256sum_parallel"):
                if k in rates:
                    ratios[f"{k}_vs_sha256sum_sequential"] = rates[k] / base
        par = rates.get("sha256sum_parallel")
        if par:
            for k in ("evalkit_shard_1GiB", "evalkit_shard_256MiB"):
                ratios[f"{k}_vs_sha256sum_parallel"] = rates[k] / par
        for k, v in ratios.items():
            print(f"ratio {k}: {v:.2f}x")
        print(json.dumps({
            "files": len(files), "bytes": total, "cpu_cores": cores, "page_cache_dropped": False,
            "seconds": {k: round(v, 3) for k, v in results.items()},
            "gb_per_s": {k: round(v, 3) for k, v in rates.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
        }))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
