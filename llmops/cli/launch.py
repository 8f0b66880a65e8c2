"""`llmops up` and `llmops render`: plan a deployment from the catalog and the fit, then
render it or start it and wait until it serves."""

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import deps, output

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts
    from llmops.plan.deploy import Request
    from llmops.plan.launch import LaunchPlan
    from llmops.run.launching import Prepared


EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        "-e",
        help="vllm | sglang | llamacpp | tgi (maintenance mode) | torch (default: chosen for the host).",
    ),
]
QuantOpt = Annotated[
    str | None,
    typer.Option(
        "--quant",
        "-q",
        help="4bit | 8bit | fp16 | bf16 | gptq | awq | fp8 | q4_k_m | q5_k_m | q8_0 (default: "
        "the best that fits).",
    ),
]
ContextOpt = Annotated[
    int | None,
    typer.Option(
        "--context",
        "-c",
        help="Context length in tokens (default: what fits, up to the trained length).",
    ),
]
GpusOpt = Annotated[
    str | None,
    typer.Option(
        "--gpus", help="GPU indices to use, e.g. 0,1 (default: as many as the fit needs)."
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", "-n", help="Deployment name (default MODEL-ENGINE).")
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime", help="docker | native (default: docker when reachable, else native)."
    ),
]
ImageOpt = Annotated[str | None, typer.Option("--image", help="Override the engine image.")]
RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Serve this Hugging Face repo instead of the catalog's (a fine-tune with the same "
        "architecture).",
    ),
]
RopeFactorOpt = Annotated[
    float | None,
    typer.Option("--rope-factor", help="Override the rope scaling factor fit computes (e.g. 2.6)."),
]
RopeKindOpt = Annotated[
    str | None,
    typer.Option(
        "--rope-scaling", help="Rope scaling method: linear | dynamic | yarn (default dynamic)."
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", help="Concurrent sequences to size the KV cache for.")
]


KvDtypeOpt = Annotated[
    str,
    typer.Option(
        "--kv-dtype",
        help="KV cache dtype: auto, fp16, bf16, fp8 (vLLM, TGI), q8_0, q4_0 (llama.cpp).",
    ),
]


def _request(ctx: typer.Context, facts: "HostFacts", **o: Any) -> "Request":
    """The typed request; engine arguments after ``--`` become ``extra_args``."""
    from llmops.plan.deploy import Request, parse_gpus

    o["gpus"] = parse_gpus(o.get("gpus"), facts)
    return Request(**o, extra_args=tuple(ctx.args))


def _facts(hw: str | None, facts_file: Path | None) -> "HostFacts":
    return deps.planning_facts(hw, facts_file, ["nvidia", "system", "docker", "platform", "hf"])


def render(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Catalog name (see `llmops models`) or HF repo id.")],
    engine: EngineOpt = None,
    quant: QuantOpt = None,
    context: ContextOpt = None,
    gpus: GpusOpt = None,
    port: Annotated[
        int | None, typer.Option("--port", "-p", min=1, max=65535, help="Host port.")
    ] = None,
    name: NameOpt = None,
    runtime: RuntimeOpt = None,
    image: ImageOpt = None,
    repo: RepoOpt = None,
    rope_factor: RopeFactorOpt = None,
    rope_kind: RopeKindOpt = None,
    concurrency: ConcurrencyOpt = 1,
    kv_dtype: KvDtypeOpt = "auto",
    hw: Annotated[
        str | None,
        typer.Option(
            "--hw", help="Plan for this hardware instead of this host, e.g. 2x24GB, 1xA100-80GB."
        ),
    ] = None,
    facts_file: Annotated[
        Path | None,
        typer.Option(
            "--facts", metavar="FILE", help="Plan for a host saved by `llmops doctor --json`."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="shell (docker run) | native (no Docker) | json (the LaunchPlan) | compose "
            "(docker compose) | k8s (Deployment + Service).",
        ),
    ] = "shell",
    force: Annotated[
        bool, typer.Option("--force", help="Render even when it does not fit.")
    ] = False,
    nodes: Annotated[
        str | None,
        typer.Option(
            "--nodes",
            help="Multi-node vLLM on Ray: a node count (each like --hw or this host), or "
            "inventory hosts gpu-a,gpu-b (head first). Also `--hw 2x8xH100`.",
        ),
    ] = None,
    add: Annotated[
        Path | None,
        typer.Option(
            "--add", metavar="FILE", help="compose: add this deployment to FILE's services."
        ),
    ] = None,
    k8s_cache: Annotated[
        str | None,
        typer.Option(
            "--k8s-cache", help="k8s: the HF cache, pvc (default) or hostPath:/dir on the node."
        ),
    ] = None,
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring", help="compose/k8s: add Prometheus, the DCGM exporter and Grafana."
        ),
    ] = False,
) -> None:
    """Show how a model would be launched: a docker run line, a native command, the plan, a
    compose file or Kubernetes manifests; `--nodes` plans multi-node vLLM."""
    from llmops.cli import scale

    runtime = _render_runtime(fmt, runtime, monitoring=monitoring, nodes=nodes)
    layout = scale.node_layout(nodes, hw)
    facts = _facts(layout.node_hw, facts_file)
    req = _request(
        ctx,
        facts,
        model=model,
        engine=engine,
        quant=quant,
        context=context,
        gpus=gpus,
        port=port,
        name=name,
        runtime=runtime,
        image=image,
        concurrency=concurrency,
        kv_dtype=kv_dtype,
        api_key=True,
        force=force,
        repo=repo,
        rope_factor=rope_factor,
        rope_kind=rope_kind,
    )
    if layout.nodes > 1:
        text, notes = scale.render_nodes(req, facts, layout, fmt, k8s_cache)
        for note in notes:
            output.warn(note)
        sys.stdout.write(text)
        return
    prep = scale.prepare_single(req, facts)
    _tell(prep)
    text = scale.render_single(prep, fmt, add, k8s_cache)
    if monitoring:
        from llmops.plan.monitoring import add_monitoring

        text = add_monitoring(text, prep.plan, fmt)
    sys.stdout.write(text)


