"""`shared.validation`: what no service can store is found, and said where; everything else passes."""

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from shared.validation import MAX_DEPTH, Instant, StorableText, find_unstorable, loads


def nested(levels: int) -> object:
    doc: object = 1
    for _ in range(levels - 1):
        doc = [doc]
    return doc


@pytest.mark.parametrize(
    ("doc", "where", "why"),
    [
        ({"a": {"b": "x\x00"}}, ("a", "b"), "NUL"),
        ({"a": ["ok", "\ud800"]}, ("a", 1), "surrogate"),
        ({"k\x00": 1}, ("k\x00",), "NUL"),
        ({"\udfff": 1}, ("\\udfff",), "surrogate"),
        ({"n": float("inf")}, ("n",), "finite"),
        ({"n": float("nan")}, ("n",), "finite"),
        ({"n": 2**63}, ("n",), "64 bits"),
        ({"n": -(2**63) - 1}, ("n",), "64 bits"),
        ({"deep": nested(MAX_DEPTH + 1)}, ("deep",) + (0,) * (MAX_DEPTH - 1), "deeper"),
    ],
)
def test_unstorable_values_are_found_with_their_place(doc, where, why):
    loc, problem = find_unstorable(doc)
    assert loc == where and why in problem


@pytest.mark.parametrize(
    "doc",
    [
        {"a": "café ☕ 𝄞", "n": 2**63 - 1, "m": -(2**63), "x": 1e308, "z": -0.0, "t": True, "none": None},
        nested(MAX_DEPTH),
        [],
        "text",
        0,
    ],
)
def test_storable_documents_pass(doc):
    assert find_unstorable(doc) is None


def test_loads_takes_what_orjson_refuses_but_not_nan():
    assert loads(b'["\\ud800", 1e999999]')[0] == "\ud800"
    assert loads(b"[1e999999]") == [float("inf")]
    for text in (b"[NaN]", b"[Infinity]", b"[1", b"\xff", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(ValueError):
            loads(text)


class Model(BaseModel):
    at: Instant
    name: StorableText = "x"


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "1899-12-31T23:59:59Z",
        "2200-12-31T23:00:00-14:00",
    ],
)
def test_instants_out_of_range_in_utc_are_invalid(value):
    with pytest.raises(ValidationError, match="between the years 1900 and 2200"):
        Model.model_validate_json(json.dumps({"at": value}))


def test_instants_in_range_keep_their_offset():
    m = Model.model_validate({"at": "2200-12-31T09:00:00-14:00"})
    assert m.at.astimezone(UTC) == datetime(2200, 12, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize("value", ["a\x00", "\ud800"])
def test_storable_text_refuses_nul_and_lone_surrogates(value):
    with pytest.raises(ValidationError):
        Model(at=datetime(2026, 1, 1, tzinfo=UTC), name=value)
