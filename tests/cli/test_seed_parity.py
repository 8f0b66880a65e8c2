"""Seeds parity: every engine launch line in the seeds can be produced by an `llmops render`
command; this test goes flag by flag, and every difference is listed with its reason.

Seed 004 (h2oGPT's TGI/vLLM lines) and seed 001 (MythoMax GPTQ with rope factor 2.6).
"""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from llmops.cli import app

# Differences we make on purpose, by seed flag (docker option or engine flag).
ON_PURPOSE = {
    "image": "a current, pinned TGI image (3.3.7) instead of 0.8.x/latest",
    "-e CUDA_VISIBLE_DEVICES": "`--gpus device=…` already selects the GPUs inside the container",
    "-e TRANSFORMERS_CACHE": "TGI >= 2.3 caches under HF_HOME=/data (/data/hub); no extra cache dir",
    "-e HUGGING_FACE_HUB_TOKEN": "the token is passed as HF_TOKEN through the 0600 --env-file",
    "-v": "the HF cache root is mounted at /data (TGI's /data/hub layout), not the old hub dir",
    "--shm-size": "1 GiB for one GPU (TGI's docs), 2 GiB per shard when sharded",
    "--net": "a published port instead of host networking",
    "--max-input-length": "the current name is --max-input-tokens, set to context - 1",
    "--sharded": "--num-shard N says the same thing explicitly",
    "--trust-remote-code": "Falcon and GPT-NeoX run on TGI's native code now; only recipes that "
    "need remote code (MPT) get it",
    "-d": "`docker run -d` is what llmops renders too (always detached, with a restart policy)",
    "--max-batch-prefill-tokens": "kept >= max input tokens, which TGI requires",
    "--gpus": "the same GPUs, always as an explicit device list",
    "--quantize": "a pre-quantized GPTQ/AWQ repo: TGI reads its quantization_config itself "
    "(server/text_generation_server/models/__init__.py get_model at v3.3.5), and a flag that "
    "contradicts it is refused",
}

