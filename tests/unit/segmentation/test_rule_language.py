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
    ({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"field": "stage", "op": "is_null"}}}}}}}}},
     "nested deeper than 8"),
    ({"any": [{"field": "order_count", "op": "gt", "value": i} for i in range(101)]}, "more than 100 conditions"),
]


@pytest.mark.parametrize(("definition", "reason"), INVALID)
def test_invalid_definitions_are_rejected_with_the_reason(definition, reason):
    with pytest.raises(InvalidDefinition) as caught:
        validate(definition)
    assert reason in caught.value.detail


def test_values_and_attribute_names_are_bound_never_spliced():
    rule = {"all": [{"field": "attributes.plan", "op": "eq", "value": "x'); DROP TABLE t; --"},
                    {"field": "stage", "op": "in", "value": ["loyalty", "retention"]},
                    {"not": {"field": "last_purchase_at", "op": "within_last_days", "value": 30}},
                    {"field": "sku", "op": "eq", "value": "sku'); DROP TABLE u; --"}]}
    validate(rule)
    compiled = compile_rule(rule)
    assert "DROP" not in compiled.sql and "plan" not in compiled.sql and "loyalty" not in compiled.sql
    assert '"x\'); DROP TABLE t; --"' in compiled.params.values()
    assert ["sku'); DROP TABLE u; --"] in compiled.params.values()
