"""The report: report.json (versioned schema), samples.jsonl (per sample) and report.md.

Files are written atomically (temporary file, fsync, rename), so a crash never leaves a half-written
report; per-sample rows are journaled and flushed as they complete while the run is going.
"""

REPORT_SCHEMA = "evalkit.report/v1"

REPORT_JSON = "report.json"
SAMPLES_JSONL = "samples.jsonl"
SAMPLES_JOURNAL = "samples.journal.jsonl"
REPORT_MD = "report.md"
MODEL_MANIFEST = "model.manifest.json"
ENVELOPE = "report.dsse.json"
