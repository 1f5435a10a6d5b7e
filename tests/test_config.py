"""Run configuration: profiles, overrides, and every problem reported at once."""

from __future__ import annotations

import pytest

from evalkit.config import load_config
from evalkit.errors import ConfigError


def test_quick_profile_loads_with_overrides():
    config = load_config("quick", {"model": "/m", "batch_size": 8, "limit": None})
    assert config.profile == "quick" and config.model == "/m" and config.batch_size == 8
    assert [s.ref for s in config.suites] == [
        "mmlu:0shot", "mmlu:5shot", "piqa", "truthfulqa_mc", "bbq", "gsm8k", "xstest", "perf"
    ]


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("suites: [{suite: mmlu, limit: 0}]\nbatch_size: 0\ncolour: blue\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    message = str(caught.value)
    assert "suites.0.limit" in message and "batch_size" in message and "colour" in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("suites:\n  - {suite: mmlu\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(str(path), {})


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="profiles: full, perf_gpu, quick, safety, standard"):
        load_config("quik", {})


def test_no_suite_is_a_clear_error():
    with pytest.raises(ConfigError, match="no suite to run"):
        load_config(None, {"model": "/m"})


@pytest.mark.parametrize("profile", ["quick", "standard", "safety", "full", "perf_gpu"])
def test_every_profile_names_only_bundled_suites(profile):
    from evalkit.paths import bundled_suites_dir

    config = load_config(profile, {})
    assert all((bundled_suites_dir() / spec.suite / "suite.yaml").is_file() for spec in config.suites)


def test_standard_and_full_run_every_bundled_suite():
    from evalkit.suite import list_bundled_suites

    bundled = {info.name for info in list_bundled_suites()}
    for profile in ("standard", "full"):
        assert {spec.suite for spec in load_config(profile, {}).suites} == bundled
