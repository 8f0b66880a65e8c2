"""``llmops.plan.gpus``: the one grammar of a GPU list and what ``--gpus`` / ``--gpu`` mean."""

from __future__ import annotations

import pytest

from llmops.errors import UsageError
from llmops.plan.gpus import admin_gpus, gpu_indices, launch_gpus


@pytest.mark.parametrize(
    ("text", "want"),
    [("0", (0,)), ("0,1", (0, 1)), (" 1 , 0 ", (1, 0)), ("1,0,1", (1, 0, 1)), ("0,,1,", (0, 1))],
)
def test_the_grammar(text: str, want: tuple[int, ...]) -> None:
    assert gpu_indices(text) == want


def test_a_list_of_nothing_is_empty() -> None:
    assert gpu_indices(",") == () and gpu_indices("") == ()


@pytest.mark.parametrize("text", ["first", "0,a", "-1", "0,-2", "1.5", "0;1"])
def test_anything_else_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError) as e:
        gpu_indices(text, "--gpu")
    assert "bad --gpu" in e.value.message and "indices" in e.value.message
    assert e.value.hint is not None and "--gpu 0,1" in e.value.hint


def test_launch_gpus() -> None:
    assert launch_gpus(None) is None  # the planner chooses
    for none in ("", "none", "CPU", " cpu "):
        assert launch_gpus(none) == ()
    assert launch_gpus("1,0") == (1, 0)
    with pytest.raises(UsageError, match="twice"):
        launch_gpus("0,0")
    with pytest.raises(UsageError, match="bad --gpus 'first'"):
        launch_gpus("first")


def test_admin_gpus() -> None:
    assert admin_gpus(None) is None and admin_gpus("") is None  # all GPUs
    assert admin_gpus("1,0,1") == (1, 0)  # a repeat is acted on once
    for bad in ("none", ",", "a,b", "-1"):
        with pytest.raises(UsageError, match="bad --gpu"):
            admin_gpus(bad)
