"""evalkit: evaluate a local language model offline and sign a report anyone can verify.

The pipeline flows one way (see README "Architecture"):
config -> suite -> prompts -> engine -> scoring -> report -> trust.
Importing this package has no side effects: no torch import, no network, no files written.
"""

__version__ = "0.1.0"
