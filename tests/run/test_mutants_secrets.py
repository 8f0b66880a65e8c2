"""Secrets handling, pinned where the mutation benchmark found no test (benchmarks/MUTATION.md).

Each test states a behaviour a user relies on: an API key is shown only masked, a token's middle
never appears, the secrets file is 0600 and read as data, a deployment's key is the one its plan
names. Real files under the test's own ``LLMOPS_HOME``; nothing is faked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmops.errors import UsageError
from llmops.hw import hf
from llmops.hw import remote_probe as rp
from llmops.run.state import DeploymentStore, mask, new_api_key

# ------------------------------------------------------------------ the API key and its mask


def test_new_api_keys_are_long_random_and_recognisable() -> None:
    keys = {new_api_key() for _ in range(20)}
    assert len(keys) == 20  # never the same key twice
    for k in keys:
        assert k.startswith("sk-llmops-")
        body = k[len("sk-llmops-") :]
        assert len(body) == 32  # 24 random bytes (192 bits), base64url without padding
        assert all(c.isalnum() or c in "-_" for c in body)


def test_mask_shows_only_the_kind_and_the_last_four() -> None:
    key = "sk-llmops-" + "A" * 20 + "wxyz"
    assert mask(key) == "sk-llmops-…wxyz"
    assert "A" not in mask(key)


@pytest.mark.parametrize("n", [0, 1, 8, 15, 16])
def test_mask_of_a_short_secret_shows_nothing_of_it(n: int) -> None:
    """16 characters or fewer: the 10 + 4 shown would be most (or all) of the secret."""
    secret = "s3cr3tK3y!#xyzQW"[:n]
    assert mask(secret) == "…"


def test_mask_of_seventeen_characters_hides_the_middle() -> None:
    secret = "0123456789abcdefg"  # 17
    assert mask(secret) == "0123456789…defg"


def test_every_real_key_is_masked_without_its_random_middle() -> None:
    for _ in range(10):
        k = new_api_key()
        m = mask(k)
        assert k[10:-4] not in m
        assert m.endswith(k[-4:]) and m.startswith("sk-llmops-")


# ------------------------------------------------------------------ the store's names and files


@pytest.mark.parametrize(
    "name", ["", ".hidden", "-dash", "../etc", "a/b", "a b", "x" * 129, "bad\n", "é"]
)
def test_a_deployment_name_that_could_escape_or_confuse_is_refused(name: str) -> None:
    store = DeploymentStore()
    with pytest.raises(UsageError) as e:
        store.dir(name)
    assert "invalid deployment name" in str(e.value)


@pytest.mark.parametrize("name", ["a", "9", "smol-1.q4_k", "x" * 128])
def test_a_valid_name_is_a_directory_under_the_store(name: str, tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    assert store.dir(name) == tmp_path / "home" / "deployments" / name


_BASE = {"engine": "llamacpp", "runtime": "native", "ports": [{"host_port": 8080}]}


def _plan(env: str = "LLMOPS_API_KEY", secret: str = "api_key") -> dict[str, object]:
    return {**_BASE, "secret_env": [{"env": env, "secret": secret}]}


def test_save_writes_a_private_directory_and_0600_files(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    key = new_api_key()
    dep = store.save("d1", _plan(), "2026-01-01T00:00:00Z", {"LLMOPS_API_KEY": key})
    d = store.dir("d1")
    assert dep.path == d and dep.name == "d1" and dep.created_at == "2026-01-01T00:00:00Z"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for f in ("secrets.env", "deployment.json"):
        assert stat.S_IMODE(os.stat(d / f).st_mode) == 0o600, f
    assert (d / "secrets.env").read_text() == f"LLMOPS_API_KEY={key}\n"
    assert key not in (d / "deployment.json").read_text()
    loaded = store.load("d1")
    assert loaded is not None and loaded.plan == _plan()


def test_save_refuses_a_secret_with_a_newline_and_writes_nothing(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    with pytest.raises(UsageError) as e:
        store.save("d2", _plan(), "t", {"HF_TOKEN": "hf_abc\nEVIL=1"})
    assert "hf_abc" not in str(e.value)
    assert not store.dir("d2").exists()  # checked before anything is created


def test_saving_again_replaces_the_record(tmp_path: Path) -> None:
    """`up` of a name whose record exists (a restart) rewrites it in place."""
    store = DeploymentStore(tmp_path / "home")
    store.save("again", _plan(), "t1", {"LLMOPS_API_KEY": "sk-llmops-first-key-0000"})
    store.save("again", _plan(), "t2", {"LLMOPS_API_KEY": "sk-llmops-second-key-000"})
    loaded = store.load("again")
    assert loaded is not None and loaded.created_at == "t2"
    assert store.api_key("again") == "sk-llmops-second-key-000"


def test_the_record_on_disk_names_itself_and_holds_no_secret(tmp_path: Path) -> None:
    import json

    store = DeploymentStore(tmp_path / "home")
    key = new_api_key()
    store.save("rec", _plan(), "2026-02-03T04:05:06Z", {"LLMOPS_API_KEY": key})
    doc = json.loads((store.dir("rec") / "deployment.json").read_text())
    assert doc == {"name": "rec", "created_at": "2026-02-03T04:05:06Z", "plan": _plan()}


def test_write_secrets_refuses_a_control_character_and_keeps_the_old_file(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.save("d3", _plan(), "t", {"LLMOPS_API_KEY": "sk-llmops-good-key-0000"})
    with pytest.raises(UsageError):
        store.write_secrets("d3", {"LLMOPS_API_KEY": "sk-bad\x07key"})
    assert store.read_secrets("d3") == {"LLMOPS_API_KEY": "sk-llmops-good-key-0000"}


def test_read_secrets_reads_data_not_shell(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.dir("d4").mkdir(parents=True)
    store.secrets_path("d4").write_text(
        "A=1\n# a comment without an equals sign\nB=x=y==\n$(touch pwned)\nC=\n"
    )
    assert store.read_secrets("d4") == {"A": "1", "B": "x=y==", "C": ""}


def test_read_secrets_survives_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.dir("d6").mkdir(parents=True)
    store.secrets_path("d6").write_bytes(b"A=1\nB=\xff\xfe\n")
    assert store.read_secrets("d6") == {"A": "1", "B": "\ufffd\ufffd"}


def test_read_secrets_without_a_file_is_empty(tmp_path: Path) -> None:
    assert DeploymentStore(tmp_path / "home").read_secrets("nothing-here") == {}


def test_write_then_read_round_trips_every_value(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.dir("d5").mkdir(parents=True)
    values = {"LLMOPS_API_KEY": new_api_key(), "HF_TOKEN": "hf_" + "q" * 30, "EMPTY": ""}
    store.write_secrets("d5", values)
    assert store.read_secrets("d5") == values
    assert stat.S_IMODE(os.stat(store.secrets_path("d5")).st_mode) == 0o600


# ------------------------------------------------------------------ which secret is the API key


def test_api_key_is_the_secret_the_plan_names(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    key = new_api_key()
    plan = {
        **_BASE,
        "secret_env": [
            "not-a-dict",
            {"env": "HF_TOKEN", "secret": "hf_token"},
            {"env": "VLLM_API_KEY", "secret": "api_key"},
        ],
    }
    store.save("k1", plan, "t", {"HF_TOKEN": "hf_" + "z" * 30, "VLLM_API_KEY": key})
    assert store.api_key("k1") == key


def test_api_key_is_none_without_a_deployment(tmp_path: Path) -> None:
    assert DeploymentStore(tmp_path / "home").api_key("absent") is None


def test_api_key_is_none_when_the_plan_names_none(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.save("k2", dict(_BASE), "t", {"LLMOPS_API_KEY": "sk-llmops-unused-0000"})
    assert store.api_key("k2") is None
    store.save("k3", {**_BASE, "secret_env": []}, "t", {"LLMOPS_API_KEY": "sk-llmops-x-0000"})
    assert store.api_key("k3") is None


def test_api_key_ignores_a_token_and_an_empty_key(tmp_path: Path) -> None:
    store = DeploymentStore(tmp_path / "home")
    store.save("k4", _plan("HF_TOKEN", "hf_token"), "t", {"HF_TOKEN": "hf_" + "y" * 30})
    assert store.api_key("k4") is None  # a Hub token is not the endpoint's key
    store.save("k5", _plan(), "t", {"LLMOPS_API_KEY": ""})
    assert store.api_key("k5") is None  # an empty value is no key
    store.save("k6", _plan(), "t", {"OTHER": "sk-llmops-elsewhere-0000"})
    assert store.api_key("k6") is None  # the named variable is not in the file


# ------------------------------------------------------------------ Hub tokens (hw/hf.py)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("", ""),
        ("a", "…"),
        ("ab", "……"),
        ("abcdefgh", "………"),  # 8: still nothing of it
        ("hf_abcdefgh", "hf_…efgh"),  # 11
        ("abcdefghi", "…fghi"),  # 9, no kind prefix
        ("hfXabcdefghij", "…ghij"),  # no underscore at [2]: no prefix
        ("  hf_abcdefgh12  ", "hf_…gh12"),  # surrounding whitespace is not the token
    ],
)
def test_mask_secret(secret: str, shown: str) -> None:
    assert hf.mask_secret(secret) == shown


def test_find_token_takes_hf_token_first_then_the_old_name(tmp_path: Path) -> None:
    a, b = "hf_" + "a" * 30, "hf_" + "b" * 30
    assert hf.find_token({"HF_TOKEN": a, "HUGGING_FACE_HUB_TOKEN": b}) == (a, "env:HF_TOKEN")
    assert hf.find_token({"HUGGING_FACE_HUB_TOKEN": f" {b}\n", "HF_HOME": str(tmp_path)}) == (
        b,
        "env:HUGGING_FACE_HUB_TOKEN",
    )


def test_find_token_skips_a_blank_variable_for_the_token_file(tmp_path: Path) -> None:
    tok = "hf_" + "f" * 30
    (tmp_path / "token").write_text(f"\n{tok}\n")
    assert hf.find_token({"HF_TOKEN": "   ", "HF_HOME": str(tmp_path)}) == (
        tok,
        f"file:{tmp_path / 'token'}",
    )


def test_find_token_reads_hf_token_path_before_the_home(tmp_path: Path) -> None:
    tok = "hf_" + "p" * 30
    (tmp_path / "elsewhere").write_text(tok)
    (tmp_path / "token").write_text("hf_" + "h" * 30)
    env = {"HF_TOKEN_PATH": str(tmp_path / "elsewhere"), "HF_HOME": str(tmp_path)}
    assert hf.find_token(env) == (tok, f"file:{tmp_path / 'elsewhere'}")


def test_find_token_with_an_empty_token_file_is_none(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  \n")
    assert hf.find_token({"HF_HOME": str(tmp_path)}) == (None, None)


# ------------------------------------------------------------------ the remote probe's hf section


def _hf_facts(section: str):  # type: ignore[no-untyped-def]
    out = f"{rp.MARK}hf\n{section}\n{rp.MARK}end\n"
    facts = rp.parse_probe_output(
        out, sections=["hf"], source="ssh:test", llmops_version="0", collected_at="t"
    )
    assert facts.hf is not None
    return facts.hf


def test_remote_hf_without_a_token() -> None:
    h = _hf_facts("cache=/root/.cache/huggingface/hub\nsize_mib=1234\nrepos=3\noffline=0")
    assert h.token_present is False
    assert h.token_source is None and h.token_masked is None and h.error is None
    assert h.offline_mode is False
    assert (h.cache_dir, h.cache_size_mib, h.cache_repos) == (
        "/root/.cache/huggingface/hub",
        1234,
        3,
    )


def test_remote_hf_with_a_token_is_masked_and_marked_unchecked() -> None:
    h = _hf_facts("source=env:HF_TOKEN\nlen=37\nfirst3=hf_\nlast4=wxyz\noffline=1")
    assert h.token_present is True and h.token_source == "env:HF_TOKEN"
    assert h.token_masked == "hf_…wxyz" == hf.mask_secret("hf_" + "x" * 30 + "wxyz")
    assert h.token_valid is None and h.online is None
    assert h.error is not None and "not checked" in h.error
    assert h.offline_mode is True


@pytest.mark.parametrize(
    ("length", "first3", "last4", "shown"),
    [
        ("8", "abc", "efgh", "………"),  # as short as mask_secret hides it whole
        ("2", "ab", "ab", "……"),
        ("9", "abc", "fghi", "…fghi"),
        ("20", "abX", "wxyz", "…wxyz"),
        ("", "hf_", "wxyz", ""),  # no length: nothing can be shown safely
    ],
)
def test_remote_mask_matches_the_local_mask(
    length: str, first3: str, last4: str, shown: str
) -> None:
    h = _hf_facts(f"source=file:/t\nlen={length}\nfirst3={first3}\nlast4={last4}")
    assert h.token_masked == shown
    if length:
        token = (
            (first3 + "m" * 40)[: int(length) - 4] + last4 if int(length) > 8 else "x" * int(length)
        )
        assert h.token_masked == hf.mask_secret(token)


def test_remote_mask_without_the_last_four_shows_none() -> None:
    h = _hf_facts("source=env:HF_TOKEN\nlen=37\nfirst3=hf_")
    assert h.token_masked == "hf_…"
