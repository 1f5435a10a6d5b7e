"""Suites: a folder of declared data (suite.yaml, CSV/JSONL, LICENSE), loaded into immutable records.

`load_suite` turns a folder into a validated `Suite` (or one SuiteError listing every problem);
`list_bundled_suites`, `parse_suite_ref` and `resolve_suite_path` turn what a user types
("mmlu:5shot", "./my_suite") into a folder. The schema lives in `manifest`, the records in `records`.
"""

from evalkit.suite.loader import load_suite, read_manifest, validate_suite
from evalkit.suite.manifest import SuiteManifest
from evalkit.suite.records import DataFileDigest, Sample, Suite
from evalkit.suite.registry import SuiteInfo, list_bundled_suites, parse_suite_ref, resolve_suite_path

__all__ = [
    "DataFileDigest",
    "Sample",
    "Suite",
    "SuiteInfo",
    "SuiteManifest",
    "list_bundled_suites",
    "load_suite",
    "parse_suite_ref",
    "read_manifest",
    "resolve_suite_path",
    "validate_suite",
]
