"""Load and validate recipes/*.yaml into ``ModelSpec`` objects; resolve names and aliases.

A recipe file holds ``models:``, a mapping of catalog name -> entry::

    mistral7b:
      display_name: Mistral 7B Instruct v0.2
      aliases: [mistral-7b, mistral]
      tasks: [chat]
      gated: false
      params: 7241732096          # published count; must match the config's count
      config: {model_type: mistral, hidden_size: 4096, ...}   # config.json values verbatim
      formats:
        safetensors: {repo: mistralai/Mistral-7B-Instruct-v0.2}
        gptq: {repo: ..., group_size: 128}
        awq: {repo: ...}
        gguf: {repo: ..., files: {q4_k_m: {file: ..., size_gb: 4.37}}}

Any mistake is a ``RecipeError`` naming the file, the field and what was expected.

Names resolve case- and punctuation-insensitively: ``mistral7b``, ``Mistral7B``, ``mistral-7b``
and the repo ids ``mistralai/Mistral-7B-Instruct-v0.2`` / ``TheBloke/...-GGUF`` all give the
same model. Extra recipes can be dropped into ``$LLMOPS_HOME/recipes/`` (read by the CLI).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.catalog.config import ConfigFieldError, architecture_from_config, checkpoint_dtype
from llmops.errors import LlmopsError, UsageError
from llmops.plan.model import Formats, GgufFile, ModelSpec
from llmops.plan.quant import GGUF_QUANTS, param_count

_TOP_KEYS = {
    "display_name",
    "aliases",
    "tasks",
    "gated",
    "params",
    "mmlu",
    "notes",
    "config",
    "formats",
    "trust_remote_code",
    "released",
    "tier",
    "sampling",
}
#: ``sampling:`` keys and their allowed ranges (the OpenAI API's ranges).
_SAMPLING_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
_FORMAT_KEYS = {"safetensors", "gptq", "awq", "gguf", "fp8"}
TASKS = ("chat", "code", "text")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


class RecipeError(LlmopsError):
    """A recipe file is malformed: names the file, the field and what was expected."""


class UnknownModelError(UsageError):
    """No catalog model has that name or alias."""


def normalize(name: str) -> str:
    """The lookup key of a name: lowercase letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _fail(path: Path, field: str, expected: str, got: Any = ...) -> RecipeError:
    got_s = "" if got is ... else f", got {got!r}"
    return RecipeError(
        f"recipe {path.name}: {field}: expected {expected}{got_s}",
        f"fix {path} (see recipes/README.md for the format), or remove the file",
    )


