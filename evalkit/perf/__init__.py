"""The performance suite: how fast a model runs on this machine, measured and reported like accuracy.

A suite of kind `performance` lists a grid of (batch size, prompt length) points; each point is
timed on synthetic prompts (prefill, time to first token, decode) with its peak memory, and becomes
one samples.jsonl row holding the raw timings and bytes. The `measurement` scorer turns a row into
tok/s, ms and MB, so `evalkit verify` recomputes every number from the rows like any other suite.

    grid.py     torch-free: the grid, run-time overrides (`--perf`), the report entry
    measure.py  the timing itself (torch, the model directly; not the evaluation engine)
    tables.py   the grid as tables for report.md, report.html and the CLI
    diff.py     reproduce and compare: timings are measurements, reported, never "not identical"

Nothing is imported here, so importing evalkit.perf.grid never pulls in torch.
"""
