"""``llmops.paths.llmops_home``: where llmops keeps its state, read from the environment given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.paths import llmops_home


def test_llmops_home_wins() -> None:
    env = {"LLMOPS_HOME": "/srv/llmops", "XDG_STATE_HOME": "/xdg"}
    assert llmops_home(env) == Path("/srv/llmops")


def test_xdg_state_home_next() -> None:
    assert llmops_home({"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/llmops")


def test_an_empty_variable_counts_as_unset() -> None:
    assert llmops_home({"LLMOPS_HOME": "", "XDG_STATE_HOME": "/xdg"}) == Path("/xdg/llmops")
    assert llmops_home({"LLMOPS_HOME": "", "XDG_STATE_HOME": ""}) == Path(
        os.path.expanduser("~/.local/state/llmops")
    )


def test_the_default_is_under_local_state() -> None:
    assert llmops_home({}) == Path(os.path.expanduser("~/.local/state/llmops"))


def test_without_a_mapping_it_reads_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_HOME", "/from/os/environ")
    assert llmops_home() == Path("/from/os/environ")


def test_the_host_probe_reports_the_state_disk_at_the_probed_environments_home(
    tmp_path: Path,
) -> None:
    from llmops.hw.system import probe_system

    home = tmp_path / "state-home"
    facts = probe_system(env={"LLMOPS_HOME": str(home), "HF_HOME": str(tmp_path / "hf")})
    (state,) = [d for d in facts.disks if d.purpose == "state"]
    assert state.path == str(home)


def test_cache_home_is_llmops_home_when_set_else_the_user_cache() -> None:
    from llmops.paths import cache_home

    assert cache_home({"LLMOPS_HOME": "~/x"}) == Path.home() / "x"
    assert cache_home({"XDG_STATE_HOME": "/s"}) == Path.home() / ".cache" / "llmops"
    assert llmops_home({"LLMOPS_HOME": "/srv/l"}) == Path("/srv/l")
