"""The immutable records a loaded suite hands to the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from evalkit.suite.manifest import SuiteManifest


@dataclass(frozen=True)
class Sample:
    """One row of a suite's data.

    id: stable within the suite (the row's `id_field`, else `<file stem>:<row number>`).
    fields: the row's columns plus the data file's constant fields; values are str, or for JSONL
        any JSON value.
    source: `path:line` of the row, for error messages.
    """

    id: str
    split: str
    fields: Mapping[str, Any]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


@dataclass(frozen=True)
class DataFileDigest:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Suite:
    """A validated suite: its manifest, its samples, and a digest that binds both.

    digest: sha256 hex over the RFC 8785 JSON of {name, version, files: [{path, sha256, size}]},
        where files are every file of the suite (suite.yaml, data, LICENSE, SOURCE.md) sorted by
        path. Any change to any byte of the suite changes it.
    """

    manifest: SuiteManifest
    root: Path
    digest: str
    files: tuple[DataFileDigest, ...]
    samples: tuple[Sample, ...] = field(repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    def split(self, name: str) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.split == name)

    @property
    def eval_samples(self) -> tuple[Sample, ...]:
        return self.split(self.manifest.eval_split)

    def license_text(self) -> str:
        return (self.root / self.manifest.license_file).read_text(encoding="utf-8")
