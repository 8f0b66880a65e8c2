"""`llmops up`, `render`, `ps`, `logs`, `down` from the command line: dry-run goldens per engine,
bad input (one line, a hint, nothing half-started), and a full cycle on the real Docker engine."""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app, deps
from llmops.run.up import pick_port
from tests.support.fakes import fake_nvml
from tests.support.sentinels import unique

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def cli(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def h100(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "nvml_module", lambda: fake_nvml("h100x8_nvlink"))


@pytest.fixture
def fixed_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Stable paths in rendered output: goldens must not contain tmp dirs. And a stable CPU:
    llama.cpp's `-t` comes from this host's cores, so the probe reports an 8-core/16-thread CPU
    (llama.cpp is then given -t 8, its physical cores)."""
    from dataclasses import replace

    probe = deps.collect_facts

    def fixed_cpu(*a, **kw):  # type: ignore[no-untyped-def]
        f = probe(*a, **kw)
        if f.system is None:
            return f
        cpu = replace(f.system, cpu_cores=8, cpu_threads=16, cpu_usable=16)
        return replace(f, system=cpu)

    monkeypatch.setattr(deps, "collect_facts", fixed_cpu)
    home = Path("/tmp/llmops-golden-home")
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setenv("HF_HOME", "/tmp/llmops-golden-hf")
    yield home
    import shutil

    shutil.rmtree(home, ignore_errors=True)


def _golden(name: str, text: str) -> None:
    text = text.replace(sys.executable, "PYTHON")
    path = GOLDEN / f"dry-run-{name}.sh"
    if os.environ.get("LLMOPS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"dry-run {name} changed; LLMOPS_UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        (
            "tgi",
            [
                "mistral7b",
                "--engine",
                "tgi",
                "--quant",
                "awq",
                "--gpus",
                "1,2",
                "--context",
                "16384",
            ],
        ),
        (
            "vllm",
            [
                "llama3.1-8b",
                "--engine",
                "vllm",
                "--quant",
                "fp8",
                "--gpus",
                "1",
                "--context",
                "65536",
            ],
        ),
        ("torch", ["smollm2", "--engine", "torch", "--context", "2048"]),
    ],
)
def test_up_dry_run_golden_native(name: str, args: list[str], h100, fixed_home) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "up",
        *args,
        "--runtime",
        "native",
        "--port",
        "38123",
        "--dry-run",
        env={"HF_TOKEN": "hf_SECRETSECRETSECRET"},
    )
    assert r.exit_code == 0, r.output
    assert "SECRETSECRET" not in r.output
    _golden(name, r.stdout)
    assert not (fixed_home / "deployments").exists()  # dry run starts and records nothing


@pytest.mark.docker
def test_up_dry_run_golden_llamacpp_docker(docker_client, fixed_home) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "up",
        "qwen2.5-7b",
        "--engine",
        "llamacpp",
        "--quant",
        "q4_k_m",
        "--context",
        "4096",
        "--port",
        "38124",
        "--dry-run",
    )
    assert r.exit_code == 0, r.output
    _golden("llamacpp", r.stdout)


def test_render_json_is_the_plan(h100) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "render",
        "mixtral8x7b",
        "--engine",
        "vllm",
        "--quant",
        "awq",
        "--hw",
        "2x80GB",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)["plan"]
    argv = plan["argv"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == str(len(plan["gpus"]))
    assert plan["ipc_host"] is True and plan["secret_env"][0]["env"] == "VLLM_API_KEY"


@pytest.mark.parametrize(
    ("args", "code", "first", "hint"),
    [
        (
            ["up", "mistral7b", "--engine", "nope"],
            2,
            "error: unknown engine 'nope'",
            "tgi, vllm, llamacpp, torch",
        ),
        (["up", "mistrl7b"], 2, "error: unknown model 'mistrl7b'", "mistral7b"),
        (
            ["render", "mistral7b", "--engine", "llamacpp", "--quant", "awq", "--hw", "cpu"],
            2,
            "error: mistral7b has no awq artifact that llamacpp can serve",
            "q4_k_m",
        ),
        (
            ["render", "mistral7b", "--hw", "2xbanana"],
            2,
            "error: malformed --hw part '2xbanana'",
            "24GB",
        ),
        (
            ["up", "mistral7b", "--gpus", "9"],
            2,
            "error: GPU index 9 does not exist on this host",
            "doctor",
        ),
        (
            ["up", "mistral7b", "--context", "0"],
            2,
            "error: --context must be a positive number",
            "--context",
        ),
        (
            ["up", "llama2-70b", "--engine", "vllm", "--quant", "bf16", "--gpus", "0", "--dry-run"],
            3,
            "error: llama2-70b as BF16 on vllm does not fit",
            "llmops fit llama2-70b",
        ),
    ],
)
def test_bad_input_is_one_error_line_with_a_hint(args, code, first, hint, h100, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    assert r.exit_code == code, r.output
    lines = r.stderr.splitlines()
    assert lines[0].startswith(first), r.stderr
    assert any(ln.startswith("hint:") and hint in ln for ln in lines), r.stderr
    assert "Traceback" not in r.output
    assert cli("ps", "--json").exit_code == 0
    assert json.loads(cli("ps", "--json").stdout)["deployments"] == []


def test_port_in_use_is_refused(h100) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("up", "smollm2", "--port", str(port))
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: port {port} is already in use")


def test_tgi_on_a_gpu_less_host_explains(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    r = cli("up", "mistral7b", "--engine", "tgi", "--runtime", "native")
    assert r.exit_code in (1, 3), r.output
    assert "NVIDIA GPU" in r.stderr and "--engine llamacpp" in r.stderr


@pytest.mark.docker
def test_gpu_request_without_nvidia_runtime_fails_before_starting(docker_client, h100) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "up",
        "mistral7b",
        "--engine",
        "vllm",
        "--quant",
        "awq",
        "--gpus",
        "1",
        "--runtime",
        "docker",
    )
    assert r.exit_code == 1
    assert "cannot give containers GPUs" in r.stderr
    assert "nvidia-ctk runtime configure" in r.stderr


def test_docker_unreachable(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    r = cli("up", "qwen2.5-7b", "--engine", "llamacpp", "--runtime", "docker")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: Docker is not reachable")
    assert "--runtime native" in r.stderr


@pytest.mark.docker
def test_full_cycle_on_docker(docker_client, engine_images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = pick_port(38200, set())
    one, two = unique("t-cli"), unique("t-cli2")
    serve = engine_images("llamacpp", "serve")
    base = ["qwen2.5-7b", "--engine", "llamacpp", "--quant", "q4_k_m", "--context", "2048"]
    r = cli("up", *base, "--image", serve, "--port", str(port), "--name", one)
    assert r.exit_code == 0, r.output
    assert f"http://127.0.0.1:{port}/v1" in r.stdout and "api key:   sk-llmops-" in r.stdout
    key = next(ln.split()[2] for ln in r.stdout.splitlines() if ln.startswith("api key:"))
    # the engine enforces the key: generation without it is refused, with it answered
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = json.dumps({"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(req, timeout=10)
    assert denied.value.code == 401
    req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["choices"][0]["message"]["content"] == "stand-in"
    # a second deployment of the same model coexists on the next free port
    r2 = cli("up", *base, "--image", serve, "--name", two, "--json")
    assert r2.exit_code == 0, r2.output
    doc2 = json.loads(r2.stdout)
    assert doc2["ready"] and doc2["endpoint"] != f"http://127.0.0.1:{port}/v1"
    # a name taken by another model is refused
    clash = cli("up", "mistral7b", "--engine", "llamacpp", "--quant", "q4_k_m", "--name", one)
    assert clash.exit_code == 2 and "is taken by qwen2.5-7b" in clash.stderr
    ps = json.loads(cli("ps", "--json").stdout)
    rows = {d["name"]: d for d in ps["deployments"]}
    assert set(rows) == {one, two}  # this install's only: the host's other containers not listed
    assert rows[one]["health"] == "ready" and rows[one]["runtime"] == "docker"
    assert key not in cli("ps").stdout and key not in json.dumps(ps)
    info = docker_client.api.inspect_container(f"llmops-{one}")
    assert key not in " ".join(info["Config"]["Cmd"]) and key not in json.dumps(
        info["Config"]["Labels"]
    )
    logs = cli("logs", one).stdout
    assert (
        "Starting Webserver" in logs and "args: -hf bartowski/Qwen2.5-7B-Instruct-GGUF -hff" in logs
    )
    # (the stand-in runs as PID 1 and ignores SIGTERM: a short grace before SIGKILL)
    assert cli("down", one, "--grace", "1").exit_code == 0
    # --all is this install's all: the host's own containers (tests/support/sentinels.py) survive it
    assert cli("down", "--all", "--json", "--grace", "1").exit_code == 0
    assert json.loads(cli("ps", "--json").stdout)["deployments"] == []
    assert cli("down", one).exit_code == 1  # already gone: a clear error


@pytest.mark.docker
def test_crash_and_timeout_exit_1_with_log_tail(docker_client, engine_images) -> None:  # type: ignore[no-untyped-def]
    base = ["qwen2.5-7b", "--engine", "llamacpp", "--quant", "q4_k_m", "--context", "2048"]
    crash = unique("t-crash")
    r = cli("up", *base, "--image", engine_images("llamacpp", "crash"), "--name", crash)
    assert r.exit_code == 1
    assert "--- engine log (last lines) ---" in r.stderr and "CUDA out of memory" in r.stderr
    assert f"error: deployment {crash} (llamacpp)" in r.stderr and "hint:" in r.stderr
    hang = unique("t-hang")
    r = cli(
        "up", *base, "--image", engine_images("llamacpp", "hang"), "--name", hang, "--timeout", "3"
    )
    assert r.exit_code == 1 and "was not ready after 3 s" in r.stderr, r.stderr
    assert json.loads(cli("ps", "--json").stdout)["deployments"] == []


def test_gated_model_without_a_token_is_refused_before_anything_starts() -> None:
    r = cli("up", "llama3.1-8b", "--engine", "torch", "--quant", "bf16", "--force", "--dry-run")
    assert r.exit_code == 1, r.output
    assert "is gated on the Hugging Face Hub and no token is set" in r.stderr
    assert "HF_TOKEN" in r.stderr
    ok = cli(
        "up",
        "llama3.1-8b",
        "--engine",
        "torch",
        "--quant",
        "bf16",
        "--force",
        "--dry-run",
        env={"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwx"},
    )
    assert ok.exit_code == 0, ok.output
    assert "hf_abcdefghijklmnopqrstuvwx" not in ok.output  # referenced, never printed
    assert "HF_TOKEN=<hf_token>" in ok.stdout


@pytest.mark.docker
def test_an_image_that_cannot_be_pulled_is_a_clear_error(docker_client) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "up",
        "qwen2.5-7b",
        "--engine",
        "llamacpp",
        "--quant",
        "q4_k_m",
        "--context",
        "2048",
        "--image",
        "llmops-test/not-built-here:1",
        "--name",
        unique("t-nopull"),
    )
    assert r.exit_code == 1, r.output
    assert (
        "image llmops-test/not-built-here:1 is not on this host and could not be pulled" in r.stderr
    )
    assert "docker pull" in r.stderr
    assert json.loads(cli("ps", "--json").stdout)["deployments"] == []
