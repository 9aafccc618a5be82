"""Rule definitions: invalid ones are rejected with the reason; valid ones compile to bound parameters only."""

import pytest

from segmentation.rules.language import InvalidDefinition, compile_rule, validate

INVALID = [
    ("not a dict", "a node must be an object"),
    ({"all": []}, "$.all: must be a non-empty list"),
    ({"all": [{"field": "order_count", "op": "gt", "value": 1}], "any": []}, "exactly one key"),
    ({"field": "password", "op": "eq", "value": "x"}, "unknown field 'password'"),
    ({"field": "order_count", "op": "within_last_days", "value": 3}, "does not apply to order_count"),
    ({"field": "order_count", "op": "gt"}, "value is required"),
    ({"field": "order_count", "op": "gt", "value": "many"}, "must be a number"),
    ({"field": "order_count", "op": "is_null", "value": 1}, "takes no value"),
    ({"field": "spend", "op": "between", "value": [10, 1]}, "low <= high"),
    ({"field": "last_purchase_at", "op": "within_last_days", "value": 0}, "days must be an integer"),
    ({"field": "last_purchase_at", "op": "before", "value": "2026-01-01"}, "with an offset"),
    ({"field": "attributes.a b", "op": "eq", "value": 1}, "attribute name must match"),
    ({"field": "stage", "op": "in", "value": []}, "non-empty list"),
    ({"field": "sku", "op": "not_in", "value": ["a"]}, "does not apply to sku (bought)"),
    ({"field": "category", "op": "eq", "value": 3}, "must be a string"),
    ({"field": "stage", "op": "eq", "value": "x", "extra": 1}, "unknown keys ['extra']"),
    (
        {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"field": "stage", "op": "is_null"}}}}}}}}},
        "nested deeper than 8",
    ),
    ({"any": [{"field": "order_count", "op": "gt", "value": i} for i in range(101)]}, "more than 100 conditions"),
    # Custom event fields: the type is required and a type's name; the window a positive number of days.
    ({"field": "event_count", "op": "gte", "value": 2}, "event_count needs event_type"),
    ({"field": "event_count", "event_type": "Order Shipped", "op": "gte", "value": 2}, "needs event_type"),
    ({"field": "event_count", "event_type": 3, "op": "gte", "value": 2}, "needs event_type"),
    (
        {"field": "event_count", "event_type": "order.shipped", "within_days": -1, "op": "gte", "value": 2},
        "within_days: days must be an integer from 1",
    ),
    (
        {"field": "event_count", "event_type": "order.shipped", "within_days": 0, "op": "gte", "value": 2},
        "within_days: days must be",
    ),
    (
        {"field": "event_count", "event_type": "order.shipped", "within_days": 1.5, "op": "gte", "value": 2},
        "within_days: days must be",
    ),
    (
        {"field": "event_count", "event_type": "order.shipped", "within_days": 36601, "op": "gte", "value": 2},
        "within_days: days must be",
    ),
    (
        {"field": "event_count", "event_type": "order.shipped", "op": ">=", "value": 2},
        "operator '>=' does not apply to event_count",
    ),
    ({"field": "event_count", "event_type": "order.shipped", "op": "is_null"}, "does not apply to event_count"),
    ({"field": "event_count", "event_type": "order.shipped", "op": "gte", "value": "two"}, "must be a number"),
    ({"field": "event_count", "event_type": "order.shipped", "op": "gte"}, "value is required"),
    (
        {"field": "event_last_at", "event_type": "order.shipped", "within_days": 3, "op": "is_null"},
        "unknown keys ['within_days']",
    ),
    ({"field": "event_last_at", "event_type": "order.shipped", "op": "within_last_days", "value": -3}, "days must be an integer"),
    ({"field": "event_last_at", "event_type": "order.shipped", "op": "gte", "value": 3}, "does not apply"),
    ({"field": "event_last_at", "event_type": "order.shipped", "op": "after", "value": "2026-01-01"}, "with an offset"),
    ({"field": "stage", "event_type": "order.shipped", "op": "eq", "value": "x"}, "unknown keys ['event_type']"),
]


@pytest.mark.parametrize(("definition", "reason"), INVALID)
def test_invalid_definitions_are_rejected_with_the_reason(definition, reason):
    with pytest.raises(InvalidDefinition) as caught:
        validate(definition)
    assert reason in caught.value.detail


def test_values_and_attribute_names_are_bound_never_spliced():
    rule = {
        "all": [
            {"field": "attributes.plan", "op": "eq", "value": "x'); DROP TABLE t; --"},
            {"field": "stage", "op": "in", "value": ["loyalty", "retention"]},
            {"not": {"field": "last_purchase_at", "op": "within_last_days", "value": 30}},
            {"field": "sku", "op": "eq", "value": "sku'); DROP TABLE u; --"},
        ]
    }
    validate(rule)
    compiled = compile_rule(rule)
    assert "DROP" not in compiled.sql and "plan" not in compiled.sql and "loyalty" not in compiled.sql
    assert '"x\'); DROP TABLE t; --"' in compiled.params.values()
    assert ["sku'); DROP TABLE u; --"] in compiled.params.values()


def test_custom_event_type_and_window_are_bound_never_spliced():
    rule = {
        "all": [
            {"field": "event_count", "event_type": "order.shipped", "within_days": 30, "op": "gte", "value": 2},
            {"field": "event_last_at", "event_type": "order.returned", "op": "is_null"},
        ]
    }
    validate(rule)
    compiled = compile_rule(rule)
    assert "shipped" not in compiled.sql and "returned" not in compiled.sql and "30" not in compiled.sql
    assert {"order.shipped", "order.returned", 30} <= set(compiled.params.values())
    assert compiled.sql.count(":now") == 3, "the window and both reads end at the evaluation's now"
