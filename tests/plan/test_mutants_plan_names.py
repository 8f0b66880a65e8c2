"""plan/names.py rule by rule (the one path a user's value takes into a file or a terminal),
pinned where the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from llmops.errors import UsageError
from llmops.plan import names


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain text", "plain text"),
        ("a\nb", "a\\nb"),
        ("a\tb", "a\\tb"),
        ("a\rb", "a\\rb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x7f", "\\x7f"),
        ("\x85", "\\x85"),  # C1 control: still below 0x100
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("\U000e0041tag", "\\U000e0041tag"),  # a tag character, above the BMP
        (42, "42"),
    ],
)
def test_printable_escapes_every_invisible_character(value: object, shown: str) -> None:
    assert names.printable(value) == shown
    assert names.comment(value) == shown
    assert "\n" not in names.comment(value)


def test_printable_lines_keeps_newlines_only() -> None:
    assert names.printable("a\nb\tc\x1b", lines=True) == "a\nb\\tc\\x1b"
    assert names.printable("a\nb", lines=False) == "a\\nb"


@pytest.mark.parametrize("value", ["simple", "it's", "$(rm -rf /)", "a b", "", "~/x", "`id`"])
def test_shell_is_one_word_holding_exactly_the_value(value: str) -> None:
    word = names.shell(value)
    assert shlex.split(word) == [value]
    out = subprocess.run(["sh", "-c", f"printf %s {word}"], capture_output=True, text=True)
    assert out.stdout == value


def test_shell_path_keeps_a_leading_tilde_working() -> None:
    word = names.shell_path("~/models/it's here")
    assert word.startswith('"$HOME"/')
    out = subprocess.run(
        ["sh", "-c", f"printf %s {word}"],
        capture_output=True,
        text=True,
        env={"HOME": "/home/me", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout == "/home/me/models/it's here"
    assert names.shell_path("/abs/p q") == "'/abs/p q'"
    assert names.shell_path("~user/x") == "'~user/x'"  # only ~/ is the user's home


def test_compose_literal_doubles_every_dollar() -> None:
    assert names.compose_literal("a$b${C}$$") == "a$$b$${C}$$$$"
    assert names.compose_literal("none") == "none"


@pytest.mark.parametrize("name", ["a", "Z9", "m.q4_k-M", "x" * 128, "9lives"])
def test_valid_deployment_names(name: str) -> None:
    assert names.is_name(name)
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "_a", "a b", "a/b", "a\n", "é", "a:b"])
def test_invalid_deployment_names(name: str) -> None:
    assert not names.is_name(name)
    with pytest.raises(UsageError) as e:
        names.check_name(name)
    assert "not a Docker container name" in e.value.message
    assert "\n" not in e.value.message  # the value is escaped


def test_a_name_one_character_too_long() -> None:
    name = "x" * 129
    assert not names.is_name(name)
    with pytest.raises(UsageError) as e:
        names.check_name(name)
    assert "longer than 128 characters" in e.value.message
    assert f"--name {'x' * 128}`" in (e.value.hint or "")


def test_the_hint_suggests_a_valid_name() -> None:
    with pytest.raises(UsageError) as e:
        names.check_name("My Model/v2!")
    assert "`--name My-Model-v2`" in (e.value.hint or "")
    with pytest.raises(UsageError) as e:
        names.check_name("///")
    assert "`--name my-model`" in (e.value.hint or "")
    with pytest.raises(UsageError) as e:
        names.check_name("_x_")
    assert "`--name x`" in (e.value.hint or "")


@pytest.mark.parametrize("text", ["a", "a-b", "0", "x" * 63, "a1-2b"])
def test_dns_labels(text: str) -> None:
    assert names.is_dns_label(text)
    assert names.dns_label(text) == text


@pytest.mark.parametrize("text", ["", "A", "-a", "a-", "a.b", "x" * 64, "a_b"])
def test_not_dns_labels(text: str) -> None:
    assert not names.is_dns_label(text)
    with pytest.raises(UsageError) as e:
        names.dns_label(text, "namespace")
    assert "invalid Kubernetes namespace" in e.value.message


def test_dns_subdomains() -> None:
    assert names.dns_subdomain("fast.ssd-1", "storage class") == "fast.ssd-1"
    ok = ".".join(["a" * 63] * 4)[:253]
    assert len(ok) == 253 and names.dns_subdomain(ok.rstrip("."), "x")
    for bad in ("", "Fast", "-a", "a.", "a_b", "a" * 254):
        with pytest.raises(UsageError) as e:
            names.dns_subdomain(bad, "storage class")
        assert "invalid Kubernetes storage class" in e.value.message


@pytest.mark.parametrize(
    "ref",
    [
        "python:3.11-slim-bookworm",
        "registry.example.com:5000/team/base:1.2",
        "vllm/vllm-openai:v0.6.3",
        "ghcr.io/ggml-org/llama.cpp:server-cuda",
        "busybox",
        "a/b@sha256:" + "0" * 64,
    ],
)
def test_image_refs(ref: str) -> None:
    assert names.check_image_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["", "Bad Image", "a\nRUN evil", 'q"uote', "x/UPPER", "x:" + "t" * 129, "a@sha256:abc"],
)
def test_not_image_refs(ref: str) -> None:
    with pytest.raises(UsageError) as e:
        names.check_image_ref(ref, "base image")
    assert "invalid base image" in e.value.message
    assert "\n" not in e.value.message


def test_an_image_ref_over_512_characters_is_refused() -> None:
    ref = "r.example.com/" + "/".join(["p" * 60] * 9)
    assert len(ref) > 512
    with pytest.raises(UsageError):
        names.check_image_ref(ref)
    short = "r.example.com/" + "/".join(["p" * 60] * 8)
    assert len(short) <= 512 and names.check_image_ref(short) == short


def test_escape_width_at_the_edge_of_the_bmp() -> None:
    assert names.printable("\uffff") == "\\uffff"  # the last BMP code point: four digits
    assert names.printable("\U000e0001\u200b") == "\\U000e0001\\u200b"  # a tag, ZWSP


def test_an_image_ref_of_exactly_512_characters_is_accepted() -> None:
    ref = "r.example.com/" + "p" * (512 - len("r.example.com/"))
    assert len(ref) == 512 and names.check_image_ref(ref) == ref


def test_dns_label_names_what_it_checked() -> None:
    with pytest.raises(UsageError) as e:
        names.dns_label("Not_A_Label")
    assert e.value.message.startswith("invalid Kubernetes name 'Not_A_Label'")
    with pytest.raises(UsageError) as e:
        names.dns_label("Bad_", "namespace")
    assert e.value.message.startswith("invalid Kubernetes namespace 'Bad_'")