def _render_runtime(
    fmt: str, runtime: str | None, *, monitoring: bool, nodes: str | None
) -> str | None:
    """The runtime a ``--format`` implies when ``--runtime`` is not given (native for native,
    docker for shell/compose/k8s), after refusing an unknown format and a misplaced
    ``--monitoring``."""
    from llmops.plan.render import check_format

    check_format(fmt)
    if monitoring and (fmt not in ("compose", "k8s") or nodes):
        from llmops.errors import UsageError

        raise UsageError(
            "--monitoring adds to one host's compose or k8s render", "add --format compose"
        )
    if fmt == "native" and runtime is None:
        return "native"
    if fmt in ("shell", "compose", "k8s") and runtime is None:
        return "docker"
    return runtime


def up(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Catalog name (see `llmops models`) or HF repo id.")],
    engine: EngineOpt = None,
    quant: QuantOpt = None,
    context: ContextOpt = None,
    gpus: GpusOpt = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            min=1,
            max=65535,
            help="Host port (default: engine default, or the next free one).",
        ),
    ] = None,
    name: NameOpt = None,
    runtime: RuntimeOpt = None,
    image: ImageOpt = None,
    repo: RepoOpt = None,
    rope_factor: RopeFactorOpt = None,
    rope_kind: RopeKindOpt = None,
    concurrency: ConcurrencyOpt = 1,
    kv_dtype: KvDtypeOpt = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and check, print the plan, start nothing.")
    ] = False,
    no_api_key: Annotated[
        bool, typer.Option("--no-api-key", help="Serve without an API key (not recommended).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start even when the fit says it does not fit.")
    ] = False,
    timeout: Annotated[
        int, typer.Option("--timeout", min=1, max=604800, help="Seconds to wait until it serves.")
    ] = 1800,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Return once started, without waiting until it serves."),
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Start a model server (TGI, vLLM, llama.cpp or the torch backend) and wait until it serves.

    Extra engine arguments go after `--`, e.g. `llmops up mistral7b -- --max-num-seqs 64`.
    """
    from llmops.run.launching import prepare

    facts = _facts(None, None)
    prep = prepare(
        _request(
            ctx,
            facts,
            model=model,
            engine=engine,
            quant=quant,
            context=context,
            gpus=gpus,
            port=port,
            name=name,
            runtime=runtime,
            image=image,
            concurrency=concurrency,
            kv_dtype=kv_dtype,
            api_key=not no_api_key,
            force=force,
            repo=repo,
            rope_factor=rope_factor,
            rope_kind=rope_kind,
        ),
        facts,
        stage="up",
        docker=lambda: deps.docker_runtime(required=True),
    )
    _tell(prep)
    if prep.already_running:
        output.info(f"{prep.plan.name} is already running; nothing changed (`llmops ps`)")
        if json_:
            output.emit_json({"deployment": prep.plan.name, "changed": False})
        return
    if dry_run:
        _print_plan(prep, json_)
        return
    _print_ready(prep, _start(prep, timeout, wait=not no_wait, quiet=json_), json_)


def _start(prep: "Prepared", timeout: int, *, wait: bool, quiet: bool) -> Any:
    """Start the prepared deployment showing its phases; on a failed start-up, the engine's
    last log lines go to stderr before the error."""
    from llmops.run.launching import start
    from llmops.run.up import StartupFailed, describe_failure

    try:
        with _phases(prep.plan.name, quiet=quiet) as on_phase:
            return start(
                prep,
                timeout_s=timeout,
                wait=wait,
                on_phase=on_phase,
                docker=lambda: deps.docker_runtime(required=True),
            )
    except StartupFailed as err:
        tail = describe_failure(err)
        if tail:
            sys.stderr.write(tail + "\n")
        raise


def _tell(prep: "Prepared") -> None:
    """Warnings as `warning:`, the plan's informational notes as `note:` (both on stderr)."""
    for text in prep.warnings:
        if text in prep.plan.notes:
            output.info(f"note: {text}")
        else:
            output.warn(text)


