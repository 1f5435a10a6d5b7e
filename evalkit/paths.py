"""Where bundled suites, profiles and the model cache live.

In a source checkout (editable install) the bundled folders are the repository's `suites/` and
`configs/`; in an installed wheel they are copied under `evalkit/_bundled/` (see pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    in_checkout = _PACKAGE_DIR.parent / name
    if in_checkout.is_dir():
        return in_checkout
    return _PACKAGE_DIR / "_bundled" / name


def bundled_suites_dir() -> Path:
    return _bundled("suites")


def bundled_configs_dir() -> Path:
    return _bundled("configs")


def cache_dir() -> Path:
    """evalkit's cache (the converted default model lives here); never inside the git tree."""
    env = os.environ.get("EVALKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "evalkit"