def _str(path: Path, field: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(path, field, "a non-empty string", v)
    return v


def _repo(path: Path, field: str, v: Any) -> str:
    s = _str(path, field, v)
    if not re.match(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$", s):
        raise _fail(path, field, "a Hugging Face repo id like org/name", v)
    return s


def _strlist(path: Path, field: str, v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise _fail(path, field, "a list of strings", v)
    return tuple(v)


def _formats(path: Path, where: str, raw: Any, dtype: str) -> Formats:
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(
            path, where, "a mapping of format -> {repo: ...} (safetensors, gptq, awq, gguf)", raw
        )
    unknown = set(raw) - _FORMAT_KEYS
    if unknown:
        raise _fail(
            path, f"{where}.{sorted(unknown)[0]}", f"one of {', '.join(sorted(_FORMAT_KEYS))}"
        )
    kw: dict[str, Any] = {"dtype": dtype}
    for key in ("safetensors", "gptq", "awq", "fp8"):
        if key not in raw:
            continue
        entry = raw[key]
        if not isinstance(entry, Mapping) or "repo" not in entry:
            raise _fail(path, f"{where}.{key}", "a mapping with a repo", entry)
        kw[key] = _repo(path, f"{where}.{key}.repo", entry["repo"])
        if key == "safetensors" and "dtype" in entry:
            d = entry["dtype"]
            if d not in ("bf16", "fp16", "fp32"):
                raise _fail(path, f"{where}.safetensors.dtype", "bf16, fp16 or fp32", d)
            kw["dtype"] = d
        if key in ("gptq", "awq") and "group_size" in entry:
            g = entry["group_size"]
            if not isinstance(g, int) or isinstance(g, bool) or (g <= 0 and g != -1):
                raise _fail(path, f"{where}.{key}.group_size", "a positive integer or -1", g)
            kw[f"{key}_group_size"] = g
    if "gguf" in raw:
        g = raw["gguf"]
        if not isinstance(g, Mapping) or "repo" not in g or not isinstance(g.get("files"), Mapping):
            raise _fail(path, f"{where}.gguf", "a mapping with repo and files", g)
        kw["gguf"] = _repo(path, f"{where}.gguf.repo", g["repo"])
        files = []
        for q, f in g["files"].items():
            fw = f"{where}.gguf.files.{q}"
            if q not in GGUF_QUANTS:
                raise _fail(path, fw, f"a GGUF quant name ({', '.join(GGUF_QUANTS)})")
            if not isinstance(f, Mapping) or "file" not in f:
                raise _fail(path, fw, "a mapping with file (and size_gb or size_bytes)", f)
            name = _str(path, f"{fw}.file", f["file"])
            if not name.endswith(".gguf"):
                raise _fail(path, f"{fw}.file", "a file name ending in .gguf", name)
            size: int | None = None
            if "size_bytes" in f:
                sb = f["size_bytes"]
                if not isinstance(sb, int) or isinstance(sb, bool) or sb <= 0:
                    raise _fail(path, f"{fw}.size_bytes", "a positive integer", sb)
                size = sb
            elif "size_gb" in f:
                sg = f["size_gb"]
                if isinstance(sg, bool) or not isinstance(sg, int | float) or sg <= 0:
                    raise _fail(path, f"{fw}.size_gb", "a positive number (decimal GB)", sg)
                size = int(round(sg * 1e9))
            files.append(GgufFile(quant=q, file=name, size_bytes=size))
        kw["gguf_files"] = tuple(files)
    return Formats(**kw)


def _sampling(path: Path, where: str, raw: Any) -> tuple[tuple[str, float], ...]:
    """``sampling: {temperature: 0.2, top_p: 0.9}`` -> sorted (key, value) pairs."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "a mapping like {temperature: 0.7, top_p: 0.9}", raw)
    out: list[tuple[str, float]] = []
    for key, value in raw.items():
        if key not in _SAMPLING_RANGES:
            raise _fail(path, f"{where}.{key}", f"one of {', '.join(sorted(_SAMPLING_RANGES))}")
        lo, hi = _SAMPLING_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise _fail(path, f"{where}.{key}", f"a number from {lo} to {hi}", value)
        out.append((key, float(value)))
    return tuple(sorted(out))


def parse_model(path: Path, name: Any, raw: Any) -> ModelSpec:
    """One ``models:`` entry -> ModelSpec (validated).

    Raises:
        RecipeError: naming file, field and expectation.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(path, f"models.{name}", "a lowercase name of letters, digits, '.', '-'")
    where = f"models.{name}"
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "a mapping", raw)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown)[0]}", f"one of {', '.join(sorted(_TOP_KEYS))}")
    cfg = raw.get("config")
    if not isinstance(cfg, Mapping):
        raise _fail(path, f"{where}.config", "a mapping of config.json values", cfg)
    try:
        arch = architecture_from_config(cfg)
    except ConfigFieldError as e:
        raise _fail(path, f"{where}.config.{e.field}", e.expected, cfg.get(e.field, ...)) from e
    tasks = _strlist(path, f"{where}.tasks", raw.get("tasks", ["chat"]))
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise _fail(path, f"{where}.tasks", f"items from {', '.join(TASKS)}", bad[0])
    gated = raw.get("gated", False)
    if not isinstance(gated, bool):
        raise _fail(path, f"{where}.gated", "true or false", gated)
    params = raw.get("params")
    if params is not None:
        if not isinstance(params, int) or isinstance(params, bool) or params <= 0:
            raise _fail(path, f"{where}.params", "a positive integer", params)
        counted = param_count(arch)
        if abs(counted - params) > max(params // 1000, 1):  # 0.1 %
            raise _fail(
                path,
                f"{where}.params",
                f"the count the config gives ({counted:,}); check config numbers",
                params,
            )
    mmlu = raw.get("mmlu")
    if mmlu is not None and (isinstance(mmlu, bool) or not isinstance(mmlu, int | float)):
        raise _fail(path, f"{where}.mmlu", "a number", mmlu)
    released = raw.get("released", "")
    if hasattr(released, "isoformat"):  # YAML reads an unquoted date as a date
        released = released.isoformat()
    if released and not (isinstance(released, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", released)):
        raise _fail(path, f"{where}.released", "a date YYYY-MM-DD", released)
    tier = raw.get("tier")
    if tier is not None and (
        isinstance(tier, bool) or not isinstance(tier, int) or not 1 <= tier <= 5
    ):
        raise _fail(path, f"{where}.tier", "an integer from 1 to 5", tier)
    display = raw.get("display_name", "")
    if display and not isinstance(display, str):
        raise _fail(path, f"{where}.display_name", "a string", display)
    formats = _formats(path, f"{where}.formats", raw.get("formats"), checkpoint_dtype(cfg))
    trc = raw.get("trust_remote_code", False)
    if not isinstance(trc, bool):
        raise _fail(path, f"{where}.trust_remote_code", "true or false", trc)
    sampling = _sampling(path, f"{where}.sampling", raw.get("sampling"))
    return ModelSpec(
        name=name,
        arch=arch,
        formats=formats,
        display_name=display or name,
        aliases=_strlist(path, f"{where}.aliases", raw.get("aliases")),
        family=path.stem,
        tasks=tasks,
        gated=gated,
        params=params,
        mmlu=float(mmlu) if mmlu is not None else None,
        released=released or "",
        tier=tier,
        trust_remote_code=trc,
        sampling=sampling,
        notes=str(raw.get("notes") or ""),
        source=f"recipes/{path.name}",
    )


def load_file(path: Path) -> list[ModelSpec]:
    """Parse one recipe file.

    Raises:
        RecipeError: unreadable, not YAML, or a field is wrong.
    """
    import yaml

    try:
        text = path.read_text()
    except OSError as e:
        raise RecipeError(
            f"recipe {path.name}: cannot read it: {e.strerror or e}", f"check {path}"
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(
            f"recipe {path.name}: not valid YAML{at}: {problem}",
            f"fix {path}, or remove the file",
        ) from e
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise _fail(path, "models", "a top-level mapping `models:` of name -> entry", data)
    return [parse_model(path, n, raw) for n, raw in data["models"].items()]


@dataclass(frozen=True)
class Catalog:
    models: tuple[ModelSpec, ...]
    index: Mapping[str, str]  # normalized alias -> model name

    def get(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def find(self, query: str) -> ModelSpec | None:
        """The model a name, alias or repo id refers to, or None."""
        key = self.index.get(normalize(query))
        return self.get(key) if key else None

    def resolve(self, query: str) -> ModelSpec:
        """Like ``find`` but raises UnknownModelError with the nearest names."""
        m = self.find(query)
        if m is not None:
            return m
        raise UnknownModelError(
            f"unknown model {query!r}",
            _nearest_hint(query, self),
        )

    def names(self) -> list[str]:
        return [m.name for m in self.models]


def _nearest_hint(query: str, cat: Catalog) -> str:
    key = normalize(query)
    near = difflib.get_close_matches(key, list(cat.index), n=8, cutoff=0.5)
    names: list[str] = []
    for k in near:
        n = cat.index[k]
        if n not in names:
            names.append(n)
    # also prefix/substring matches ("llama" -> llama2-7b, ...)
    for m in cat.models:
        if key and key in normalize(m.name) and m.name not in names:
            names.append(m.name)
    tail = "; or a Hugging Face repo id (org/name); `llmops models` lists the catalog"
    if names:
        return "did you mean " + ", ".join(names[:4]) + tail
    return "see `llmops models` for the catalog" + tail.split(";", 1)[1].replace(
        "; `llmops models` lists the catalog", ""
    )


def build_catalog(models: Iterable[ModelSpec], origin: Mapping[str, Path] | None = None) -> Catalog:
    """Index models by name, aliases and repo ids; duplicates are a RecipeError."""
    ms = tuple(models)
    index: dict[str, str] = {}
    owner_file = dict(origin or {})
    for m in ms:
        keys = [m.name, *m.aliases]
        f = m.formats
        for repo in (f.safetensors, f.gptq, f.awq, f.gguf, f.fp8):
            if repo:
                keys += [repo]
        for k in keys:
            nk = normalize(k)
            other = index.get(nk)
            if other is not None and other != m.name:
                path = owner_file.get(m.name, Path(m.source or "recipe"))
                raise RecipeError(
                    f"recipe {path.name}: models.{m.name}: name or alias {k!r} is already "
                    f"used by {other}",
                    f"rename the alias in {path}",
                )
            index[nk] = m.name
    return Catalog(models=ms, index=index)


def load_catalog(dirs: Iterable[Path] | None = None) -> Catalog:
    """Load every ``*.yaml`` of the shipped recipes dir (and any extra ``dirs``), sorted."""
    from llmops.resources import recipes_dir

    paths: list[Path] = []
    for d in [recipes_dir(), *(dirs or [])]:
        if d.is_dir():
            paths += sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml"))
    models: list[ModelSpec] = []
    origin: dict[str, Path] = {}
    for p in paths:
        for m in load_file(p):
            if m.name in origin:
                raise RecipeError(
                    f"recipe {p.name}: models.{m.name}: already defined in {origin[m.name].name}",
                    f"rename or remove one of them ({p})",
                )
            origin[m.name] = p
            models.append(m)
    return build_catalog(models, origin)


_CATALOG: Catalog | None = None


def catalog() -> Catalog:
    """The shipped catalog plus ``$LLMOPS_HOME/recipes/*.yaml`` (loaded once per process)."""
    global _CATALOG
    if _CATALOG is None:
        import os

        extra = []
        home = os.environ.get("LLMOPS_HOME")
        if home:
            extra.append(Path(home) / "recipes")
        _CATALOG = load_catalog(extra)
    return _CATALOG


def reset_cache() -> None:
    """Forget the loaded catalog (tests that write recipes call this)."""
    global _CATALOG
    _CATALOG = None


def looks_like_repo_id(query: str) -> bool:
    return bool(re.match(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$", query))


def resolve_model(query: str, *, offline: bool = False) -> ModelSpec:
    """A catalog name, alias or repo id -> ModelSpec; unknown repo ids go to the Hub.

    A path to a local ``.gguf`` file is read from its header.

    Raises:
        UnknownModelError: not in the catalog and not a repo id / GGUF path (nearest names
            in the hint). HubError: the Hub cannot be reached and nothing is cached.
    """
    cat = catalog()
    m = cat.find(query)
    if m is not None:
        return m
    if query.endswith(".gguf"):
        from llmops.catalog.gguf import spec_from_gguf

        return spec_from_gguf(Path(query))
    if looks_like_repo_id(query):
        from llmops.catalog.hub import spec_from_hub

        return spec_from_hub(query, offline=offline)
    return cat.resolve(query)
