"""One entry point for `fit`, `models show` and `pull`: a name -> the model and its real bytes.

- catalog name / alias / a repo id a recipe lists -> the recipe (weights computed per tensor);
- another ``org/name`` -> the Hub (config + safetensors tensor table, cached): real bytes for
  the repo's own format;
- a path ending in ``.gguf`` -> the file's header: real bytes.
"""

from __future__ import annotations

from pathlib import Path

from llmops.plan.deploy import ResolvedModel

Resolved = ResolvedModel  # the model as the decision core takes it (llmops.plan.deploy)


def resolve(query: str, *, offline: bool = False) -> Resolved:
    """Resolve a model name, repo id or GGUF path.

    Raises:
        UnknownModelError, HubError, GgufError: with the model named and a hint.
    """
    from llmops.catalog.recipes import catalog, looks_like_repo_id

    m = catalog().find(query)
    if m is not None:
        packaged = bundled_gguf(m.name)
        if packaged is not None:
            from dataclasses import replace

            m = replace(m, bundled_gguf=packaged)
        return Resolved(m, None, None, "catalog")
    if query.endswith(".gguf"):
        from llmops.catalog.gguf import inventory_from_header, read_header, spec_from_gguf

        path = Path(query).expanduser()
        spec = spec_from_gguf(path)
        return Resolved(spec, "gguf", inventory_from_header(read_header(path)), "gguf")
    if looks_like_repo_id(query):
        from llmops.catalog.hub import fetch

        hm = fetch(query, offline=offline)
        return Resolved(hm.spec, hm.quant, hm.inventory, "hub-cache" if hm.from_cache else "hub")
    catalog().resolve(query)  # raises UnknownModelError with the nearest names
    raise AssertionError("unreachable")


def bundled_gguf(name: str) -> tuple[str, str, int] | None:
    """(folder, file name, bytes) of the GGUF file a bundled model's package carries, or None
    when the package is not installed. Reads only the import system's view of site-packages."""
    import importlib.util
    import os

    from llmops.plan.artifacts import BUNDLED_GGUF

    pkg = BUNDLED_GGUF.get(name)
    found = importlib.util.find_spec(pkg) if pkg else None
    if found is None or not found.submodule_search_locations:
        return None
    folder = next(iter(found.submodule_search_locations))
    files = sorted(n for n in os.listdir(folder) if n.endswith(".gguf"))
    if not files:
        return None
    return folder, files[0], os.path.getsize(os.path.join(folder, files[0]))