SEEDS = [
    (
        "004 falcon-7b",
        "docker run --gpus device=0 --shm-size 2g -e CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES "
        '-e TRANSFORMERS_CACHE="/.cache/" -p 6112:80 -v $HOME/.cache:/.cache/ -v '
        "$HOME/.cache/huggingface/hub/:/data  ghcr.io/huggingface/text-generation-inference:0.8.2 "
        "--model-id h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v2 --max-input-length 2048 "
        "--max-total-tokens 4096 --sharded=false --disable-custom-kernels --trust-remote-code "
        "--max-stop-sequences=6",
        "falcon-7b --engine tgi --hw 1x24GB --gpus 0 --context 4096 --port 6112 "
        "--repo h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v2 -- --disable-custom-kernels "
        "--max-stop-sequences 6",
    ),
    (
        "004 pythia-12b on 4 shards",
        "docker run --gpus all --shm-size 2g -e CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES "
        '-e TRANSFORMERS_CACHE="/.cache/" -p 6112:80 -v $HOME/.cache:/.cache/ -v '
        "$HOME/.cache/huggingface/hub/:/data  ghcr.io/huggingface/text-generation-inference:0.8.2 "
        "--model-id h2oai/h2ogpt-oasst1-512-12b --max-input-length 2048 --max-total-tokens 4096 "
        "--sharded=true --num-shard=4 --disable-custom-kernels --trust-remote-code "
        "--max-stop-sequences=6",
        "pythia-12b --engine tgi --hw 4x24GB --gpus 0,1,2,3 --context 4096 --port 6112 "
        "-- --disable-custom-kernels --max-stop-sequences 6",
    ),
    (
        "004 gpt-neox-20b on 4 shards",
        "docker run --gpus all --shm-size 2g -e CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES "
        '-e TRANSFORMERS_CACHE="/.cache/" -p 6112:80 -v $HOME/.cache:/.cache/ -v '
        "$HOME/.cache/huggingface/hub/:/data  ghcr.io/huggingface/text-generation-inference:0.8.2 "
        "--model-id h2oai/h2ogpt-oasst1-512-20b --max-input-length 2048 --max-total-tokens 4096 "
        "--sharded=true --num-shard=4 --disable-custom-kernels --trust-remote-code "
        "--max-stop-sequences=6",
        "gpt-neox-20b --engine tgi --hw 4x24GB --gpus 0,1,2,3 --context 4096 --port 6112 "
        "--repo h2oai/h2ogpt-oasst1-512-20b -- --disable-custom-kernels --max-stop-sequences 6",
    ),
    (
        "004 falcon-40b on 2 shards",
        "docker run -d --gpus all --shm-size 1g -e CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES "
        '-e HUGGING_FACE_HUB_TOKEN=$HUGGING_FACE_HUB_TOKEN -e TRANSFORMERS_CACHE="/.cache/" '
        "-p 6112:80 -v $HOME/.cache:/.cache/ -v $HOME/.cache/huggingface/hub/:/data "
        "ghcr.io/huggingface/text-generation-inference:0.8.2 --model-id tiiuae/falcon-40b-instruct "
        "--max-input-length 2048 --max-total-tokens 4096 --max-stop-sequences 6 --sharded true "
        "--num-shard 2",
        "falcon-40b --engine tgi --hw 2x80GB --gpus 0,1 --context 4096 --port 6112 "
        "-- --max-stop-sequences 6",
    ),
    (
        "004 mpt-30b on GPUs 0 and 3",
        "docker run -d --gpus '\"device=0,3\"' --shm-size 2g -e "
        'HUGGING_FACE_HUB_TOKEN=$HUGGING_FACE_HUB_TOKEN -e TRANSFORMERS_CACHE="/.cache/" '
        "-p 6112:80 -v $HOME/.cache:/.cache/ -v $HOME/.cache/huggingface/hub/:/data "
        "ghcr.io/huggingface/text-generation-inference:0.9.1 --model-id mosaicml/mpt-30b-chat "
        "--max-batch-prefill-tokens=2048 --max-input-length 2048 --max-total-tokens 4096 "
        "--max-stop-sequences 6 --trust-remote-code",
        "mpt-30b --engine tgi --hw 4x48GB --gpus 0,3 --context 4096 --port 6112 "
        "-- --max-stop-sequences 6",
    ),
    (
        "004 vicuna-33b on 2 shards",
        "docker run -d --gpus all --shm-size 2g -e CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES "
        '-e TRANSFORMERS_CACHE="/.cache/" -p 6112:80 -v $HOME/.cache:/.cache/ -v '
        "$HOME/.cache/huggingface/hub/:/data  ghcr.io/huggingface/text-generation-inference:0.8.2 "
        "--model-id lmsys/vicuna-33b-v1.3 --max-input-length 2048 --max-total-tokens 4096 "
        "--sharded true --num-shard 2",
        "vicuna-33b --engine tgi --hw 2x48GB --gpus 0,1 --context 4096 --port 6112",
    ),
    (
        "001 MythoMax GPTQ, rope factor 2.6",
        "docker run --net=host --gpus all --shm-size 14g -v /home/user/data:/data "
        "ghcr.io/huggingface/text-generation-inference:latest --model-id "
        "TheBloke/MythoMax-L2-13B-GPTQ --max-input-length 8184 --max-total-tokens 8192 "
        "--max-batch-prefill-tokens 8184 --rope-factor 2.6 --rope-scaling dynamic --quantize gptq",
        "mythomax-l2-13b --engine tgi --quant gptq --hw 1x24GB --gpus 0 --context 8192 "
        "--rope-scaling dynamic --rope-factor 2.6",
    ),
]


def _split_docker(
    line: str,
) -> tuple[list[tuple[str, str | None]], str, list[tuple[str, str | None]]]:
    """docker options, image, engine args; ``--a=b`` and ``--a b`` both become (--a, b)."""
    words = shlex.split(line.replace("\\\n", " "), comments=True)
    assert words[:2] == ["docker", "run"], line
    words = words[2:]
    takes_value = {
        "--gpus",
        "--shm-size",
        "-e",
        "-p",
        "-v",
        "--name",
        "--label",
        "--restart",
        "--log-opt",
        "--env-file",
        "--entrypoint",
        "--net",
    }
    opts: list[tuple[str, str | None]] = []
    i = 0
    while words[i].startswith("-"):
        w = words[i]
        if "=" in w and w.split("=")[0] in takes_value:
            k, v = w.split("=", 1)
            opts.append((k, v))
            i += 1
        elif w in takes_value:
            opts.append((w, words[i + 1]))
            i += 2
        else:
            opts.append((w, None))
            i += 1
    image = words[i]
    return opts, image, _pairs(words[i + 1 :])