@contextlib.contextmanager
def _phases(name: str, quiet: bool) -> Iterator[Callable[[str], None]]:
    """Show the start-up phase: a spinner on a terminal, one line per phase otherwise."""
    if quiet:
        yield lambda _text: None
        return
    err = output.stderr()
    if not err.is_terminal:
        yield lambda text: output.info(f"… {text}")
        return
    with err.status(f"{name}: starting") as status:

        def update(text: str) -> None:
            status.update(f"{name}: {text}")

        yield update


def _print_plan(prep: "Prepared", json_: bool) -> None:
    from llmops.plan.render import plan_json, render
    from llmops.resources import templates_dir

    if json_:
        output.emit_json({"dry_run": True, "plan": plan_json(prep.plan), "fit": prep.fit_summary})
        return
    fmt = "shell" if prep.plan.runtime == "docker" else "native"
    output.info(f"dry run: {prep.fit_line}")
    sys.stdout.write(render(prep.plan, fmt, templates=templates_dir(), data_dir=str(prep.data_dir)))


def _print_ready(prep: "Prepared", result: Any, json_: bool) -> None:
    plan: LaunchPlan = prep.plan
    key = prep.api_key
    if json_:
        output.emit_json(
            {
                "deployment": plan.name,
                "engine": plan.engine,
                "runtime": plan.runtime,
                "ready": result.ready,
                "endpoint": plan.endpoint,
                "served_model_name": plan.served_model_name,
                "api_key_file": str(prep.secrets_file) if key else None,
                "elapsed_s": round(result.elapsed_s, 1),
            }
        )
        return
    con = output.stdout(soft_wrap=True)
    state = "ready" if result.ready else "started (not waiting)"
    con.print(
        f"[bold green]{output.esc(plan.name)}[/] {state} in {result.elapsed_s:.0f} s: "
        f"{output.esc(plan.model)} "
        f"({plan.quant}) on {plan.engine}, {plan.runtime}",
        highlight=False,
    )
    con.print(f"endpoint:  {plan.endpoint}", highlight=False)
    if key:
        con.print(
            f"api key:   {key}   (shown once; stored 0600 in {prep.secrets_file})", highlight=False
        )
    auth = f' -H "Authorization: Bearer {key}"' if key else ""
    con.print("\ncurl:", highlight=False)
    con.print(
        f"  curl {plan.endpoint}/chat/completions{auth} -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"model": "{plan.served_model_name}", "messages": [{{"role": "user", '
        f'"content": "Hello"}}]}}\'',
        highlight=False,
        markup=False,
    )
    con.print("\npython:", highlight=False)
    con.print(
        "  from openai import OpenAI\n"
        f'  client = OpenAI(base_url="{plan.endpoint}", api_key="{key or "none"}")\n'
        f'  r = client.chat.completions.create(model="{plan.served_model_name}",\n'
        '      messages=[{"role": "user", "content": "Hello"}])\n'
        "  print(r.choices[0].message.content)",
        highlight=False,
        markup=False,
    )
    con.print(
        f"\nstop it with `llmops down {plan.name}`; logs: `llmops logs {plan.name} -f`",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    settings = {"allow_extra_args": True, "ignore_unknown_options": False}
    app.command("up", context_settings=settings)(up)
    app.command("render", context_settings=settings)(render)
