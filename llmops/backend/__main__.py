"""``python -m llmops.backend MODEL``: the server without the llmops CLI (used in images).

Dependency-light on purpose (argparse, no typer/rich), so an image needs only the backend extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmops.backend.config import (
    DEVICES,
    KV_CACHES,
    PRECISIONS,
    ServerConfig,
    check_address,
    check_precision,
    read_api_key,
)
from llmops.errors import LlmopsError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m llmops.backend",
        description="Serve a model with OpenAI- and TGI-compatible routes.",
    )
    p.add_argument("model", help="smollm2, a Hugging Face repo id, a local directory or a .gguf")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    p.add_argument("--api-key-file", type=Path, default=None, help="else $LLMOPS_API_KEY")
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256, help="default max_tokens per request")
    p.add_argument("--context-length", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--kv-cache",
        default="auto",
        choices=KV_CACHES,
        help="slots (a row per request), padded (transformers' cache), auto: slots if it checks",
    )
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    check_address(args.host, args.port)
    import torch

    precision, device = check_precision(
        args.precision, args.device, cuda_available=torch.cuda.is_available()
    )
    return ServerConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        precision=precision,
        device=device,
        api_key=read_api_key(args.api_key_file),
        served_model_name=args.served_model_name,
        max_batch_size=args.max_batch_size,
        max_queue=args.max_queue,
        default_max_tokens=args.max_tokens,
        context_length=args.context_length,
        threads=args.threads,
        kv_cache=args.kv_cache,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # images run `serve MODEL ...`, like the llmops CLI
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except LlmopsError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    from llmops.backend.server import run_server

    return run_server(config)


if __name__ == "__main__":
    sys.exit(main())