def _pairs(words: list[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        w = words[i]
        if "=" in w and w.startswith("--"):
            k, v = w.split("=", 1)
            out.append((k, v))
            i += 1
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            out.append((w, words[i + 1]))
            i += 2
        else:
            out.append((w, None))
            i += 1
    return out


def _env_name(v: str | None) -> str:
    return (v or "").split("=")[0]


@pytest.mark.parametrize(("title", "seed", "args"), SEEDS, ids=[s[0] for s in SEEDS])
def test_seed_line_is_reproduced_flag_by_flag(title: str, seed: str, args: str) -> None:
    r = CliRunner().invoke(app, ["render", *shlex.split(args)])
    assert r.exit_code == 0, r.output
    s_opts, s_image, s_args = _split_docker(seed)
    o_opts, o_image, o_args = _split_docker(r.stdout)
    ours = dict(o_args)
    o_docker = {(k, v) for k, v in o_opts}
    explained: list[str] = []
    # engine flags: equal, or a difference on purpose
    for k, v in s_args:
        if k in ours and (ours[k] == v or (v is None and ours[k] is None)):
            continue
        if k == "--num-shard" and ours.get("--num-shard") == v:
            continue
        assert k in ON_PURPOSE, f"{title}: seed flag {k} {v} not reproduced (ours: {ours.get(k)})"
        explained.append(k)
    # docker options
    for k, v in s_opts:
        if k == "-p":
            assert ("-p", f"0.0.0.0:{v}") in o_docker, f"{title}: port {v}"
            continue
        if k == "--gpus":
            want = "all" if v == "all" else v.replace('"', "").replace("device=", "")
            (ours_gpus,) = [ov for ok, ov in o_opts if ok == "--gpus"]
            got = ours_gpus.replace('"', "").replace("device=", "")
            if want != "all":
                assert got == want, f"{title}: GPUs {got} != {want}"
            continue
        key = f"-e {_env_name(v)}" if k == "-e" else k
        if (k, v) in o_docker:
            continue
        assert key in ON_PURPOSE, f"{title}: seed docker option {k} {v} not reproduced"
    assert s_image.split(":")[0] == o_image.split(":")[0]
    # what we add on purpose: explicit bind address, port, and an API key
    assert ours["--hostname"] == "0.0.0.0" and ours["--port"] == "80"
    assert "--env-file" in {k for k, _ in o_opts}


def test_vllm_65b_tensor_parallel_line() -> None:
    """Seed 004: python -m vllm.entrypoints.openai.api_server ... --tensor-parallel-size=2."""
    seed = (
        "--port=5000 --host=0.0.0.0 --model h2oai/h2ogpt-research-oasst1-llama-65b "
        "--tokenizer=hf-internal-testing/llama-tokenizer --tensor-parallel-size=2 --seed 1234"
    )
    r = CliRunner().invoke(
        app,
        [
            "render",
            "llama-65b",
            "--engine",
            "vllm",
            "--format",
            "native",
            "--hw",
            "2x80GB",
            "--gpus",
            "0,1",
            "--port",
            "5000",
            "--context",
            "2048",
            "--repo",
            "h2oai/h2ogpt-research-oasst1-llama-65b",
            "--",
            "--tokenizer",
            "hf-internal-testing/llama-tokenizer",
            "--seed",
            "1234",
        ],
    )
    assert r.exit_code == 0, r.output
    exec_line = r.stdout[r.stdout.index("exec ") :].replace("\\\n", " ")
    words = shlex.split(exec_line)[1:]
    assert words[:3] == [
        "vllm",
        "serve",
        "h2oai/h2ogpt-research-oasst1-llama-65b",
    ]  # `--model` → positional
    ours = dict(_pairs(words[3:]))
    for k, v in _pairs(shlex.split(seed)):
        if k == "--model":
            continue
        assert ours.get(k) == v, f"{k}: seed {v}, ours {ours.get(k)}"
    assert "VLLM_API_KEY" in r.stdout  # and an API key, on purpose
