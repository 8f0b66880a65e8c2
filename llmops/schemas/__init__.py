"""JSON Schemas for llmops' ``--json`` documents, derived from the dataclasses they serialise.

The committed files (``doctor.schema.json``) are the published contract; a test regenerates
them from the code and fails when they drift, and validates real output against them.
"""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

SCHEMA_DIR = Path(__file__).resolve().parent

_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _schema_for(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        parts = [_schema_for(a, defs) for a in args if a is not type(None)]
        if type(None) in args:
            parts.append({"type": "null"})
        return parts[0] if len(parts) == 1 else {"anyOf": parts}
    if origin in (tuple, list):
        return {"type": "array", "items": _schema_for(get_args(tp)[0], defs)}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            hints = get_type_hints(tp)
            fields = dataclasses.fields(tp)
            defs[name] = {
                "type": "object",
                "properties": {f.name: _schema_for(hints[f.name], defs) for f in fields},
                "required": [f.name for f in fields],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    raise TypeError(f"no JSON Schema mapping for {tp!r}")


def doctor_schema() -> dict[str, Any]:
    """The schema of ``llmops doctor --json``."""
    from llmops.hw.facts import HostFacts
    from llmops.plan.checks import Check

    defs: dict[str, Any] = {}
    facts = _schema_for(HostFacts, defs)
    check = _schema_for(Check, defs)
    defs["Check"]["properties"]["status"] = {"enum": ["pass", "warn", "fail"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/llmops/llmops/schemas/doctor.schema.json",
        "title": "llmops doctor --json",
        "type": "object",
        "properties": {
            "schema": {"const": 1},
            "facts": facts,
            "checks": {"type": "array", "items": check},
        },
        "required": ["schema", "facts", "checks"],
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def load(name: str) -> dict[str, Any]:
    """A committed schema by file stem, e.g. ``load("doctor")``."""
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return data
