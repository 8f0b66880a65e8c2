"""`llmops models` (the catalog) and `llmops models show NAME` (one model, all its numbers)."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import output

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from llmops.plan.model import ModelSpec

GIB = 1 << 30

models_app = typer.Typer(
    name="models",
    help="The model catalog: architecture numbers, formats, sizes.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def _summary(m: "ModelSpec") -> dict[str, Any]:
    from llmops.plan.artifacts import model_quants
    from llmops.plan.quant import active_param_count, param_count

    a = m.arch
    return {
        "name": m.name,
        "display_name": m.label,
        "aliases": list(m.aliases),
        "params": param_count(a),
        "active_params": active_param_count(a),
        "released": m.released or None,
        "tier": m.tier,
        "attention": _attention(m),
        "checkpoint_quant": a.checkpoint_quant,
        "layers": a.layers,
        "hidden_size": a.hidden_size,
        "attention_heads": a.attention_heads,
        "kv_heads": a.kv_heads,
        "experts": a.experts,
        "experts_active": a.experts_active,
        "trained_context": a.trained_context,
        "quants": list(model_quants(m)),
        "tasks": list(m.tasks),
        "gated": m.gated,
    }


def _attention(m: "ModelSpec") -> str:
    """The attention layout in a word: mla, sliding (all layers), local+global, or full."""
    a = m.arch
    if a.mla is not None:
        return "mla"
    if not a.sliding_window:
        return "full"
    n = sum(a.is_local(i) for i in range(a.layers))
    return "sliding" if n == a.layers else f"local+global ({n}/{a.layers} local)"


def _detail(m: "ModelSpec") -> dict[str, Any]:
    from dataclasses import asdict

    from llmops.plan.artifacts import served
    from llmops.plan.memory import kv_bytes_per_token
    from llmops.plan.quant import quant_spec, weight_inventory

    f = m.formats
    weights: dict[str, int | None] = {}
    for q in dict.fromkeys(c for _, c in served(m)):
        if q == "gguf":
            continue
        group = f.gptq_group_size if q == "gptq" else f.awq_group_size
        weights[q] = weight_inventory(m.arch, q, group).total_bytes
        quant_spec(q)
    return {
        **_summary(m),
        "artifacts": _artifacts(m),
        "architecture": asdict(m.arch),
        "formats": asdict(f),
        "weights_bytes": weights,
        "kv_bytes_per_token_fp16": kv_bytes_per_token(m, 2.0),
        "mmlu": m.mmlu,
        "notes": m.notes,
        "source": m.source,
    }


def _artifacts(m: "ModelSpec") -> dict[str, dict[str, Any]]:
    """What each quant word and name becomes on each engine: format, repo/file, size."""
    from llmops.plan.artifacts import WORDS, artifact_for, concrete_quants, served
    from llmops.plan.engines import ENGINES
    from llmops.plan.quant import weight_inventory

    out: dict[str, dict[str, Any]] = {}
    for e in ENGINES:
        rows: dict[str, Any] = {}
        for w in dict.fromkeys([*WORDS, *(c for eng, c in served(m) if eng == e)]):
            if not concrete_quants(m, w, e):
                continue
            a = artifact_for(m, w, e)
            size = a.size_bytes
            if size is None and a.format != "bundled":
                size = weight_inventory(m.arch, a.quant).total_bytes
            rows[w] = {
                "format": a.label,
                "repo": a.repo,
                "file": a.file,
                "gated": a.gated,
                "size_bytes": size,
                "size_listed": a.size_bytes is not None,
            }
        if rows:
            out[e] = rows
    return out


@models_app.callback()
def models(
    ctx: typer.Context,
    task: Annotated[
        str | None, typer.Option("--task", help="Only models for chat, code or text.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """List the catalog (name, size, attention shape, context, quants, gating)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from llmops.catalog.recipes import catalog

    ms = [m for m in catalog().models if task is None or task in m.tasks]
    ms.sort(key=lambda m: (m.family, m.name))
    rows = [_summary(m) for m in ms]
    if json_:
        output.emit_json({"models": rows})
        return
    t = Table()
    cols = ("name", "released", "tier", "params", "layers", "heads/kv", "attention", "context")
    for col in (*cols, "quants", "tasks", "gated"):
        t.add_column(col, justify="right" if col in ("params", "layers", "context") else "left")
    for r in rows:
        moe = f" ({r['experts_active']}/{r['experts']} MoE)" if r["experts"] else ""
        t.add_row(
            r["name"],
            (r["released"] or "")[:7],
            str(r["tier"] or ""),
            f"{r['params'] / 1e9:.2f}B{moe}",
            str(r["layers"]),
            f"{r['attention_heads']}/{r['kv_heads']}",
            r["attention"].split(" (")[0],
            str(r["trained_context"]),
            ", ".join(r["quants"]),
            ", ".join(r["tasks"]),
            "yes" if r["gated"] else "",
        )
    output.stdout().print(t)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Catalog name/alias, Hub repo id, or a .gguf path.")],
    offline: Annotated[bool, typer.Option("--offline", help="Use only cached Hub data.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Show one model: config numbers, repos per format, GGUF files, weight bytes per quant."""
    from llmops.catalog.resolve import resolve

    res = resolve(name, offline=offline)
    d = _detail(res.spec)
    if res.inventory is not None:
        d["measured_weights_bytes"] = {res.native_quant or "?": res.inventory.total_bytes}
        d["measured_from"] = res.inventory.source
    if json_:
        output.emit_json({"model": d})
        return
    _print_detail(res.spec, d)


def _print_detail(m: "ModelSpec", d: dict[str, Any]) -> None:
    con = output.stdout()
    _print_arch(con, m, d)
    con.print(_formats_table(m, d))
    con.print(_quant_words_table(d))
    if "measured_weights_bytes" in d:
        for q, b in d["measured_weights_bytes"].items():
            con.print(f"measured ({d['measured_from']}): {q} {b / GIB:.3f} GiB", highlight=False)
    if m.notes:
        con.print(m.notes, highlight=False, markup=False)


def _print_arch(con: "Console", m: "ModelSpec", d: dict[str, Any]) -> None:
    """The model's name, size, architecture numbers, context, gating and tasks."""
    a = m.arch
    con.print(f"[bold]{m.label}[/] ({m.name})  {d['params']:,} parameters", highlight=False)
    if m.aliases:
        con.print("aliases: " + ", ".join(m.aliases), highlight=False)
    rope = (
        f", rope scaling {a.rope_scaling.kind} x{a.rope_scaling.factor:g}" if a.rope_scaling else ""
    )
    con.print(
        f"layers {a.layers}, hidden {a.hidden_size}, heads {a.attention_heads}, KV heads "
        f"{a.kv_heads}, head_dim {a.head_dim}, intermediate {a.intermediate_size}, vocab "
        f"{a.vocab_size}, tied embeddings {'yes' if a.tied_embeddings else 'no'}"
        + (f", experts {a.experts_active}/{a.experts}" if a.is_moe else ""),
        highlight=False,
    )
    theta = f"rope theta {a.rope_theta:g}" if a.rope_theta else a.position
    con.print(
        f"trained context {a.trained_context}, {theta}{rope}; KV cache "
        f"{d['kv_bytes_per_token_fp16'] / 1024:g} KiB/token at fp16"
        + (
            f"; sliding window {a.sliding_window} on {a.sliding_window_layers} layers"
            if a.sliding_window
            else ""
        ),
        highlight=False,
    )
    extra = []
    if a.mla is not None:
        extra.append(
            f"MLA: KV latent {a.mla.kv_lora_rank} + rope {a.mla.qk_rope_head_dim} per token per "
            "layer (all heads share it)"
        )
    if a.shared_expert_intermediate:
        extra.append(f"shared expert {a.shared_expert_intermediate}")
    if a.dense_layers:
        extra.append(f"{len(a.dense_layers)} dense layers")
    if a.attention_sinks:
        extra.append("attention sinks")
    if a.checkpoint_quant:
        extra.append(f"checkpoint weights {a.checkpoint_quant.upper()} (served as published)")
    if m.released or m.tier:
        extra.append(f"released {m.released or '?'}, quality tier {m.tier or '?'}")
    if extra:
        con.print("; ".join(extra), highlight=False)
    con.print(
        f"gated: {'yes (accept the licence, set HF_TOKEN)' if m.gated else 'no'}; tasks: {', '.join(m.tasks)}",
        highlight=False,
    )


def _formats_table(m: "ModelSpec", d: dict[str, Any]) -> "Table":
    """Each quant: where its weights come from and their size."""
    from rich.table import Table

    t = Table(title="formats")
    for col in ("quant", "repo / file", "weights GiB", "file GB"):
        t.add_column(col, justify="right" if "GB" in col or "GiB" in col else "left")
    f = m.formats
    for q, b in d["weights_bytes"].items():
        repo: str | None
        file_gb = ""
        if q in ("q4_k_m", "q5_k_m", "q8_0"):
            gf = f.gguf_file(q)
            repo = f"{f.gguf}/{gf.file}" if gf else None
            file_gb = f"{gf.size_bytes / 1e9:.2f}" if gf and gf.size_bytes else ""
        elif q in ("gptq", "awq"):
            repo = f.gptq if q == "gptq" else f.awq
        elif q == "fp8" and f.fp8:
            repo = f.fp8
        else:
            repo = f"{f.safetensors} ({'on the fly' if q in ('8bit', '4bit', 'fp8', 'fp32') else 'as published'})"
        t.add_row(q, repo or "", f"{b / GIB:.2f}" if b else "", file_gb)
    return t


def _quant_words_table(d: dict[str, Any]) -> "Table":
    """What 4bit/8bit/fp16/bf16 serve on each engine."""
    from rich.table import Table

    w = Table(title="what a quant word serves, per engine (sizes: listed file, else computed)")
    w.add_column("quant")
    engines = list(d["artifacts"])
    for e in engines:
        w.add_column(e)
    for word in ("4bit", "8bit", "fp16", "bf16"):
        cells = []
        for e in engines:
            r = d["artifacts"][e].get(word)
            cells.append(f"{r['format']} ({r['size_bytes'] / 1e9:.1f} GB)" if r else "-")
        w.add_row(word, *cells)
    return w


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
