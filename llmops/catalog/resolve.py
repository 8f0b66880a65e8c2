"""One entry point for `fit`, `models show` and `pull`: a name -> the model and its real bytes.

- catalog name / alias / a repo id a recipe lists -> the recipe (weights computed per tensor);
- another ``org/name`` -> the Hub (config + safetensors tensor table, cached): real bytes for
  the repo's own format;
- a path ending in ``.gguf`` -> the file's header: real bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.plan.model import ModelSpec, WeightInventory


@dataclass(frozen=True)
class Resolved:
    spec: ModelSpec
    native_quant: str | None  # the quant whose bytes ``inventory`` gives
    inventory: WeightInventory | None
    origin: str  # catalog | hub | hub-cache | gguf

    def inventory_for(self, quant: str) -> WeightInventory | None:
        """Real bytes when ``quant`` is the format they were read from, else None (computed)."""
        if self.inventory is not None and quant == self.native_quant:
            return self.inventory
        return None


def resolve(query: str, *, offline: bool = False) -> Resolved:
    """Resolve a model name, repo id or GGUF path.

    Raises:
        UnknownModelError, HubError, GgufError: with the model named and a hint.
    """
    from llmops.catalog.recipes import catalog, looks_like_repo_id

    m = catalog().find(query)
    if m is not None:
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
