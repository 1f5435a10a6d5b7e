"""Writing report files safely and deterministically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, TextIO

import rfc8785

from evalkit.fileio import write_chunks_atomic


def json_text(data: Any) -> str:
    """The one way evalkit renders a JSON file: sorted keys, 2-space indent, UTF-8, final newline.

    NaN and infinities are refused: JSON cannot carry them and a verifier could not recompute them.
    """
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def canonical(data: Any) -> Any:
    """`data` as it reads back from its RFC 8785 form (e.g. 0.0 becomes 0).

    The signed Statement is RFC 8785 JSON; a report normalised this way renders to the same
    report.json before signing and after verification, byte for byte.
    """
    return json.loads(rfc8785.dumps(data))


def json_line(data: Any) -> str:
    """One compact JSON line (samples.jsonl): sorted keys, shortest round-trip floats."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write atomically (see evalkit.fileio), readable by all."""
    write_chunks_atomic(path, [data.encode("utf-8") if isinstance(data, str) else data])


def write_lines_atomic(path: Path, lines: Iterable[str]) -> str:
    """Write lines atomically; return the sha256 of the bytes written."""
    digest = hashlib.sha256()

    def chunks() -> Iterable[bytes]:
        for line in lines:
            raw = line.encode("utf-8")
            digest.update(raw)
            yield raw

    write_chunks_atomic(path, chunks())
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Journal:
    """Append-only per-sample log, flushed after every row, so work done survives a crash."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._handle.write(json_line(row))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{number}: not valid JSON ({exc.msg})") from None
    return rows
