"""Any Hugging Face repo: config and exact per-dtype parameter counts, cached for offline use.

``huggingface_hub`` is imported only inside :class:`HfHubClient` (never at CLI start-up).
Parameter counts come from the safetensors headers the Hub serves
(``HfApi.get_safetensors_metadata``: a few kB per shard, no weight download), so a GPTQ/AWQ
repo's int32/fp16 tensors give its exact byte size.

Results are cached as JSON under ``$LLMOPS_HOME/cache/hub`` (default ``~/.cache/llmops/hub``);
offline (``HF_HUB_OFFLINE=1`` or no network) the cache answers, and without a cache entry the
error names the model. Tests inject a plain fake client (``HubClient`` protocol).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmops.catalog.config import ConfigFieldError, architecture_from_config, checkpoint_dtype
from llmops.errors import LlmopsError
from llmops.plan.engines.base import ModelArtifact
from llmops.plan.model import Formats, ModelSpec, WeightInventory

CACHE_VERSION = 1
DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
_LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
_HEAD = ("lm_head.weight", "embed_out.weight")


class HubError(LlmopsError):
    """The Hub could not answer for a model and nothing usable is cached."""


class DiskSpaceError(LlmopsError):
    """Not enough free disk for a download."""


class HubClient(Protocol):
    """What llmops needs from the Hub (the real one is :class:`HfHubClient`)."""

    def config(self, repo: str) -> dict[str, Any]: ...

    def tensors(self, repo: str) -> dict[str, tuple[str, tuple[int, ...]]]: ...

    def file_sizes(self, repo: str) -> dict[str, int]: ...

    def download(
        self, repo: str, files: list[str], cache_dir: Path, progress: Callable[[str, int], None]
    ) -> Path: ...


class HubUnreachable(Exception):
    """Raised by clients when the Hub cannot be reached (offline, DNS, timeout)."""


class HubNotFound(Exception):
    """Raised by clients when the repo/file does not exist or is gated."""


# ----------------------------------------------------------------------------- the real client


def _short(e: BaseException) -> str:
    """One short clause for a network error (requests' messages run to several lines)."""
    text = str(e)
    if "NameResolution" in text or "Failed to resolve" in text:
        return "huggingface.co does not resolve (no network?)"
    if "Max retries" in text or "timed out" in text.lower():
        return "huggingface.co did not answer (no network?)"
    first = text.splitlines()[0] if text else type(e).__name__
    return first[:160]


class HfHubClient:
    """``huggingface_hub`` behind the HubClient protocol; its exceptions become ours."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def _call(self, repo: str, fn: Callable[[], Any]) -> Any:
        from huggingface_hub import errors as hf_errors

        try:
            return fn()
        # LocalEntryNotFoundError subclasses EntryNotFoundError: "offline and not cached"
        except hf_errors.OfflineModeIsEnabled as e:
            raise HubUnreachable("HF_HUB_OFFLINE is set") from e
        except hf_errors.LocalEntryNotFoundError as e:
            raise HubUnreachable("offline, and huggingface_hub has no cached copy") from e
        except (hf_errors.GatedRepoError, hf_errors.RepositoryNotFoundError) as e:
            raise HubNotFound(str(e).splitlines()[0]) from e
        except (hf_errors.EntryNotFoundError, hf_errors.NotASafetensorsRepoError) as e:
            raise HubNotFound(str(e).splitlines()[0]) from e
        except hf_errors.HfHubHTTPError as e:
            raise HubUnreachable(_short(e)) from e
        except OSError as e:  # requests/httpx connection errors are OSErrors
            raise HubUnreachable(_short(e)) from e

    def config(self, repo: str) -> dict[str, Any]:
        from huggingface_hub import hf_hub_download

        path = self._call(repo, lambda: hf_hub_download(repo, "config.json", token=self.token))
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise HubNotFound(f"{repo}/config.json is not a JSON object")
        return data

    def tensors(self, repo: str) -> dict[str, tuple[str, tuple[int, ...]]]:
        from huggingface_hub import HfApi

        meta = self._call(repo, lambda: HfApi(token=self.token).get_safetensors_metadata(repo))
        out: dict[str, tuple[str, tuple[int, ...]]] = {}
        for fm in meta.files_metadata.values():
            for name, info in fm.tensors.items():
                out[name] = (str(info.dtype), tuple(int(x) for x in info.shape))
        return out

    def file_sizes(self, repo: str) -> dict[str, int]:
        from huggingface_hub import HfApi

        info = self._call(
            repo, lambda: HfApi(token=self.token).model_info(repo, files_metadata=True)
        )
        return {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}

    def download(
        self, repo: str, files: list[str], cache_dir: Path, progress: Callable[[str, int], None]
    ) -> Path:
        from huggingface_hub import hf_hub_download

        last = None
        for f in files:
            last = self._call(
                repo,
                lambda f=f: hf_hub_download(repo, f, cache_dir=str(cache_dir), token=self.token),  # type: ignore[misc]
            )
            progress(f, Path(last).stat().st_size)
        return Path(last).parent if last else cache_dir


# ----------------------------------------------------------------------------- cache


def llmops_cache_dir(env: dict[str, str] | None = None) -> Path:
    """``$LLMOPS_HOME/cache`` or ``~/.cache/llmops``."""
    env = dict(os.environ) if env is None else env
    home = env.get("LLMOPS_HOME")
    if home:
        return Path(home) / "cache"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmops"


def _cache_file(repo: str) -> Path:
    return llmops_cache_dir() / "hub" / (repo.replace("/", "--") + ".json")


def _read_cache(repo: str) -> dict[str, Any] | None:
    p = _cache_file(repo)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return None
    return data


def _write_cache(repo: str, data: dict[str, Any]) -> None:
    p = _cache_file(repo)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(p)


# ----------------------------------------------------------------------------- pure helpers


def dtype_counts(tensors: dict[str, tuple[str, tuple[int, ...]]]) -> dict[str, int]:
    """Parameters (tensor elements) per safetensors dtype, e.g. ``{"BF16": 7241732096}``."""
    out: dict[str, int] = {}
    for dtype, shape in tensors.values():
        n = 1
        for s in shape:
            n *= s
        out[dtype] = out.get(dtype, 0) + n
    return out


def inventory_from_tensors(
    tensors: dict[str, tuple[str, tuple[int, ...]]], source: str
) -> WeightInventory:
    """Real bytes by place (embedding, head, each layer, the rest) from tensor dtypes/shapes."""
    embed = head = other = 0
    layers: dict[int, int] = {}
    for name, (dtype, shape) in tensors.items():
        n = 1
        for s in shape:
            n *= s
        b = n * DTYPE_BYTES.get(dtype.upper(), 2)
        m = _LAYER.search("." + name)
        if m:
            i = int(m.group(1))
            layers[i] = layers.get(i, 0) + b
        elif name.endswith(_EMBED):
            embed += b
        elif name.endswith(_HEAD):
            head += b
        else:
            other += b
    n_layers = max(layers) + 1 if layers else 0
    return WeightInventory(
        embed_bytes=embed,
        lm_head_bytes=head,
        layer_bytes=tuple(layers.get(i, 0) for i in range(n_layers)),
        other_bytes=other,
        tied=head == 0,
        source=source,
    )


def _native_quant(config: dict[str, Any]) -> str:
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        method = str(qc.get("quant_method", "")).lower()
        if method in ("gptq", "awq", "fp8"):
            return method
    return checkpoint_dtype(config)


@dataclass(frozen=True)
class HubModel:
    repo: str
    spec: ModelSpec
    quant: str  # the repo's own format: bf16 | fp16 | fp32 | gptq | awq | fp8
    dtype_counts: dict[str, int]
    inventory: WeightInventory | None
    from_cache: bool


def _spec(repo: str, config: dict[str, Any], quant: str) -> ModelSpec:
    try:
        arch = architecture_from_config(config)
    except ConfigFieldError as e:
        raise HubError(
            f"{repo}: config.json {e}",
            "llmops reads llama/mistral/mixtral/qwen2/gemma2/phi3/stablelm/falcon/mpt/gpt_neox "
            "configs; for others use a GGUF file or a catalog model",
        ) from e
    fmt: dict[str, Any] = {"dtype": quant if quant in ("bf16", "fp16", "fp32") else "fp16"}
    if quant in ("bf16", "fp16", "fp32"):
        fmt["safetensors"] = repo
    elif quant in ("gptq", "awq"):
        fmt[quant] = repo
        qc = config.get("quantization_config") or {}
        g = qc.get("group_size") if isinstance(qc, dict) else None
        if isinstance(g, int):
            fmt[f"{quant}_group_size"] = g
    else:
        fmt["fp8"] = repo
    return ModelSpec(
        name=repo,
        arch=arch,
        formats=Formats(**fmt),
        display_name=repo,
        tasks=("chat",),
        source=f"hub:{repo}",
    )


def fetch(repo: str, client: HubClient | None = None, *, offline: bool = False) -> HubModel:
    """Config + tensor table of ``repo``; the cache answers when the Hub cannot.

    Raises:
        HubError: the repo does not exist/is gated, or the Hub is unreachable and ``repo`` is
            not cached.
    """
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    cached = _read_cache(repo)
    data: dict[str, Any] | None = None
    if not offline:
        client = client or HfHubClient(os.environ.get("HF_TOKEN"))
        try:
            config = client.config(repo)
            try:
                tensors = client.tensors(repo)
            except HubNotFound:
                tensors = {}  # not a safetensors repo: counts are computed from the config
            data = {
                "version": CACHE_VERSION,
                "repo": repo,
                "config": config,
                "tensors": {k: [v[0], list(v[1])] for k, v in tensors.items()},
            }
            _write_cache(repo, data)
        except HubNotFound as e:
            raise HubError(
                f"{repo} is not on the Hugging Face Hub or needs access: {e}",
                "check the repo id; for a gated model accept its licence and set HF_TOKEN",
            ) from e
        except HubUnreachable as e:
            if cached is None:
                raise HubError(
                    f"cannot reach the Hugging Face Hub for {repo} ({e}), and it is not cached",
                    "connect once to cache it, or use a catalog model (`llmops models`)",
                ) from e
    if data is None:
        if cached is None:
            raise HubError(
                f"{repo} is not cached and the Hub is offline (HF_HUB_OFFLINE)",
                "run once with network access to cache it, or use a catalog model (`llmops models`)",
            )
        data = cached
    config = data["config"]
    tensors = {k: (v[0], tuple(v[1])) for k, v in data["tensors"].items()}
    quant = _native_quant(config)
    return HubModel(
        repo=repo,
        spec=_spec(repo, config, quant),
        quant=quant,
        dtype_counts=dtype_counts(tensors),
        inventory=inventory_from_tensors(tensors, f"safetensors:{repo}") if tensors else None,
        from_cache=data is cached,
    )


def spec_from_hub(repo: str, *, offline: bool = False) -> ModelSpec:
    """The ModelSpec of any Hub repo (config.json through the cache)."""
    return fetch(repo, offline=offline).spec


# ----------------------------------------------------------------------------- pull


@dataclass(frozen=True)
class PullPlan:
    repo: str
    files: tuple[str, ...]
    total_bytes: int
    cache_dir: Path


_WEIGHT_PATTERNS = (".safetensors", ".json", ".model", ".txt", ".tiktoken")


def plan_pull(art: ModelArtifact, client: HubClient, cache_dir: Path) -> PullPlan:
    """Which files the artifact the decision chose needs, with their sizes (one Hub call).

    A GGUF artifact is its one file; any other is the repo's safetensors weights and the small
    files beside them (config, tokenizer). 4bit/8bit made at load come from the 16-bit repo.

    Raises:
        HubError: unreachable or offline, or the repo lists no such files.
    """
    spec_name = art.model
    repo: str | None = art.repo
    wanted = [art.file] if art.format == "gguf" and art.file else []
    if art.format == "bundled":
        raise HubError(
            f"{spec_name}'s {art.label} weights ship in a Python package; nothing to download",
            f"`llmops up {spec_name}` serves them as they are",
        )
    assert repo is not None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise HubError(
            f"HF_HUB_OFFLINE is set, so {spec_name} ({repo}) cannot be downloaded",
            "unset HF_HUB_OFFLINE on a connected host and run `llmops pull` again",
        )
    try:
        sizes = client.file_sizes(repo)
    except HubUnreachable as e:
        raise HubError(
            f"cannot reach the Hugging Face Hub to download {spec_name} ({repo}): {e}",
            "check the network (or unset HF_HUB_OFFLINE) and run `llmops pull` again",
        ) from e
    except HubNotFound as e:
        raise HubError(
            f"{repo} ({spec_name}) is not available: {e}",
            "for a gated model accept its licence on huggingface.co and set HF_TOKEN",
        ) from e
    if not wanted:
        wanted = [n for n in sizes if n.endswith(_WEIGHT_PATTERNS) and "/" not in n]
        if not any(n.endswith(".safetensors") for n in wanted):
            raise HubError(
                f"{repo} has no safetensors weights", "choose a GGUF quant (`--quant q4_k_m`)"
            )
    missing = [w for w in wanted if w not in sizes]
    if missing:
        raise HubError(f"{repo} has no file {missing[0]}", "the recipe may be stale; report it")
    return PullPlan(repo, tuple(sorted(wanted)), sum(sizes[w] for w in wanted), cache_dir)


def check_disk(plan: PullPlan, free_bytes: int | None = None, margin: int = 1 << 30) -> None:
    """Refuse a download that would not fit on the cache's disk (with 1 GiB to spare).

    Raises:
        DiskSpaceError: naming the folder, the need and what is free.
    """
    if free_bytes is None:
        probe = plan.cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_bytes = shutil.disk_usage(probe).free
    if plan.total_bytes + margin > free_bytes:
        raise DiskSpaceError(
            f"not enough disk for {plan.repo}: {plan.total_bytes / 1e9:.2f} GB needed "
            f"(+1 GiB spare), {free_bytes / 1e9:.2f} GB free under {plan.cache_dir}",
            "free space, or point HF_HOME/HF_HUB_CACHE at a larger disk",
        )


def hf_cache_dir(env: dict[str, str] | None = None) -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, ``HF_HOME/hub``, ``~/.cache/huggingface/hub``)."""
    env = dict(os.environ) if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def run_pull(plan: PullPlan, client: HubClient, progress: Callable[[str, int], None]) -> Path:
    """Download the files of a PullPlan into the HF cache.

    Raises:
        HubError: the Hub could not be reached mid-way (what is done stays cached).
    """
    try:
        return client.download(plan.repo, list(plan.files), plan.cache_dir, progress)
    except HubUnreachable as e:
        raise HubError(
            f"download of {plan.repo} failed: {e}",
            "run `llmops pull` again: finished files are kept in the cache",
        ) from e


def cached_repos() -> Iterable[str]:
    d = llmops_cache_dir() / "hub"
    if not d.is_dir():
        return []
    return sorted(p.stem.replace("--", "/") for p in d.glob("*.json"))
