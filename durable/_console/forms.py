"""An answer form drawn from an interrupt's ``response_schema``.

An object schema whose properties are all simple (a string, an integer, a number, a boolean, or an enum of
scalars; optional ones written ``anyOf: [X, {"type": "null"}]`` as Pydantic writes them; an enum may sit behind a
local ``$ref``) gets one input per property, with its title, description, default and whether it is required.
Anything else (no schema, an array, nested objects, ``oneOf``...) gets a JSON editor: `form_fields` returns None.
Either way the server checks the answer against the schema (`Threads.answer`), so the form is a convenience.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_IGNORED = {"title", "description", "default", "examples", "minLength", "maxLength", "minimum", "maximum",
            "exclusiveMinimum", "exclusiveMaximum", "pattern", "format", "multipleOf"}  # fmt: skip


def _resolve(prop: Any, root: Mapping[str, Any]) -> Any:
    """A property with a local ``$ref`` (``#/$defs/Name`` or ``#/definitions/Name``) followed, once."""
    if not isinstance(prop, Mapping) or "$ref" not in prop:
        return prop
    ref = prop["$ref"]
    for base in ("#/$defs/", "#/definitions/"):
        if isinstance(ref, str) and ref.startswith(base):
            target = root.get(base[2:-1], {}).get(ref[len(base) :])
            if isinstance(target, Mapping) and "$ref" not in target:
                return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return None


def _optional(prop: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``anyOf: [X, {"type": "null"}]`` as X (with the outer title, description and default); else None."""
    options = prop.get("anyOf")
    if not isinstance(options, list) or len(options) != 2:
        return None
    rest = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
    if len(rest) != 1 or not isinstance(rest[0], Mapping):
        return None
    return {**rest[0], **{k: v for k, v in prop.items() if k != "anyOf"}}


def _field(name: str, prop: Any, root: Mapping[str, Any], required: bool) -> dict[str, Any] | None:
    prop = _resolve(prop, root)
    if not isinstance(prop, Mapping):
        return None
    nullable = False
    if "anyOf" in prop:
        inner = _optional(prop)
        if inner is None:
            return None
        prop, nullable = _resolve(inner, root), True
        if not isinstance(prop, Mapping):
            return None
    field: dict[str, Any] = {
        "name": name,
        "title": str(prop.get("title") or name),
        "description": str(prop.get("description") or ""),
        "required": required and not nullable,
        "has_default": "default" in prop,
        "default": prop.get("default"),
    }
    if "enum" in prop or "const" in prop:
        options = prop.get("enum", [prop.get("const")])
        if not isinstance(options, list) or not options:
            return None
        if not all(isinstance(o, str | int | float | bool) or o is None for o in options):
            return None
        field["type"] = "enum"
        field["options"] = [{"json": json.dumps(o), "label": o if isinstance(o, str) else json.dumps(o)}
                            for o in options]  # fmt: skip
        field["default_json"] = json.dumps(field["default"]) if field["has_default"] else None
        return field
    kind = prop.get("type")
    if kind not in _SCALARS or set(prop) - _IGNORED - {"type"}:
        return None
    field["type"] = _SCALARS[kind]
    for limit in ("minimum", "maximum"):
        field[limit] = prop.get(limit)
    return field


def form_fields(schema: Any) -> list[dict[str, Any]] | None:
    """One input per property of a simple object schema, in the schema's order; None for a JSON editor."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return None
    props = schema.get("properties")
    if not isinstance(props, Mapping) or not props:
        return None
    if schema.get("additionalProperties") not in (None, False) or any(
        k in schema for k in ("anyOf", "oneOf", "allOf", "patternProperties", "if", "not")
    ):
        return None
    required = schema.get("required", [])
    if not isinstance(required, list):
        return None
    fields = []
    for name, prop in props.items():
        field = _field(str(name), prop, schema, name in required)
        if field is None:
            return None
        fields.append(field)
    return fields
