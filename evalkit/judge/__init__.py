"""Local judge models: a second causal LM that reads each answer and says what it sees.

The judge is any local checkpoint, loaded and run exactly like the model under test (same loader,
same engine, greedy). Its prompts are versioned data (`prompts.py`), its answers are parsed by
strict, documented rules (`parse.py`), and its raw answer is stored in each row so that
`evalkit verify` re-parses it and re-checks every judge value and the rule-vs-judge agreement
(`agreement.py`, `checks.py`) without running the judge again. `run.py` is the pass itself.
"""
