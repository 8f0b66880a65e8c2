"""The estimator's per-GPU figure against what a real forward pass allocates, per catalog family.

    .venv/bin/python benchmarks/gpu_estimator.py [--context 8192] [--layers 4] [--models ...]
    .venv/bin/python benchmarks/gpu_estimator.py --device cpu --tiny     # smoke run, no GPU

For each model: its catalog config.json with ``num_hidden_layers`` cut to ``--layers`` (the
layer layout kept: local/global pattern, dense/MoE layers, MLA), built by transformers with
random weights on the device (``from_config``, bf16; checkpoint quantization dropped, so
gpt-oss's experts are bf16 here), one prefill of ``--context`` tokens and 16 decode steps with
the cache on. Printed per model: the estimator's weights, KV and activations for the same cut
model on the torch engine, beside ``torch.cuda.max_memory_allocated`` (weights + cache +
transients; the CUDA context is not in it, so the estimator's fixed overhead is left out) and
NVML's used memory, with the error in %; then the estimator's total for the full model on one
GPU of the device's size. Finishes in under 5 minutes on one H200 with the defaults.
``--tiny`` narrows the widths as well (benchmarks/estimator_accuracy.py's TINY) for a CPU run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MIB = 1 << 20
DEFAULT_MODELS = [
    "qwen3-8b",
    "qwen3-30b-a3b",
    "gemma3-27b",
    "gpt-oss-20b",
    "deepseek-v3",
    "llama4-scout",
]


def cut_config(name: str, layers: int, tiny: bool) -> dict[str, Any]:
    """The recipe's config.json (decoder part), cut to ``layers`` layers."""
    import yaml
    from estimator_accuracy import TINY

    from llmops.catalog.recipes import load_catalog
    from llmops.resources import recipes_dir

    spec = load_catalog().get(name)
    raw = yaml.safe_load((recipes_dir() / Path(spec.source).name).read_text())
    cfg = dict(raw["models"][spec.name]["config"])
    mt = cfg["model_type"]
    if "text_config" in cfg:
        mt = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": "mistral"}[mt]
        cfg = {**cfg["text_config"], "torch_dtype": cfg.get("torch_dtype", "bfloat16")}
    cfg["model_type"] = mt
    if tiny and mt in TINY:
        cfg.update(TINY[mt])
    cfg["num_hidden_layers"] = layers
    cfg.pop("quantization_config", None)
    if "layer_types" in cfg:
        cfg["layer_types"] = list(cfg["layer_types"])[:layers]
    if mt == "gpt_oss" and "layer_types" not in cfg:
        cfg["layer_types"] = [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)
        ]
    if mt == "deepseek_v3":
        cfg["num_nextn_predict_layers"] = 0
        cfg["first_k_dense_replace"] = min(int(cfg.get("first_k_dense_replace", 0)), layers - 1)
    if mt == "qwen3_moe" or mt == "qwen3":
        cfg["max_window_layers"] = layers
    return cfg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--decode", type=int, default=16)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="narrow widths too (a CPU smoke run)")
    args = ap.parse_args()

    import torch
    import transformers

    from llmops.catalog.config import architecture_from_config
    from llmops.catalog.recipes import load_catalog
    from llmops.plan.hardware import GIB, Device
    from llmops.plan.memory import FitOptions, estimate
    from llmops.plan.model import ModelSpec

    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: use --device cpu --tiny for a smoke run", file=sys.stderr)
        return 1
    nvml = None
    if dev == "cuda":
        import pynvml

        pynvml.nvmlInit()
        nvml = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        props = torch.cuda.get_device_properties(0)
        cap = props.total_memory
        print(
            f"device: {props.name}, {cap / GIB:.1f} GiB; torch {torch.__version__}; "
            f"transformers {transformers.__version__}"
        )
    else:
        cap = 64 * GIB
        print(f"device: CPU; torch {torch.__version__}; transformers {transformers.__version__}")
    print(
        f"cut to {args.layers} layers, prefill {args.context} tokens + {args.decode} decode steps\n"
    )
    hdr = (
        f"{'model':<16} {'weights est/real GiB':>22} {'KV est GiB':>11} {'act est GiB':>12} "
        f"{'est GiB':>8} {'peak GiB':>9} {'err':>7} {'NVML GiB':>9} {'full model est GiB':>19}"
    )
    print(hdr)
    print("-" * len(hdr))
    cat = load_catalog()
    for name in args.models:
        t0 = time.monotonic()
        cfg = cut_config(name, args.layers, args.tiny)
        arch = architecture_from_config(cfg)
        spec = ModelSpec(name=name, arch=arch)
        device = (Device("gpu", 0, dev, cap),) if dev == "cuda" else ()
        host = Device("cpu", None, "cpu", cap) if dev == "cpu" else None
        opts = FitOptions("bf16", "torch", args.context, enforce_eager=True)
        r = estimate(spec, device, host, opts, with_suggestions=False)
        u = r.per_gpu[0]
        full = estimate(
            cat.get(name),
            device,
            host,
            FitOptions("bf16", "torch", args.context),
            with_suggestions=False,
        ).per_gpu[0]
        if dev == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        hf = transformers.AutoConfig.for_model(**cfg)
        with torch.device(dev):
            model = transformers.AutoModelForCausalLM.from_config(hf, dtype=torch.bfloat16)
        model.eval()
        real_w = sum(p.numel() * p.element_size() for p in model.parameters())
        ids = torch.randint(0, arch.vocab_size, (1, args.context), device=dev)
        with torch.no_grad():
            out = model(ids, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            for _ in range(args.decode):
                out = model(nxt, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
        if dev == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            used = pynvml.nvmlDeviceGetMemoryInfo(nvml).used if nvml else 0
        else:
            peak, used = real_w, 0
        est = u.weights_bytes + u.kv_cache_bytes + u.activation_bytes
        err = (est - peak) / peak * 100
        print(
            f"{name:<16} {u.weights_bytes / GIB:>10.2f}/{real_w / GIB:<11.2f} "
            f"{u.kv_cache_bytes / GIB:>11.2f} {u.activation_bytes / GIB:>12.2f} "
            f"{est / GIB:>8.2f} {peak / GIB:>9.2f} {err:>+6.1f}% {used / GIB:>9.2f} "
            f"{full.total_bytes / GIB:>19.2f}   ({time.monotonic() - t0:.0f} s)"
        )
        del model, out, cache
        gc.collect()
        if dev == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
