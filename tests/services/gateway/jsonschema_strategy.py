"""Hypothesis strategies for instances of a JSON Schema: the subset the AsyncAPI document uses.

hypothesis-jsonschema (0.23.1, its latest) is made for this but calls Hypothesis internals that the pinned
Hypothesis no longer has (`many.more`), so this is the small part of it the partner test needs: `$ref`-free
schemas (inline them first) with allOf/anyOf, enum/const, strings (pattern, length, formats), numbers, arrays
and objects (required, optional, additionalProperties, propertyNames, min/maxProperties). Every draw is checked
against the whole schema with jsonschema_rs, so a case this reading gets wrong is filtered, never sent.
"""

from collections.abc import Callable
from typing import Any

import jsonschema_rs
from hypothesis import strategies as st

Formats = dict[str, st.SearchStrategy[str]]
MAX_TEXT, MAX_ITEMS, MAX_EXTRA = 40, 3, 2


def from_schema(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[Any]:
    check = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    return _strategy(schema, formats).filter(check.is_valid)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """allOf as one schema: properties and required united, a later part's keyword (or property) winning. The
    earlier parts still bind through the final filter."""
    merged: dict[str, Any] = {}
    for part in parts:
        part = _merge(part["allOf"]) | {k: v for k, v in part.items() if k != "allOf"} if "allOf" in part else part
        properties = {**merged.get("properties", {})}
        for name, sub in part.get("properties", {}).items():
            properties[name] = _merge([properties[name], sub]) if name in properties and _narrower(sub) else sub
        merged = (
            merged
            | part
            | {"properties": properties, "required": sorted({*merged.get("required", ()), *part.get("required", ())})}
        )
    return merged


def _narrower(sub: dict[str, Any]) -> bool:
    # An object schema refines the earlier one (the envelope's `data` by the payload's); others replace it.
    return sub.get("type") == "object" or "properties" in sub


def _strategy(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[Any]:
    if "allOf" in schema:
        return _strategy(_merge([{k: v for k, v in schema.items() if k != "allOf"}, *schema["allOf"]]), formats)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return st.one_of([_strategy(_merge([rest, option]) if rest else option, formats) for option in schema[key]])
    kind = schema.get("type")
    if kind is None:
        kind = "object" if "properties" in schema else None
    if isinstance(kind, list):
        return st.one_of([_strategy(schema | {"type": k}, formats) for k in kind])
    builders: dict[Any, Callable[[dict[str, Any], Formats], st.SearchStrategy[Any]]] = {
        "string": _string,
        "integer": _integer,
        "number": _number,
        "boolean": lambda s, f: st.booleans(),
        "null": lambda s, f: st.none(),
        "array": _array,
        "object": _object,
        None: _any,
    }
    return builders[kind](schema, formats)


def _string(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", MAX_TEXT)
    if schema.get("format") in formats:
        text = formats[schema["format"]]
    elif "pattern" in schema:
        text = st.from_regex(schema["pattern"])
    else:
        text = st.text(min_size=low, max_size=min(high, MAX_TEXT))
    return text.filter(lambda s: low <= len(s) <= high)


def _integer(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[int]:
    return st.integers(schema.get("minimum"), schema.get("maximum"))


def _number(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[float | int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    return st.one_of(
        st.floats(low, high, allow_nan=False, allow_infinity=False),
        st.integers(None if low is None else int(low), None if high is None else int(high)),
    )


def _array(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[list[Any]]:
    low = schema.get("minItems", 0)
    return st.lists(
        _strategy(schema.get("items", {}), formats),
        min_size=low,
        max_size=max(low, min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS)),
    )


def _any(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.text(max_size=MAX_TEXT))


def _object(schema: dict[str, Any], formats: Formats) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ())) & properties.keys()
    fixed = st.fixed_dictionaries(
        {name: _strategy(sub, formats) for name, sub in properties.items() if name in required},
        optional={name: _strategy(sub, formats) for name, sub in properties.items() if name not in required},
    )
    extra = schema.get("additionalProperties", True)
    most = schema.get("maxProperties", MAX_EXTRA + len(properties))
    least = schema.get("minProperties", 0)
    if extra is False:
        return fixed
    names = _strategy({"type": "string", **schema.get("propertyNames", {})}, formats).filter(lambda n: n not in properties)
    values = _strategy(extra, formats) if isinstance(extra, dict) else _any({}, formats)
    extras = st.dictionaries(names, values, min_size=least, max_size=max(least, min(MAX_EXTRA, most)))
    return st.tuples(fixed, extras).map(lambda pair: pair[1] | pair[0]).filter(lambda d: least <= len(d) <= most)
