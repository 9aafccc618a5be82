"""The rule language: validation with a readable reason, and compilation to SQL with bound parameters only.

A node is `{"all": [nodes]}`, `{"any": [nodes]}`, `{"not": node}` or a condition
`{"field": F, "op": OP, "value": V}`. Fields come from a whitelist (`FIELDS`, plus `attributes.<name>`), each
with the operators its type allows; values are always bound parameters, never spliced into the SQL. A
condition on a missing value (NULL) is false, and `not` negates that two-valued result.

The custom event fields name the type in the condition: `{"field": "event_count", "event_type": "order.shipped",
"within_days": 30, "op": "gte", "value": 2}` (occurrences in the last 30 days; without `within_days`, all kept) and
`{"field": "event_last_at", "event_type": "order.shipped", "op": "within_last_days", "value": 7}` (the newest
occurrence, a time field). Both read the occurrences up to the evaluation's `:now`.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.problems import DomainError

MAX_DEPTH = 8
MAX_CONDITIONS = 100
MAX_LIST = 1000
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# A registered custom event type's name (interaction's event_types/schemas.py NAME_PATTERN).
EVENT_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}(\.[a-z][a-z0-9_]{0,49}){1,3}$")
MAX_DAYS = 36600


class InvalidDefinition(DomainError):
    status, slug, title = 422, "invalid-definition", "Invalid definition"


# field → (type, SQL expression over `a` = customer_aggregate, `ps` = purchase_summary in the reporting
# currency, `rr` = the customer's row in the latest default-scheme RFM run, `rs` = that row's segment).
FIELDS: dict[str, tuple[str, str]] = {
    "order_count": ("number", "a.order_count"),
    "touchpoint_count": ("number", "a.touchpoint_count"),
    "spend": ("number", "coalesce(ps.total_spend, 0)"),
    "clv": ("number", "a.clv"),
    "p_alive": ("number", "a.p_alive"),
    "rfm_r": ("number", "rr.r"),
    "rfm_f": ("number", "rr.f"),
    "rfm_m": ("number", "rr.m"),
    "value_tier": ("text", "a.value_tier"),
    "stage": ("text", "a.stage"),
    "rfm_segment": ("text", "rs.key"),
    "first_purchase_at": ("time", "a.first_purchase_at"),
    "last_purchase_at": ("time", "a.last_purchase_at"),
    "last_touch_at": ("time", "a.last_touch_at"),
    "segment": ("segment", ""),
    # The latest score the customer gave (feedback without that score is skipped).
    "nps": (
        "number",
        "(SELECT f.nps FROM segmentation.feedback f WHERE f.customer_id = a.customer_id "
        "AND f.nps IS NOT NULL ORDER BY f.occurred_at DESC, f.feedback_id DESC LIMIT 1)",
    ),
    "csat": (
        "number",
        "(SELECT f.csat FROM segmentation.feedback f WHERE f.customer_id = a.customer_id "
        "AND f.csat IS NOT NULL ORDER BY f.occurred_at DESC, f.feedback_id DESC LIMIT 1)",
    ),
    # Facts the customer has any of (customer_fact.kind = the field name): `in`/`eq` = at least one of the values,
    # `not_in`/`ne` = none of them.
    "channel": ("fact", "channel"),
    "partner": ("fact", "partner"),
    "campaign": ("fact", "campaign"),
    "lead_source": ("fact", "lead_source"),
    # Products bought (purchase_line's column): `eq`/`in` = a line of a purchase not cancelled has one of the
    # values; "never bought" is `{"not": ...}`.
    "sku": ("bought", "sku"),
    "category": ("bought", "category"),
    # Occurrences of a custom event type (the condition's `event_type`): how many (in the last `within_days`
    # days, or all), and when the newest happened (null: never). Expressions built per condition (`_event_expr`).
    "event_count": ("event_count", ""),
    "event_last_at": ("event_time", ""),
}
# Keys a condition on these fields has besides field, op and value (the first is required).
EVENT_KEYS = {"event_count": ("event_type", "within_days"), "event_last_at": ("event_type",)}
OPS = {
    "number": {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null"},
    "text": {"eq", "ne", "in", "not_in", "is_null", "is_not_null"},
    "time": {"within_last_days", "not_within_last_days", "before", "after", "is_null", "is_not_null"},
    "attribute": {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"},
    "segment": {"member_of", "not_member_of"},
    "fact": {"eq", "ne", "in", "not_in"},
    "bought": {"eq", "in"},
    # A count is never null (0: none), so the null tests are left out.
    "event_count": {"eq", "ne", "gt", "gte", "lt", "lte", "between"},
    "event_time": {"within_last_days", "not_within_last_days", "before", "after", "is_null", "is_not_null"},
}
COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
NO_VALUE = {"is_null", "is_not_null", "exists", "not_exists"}


@dataclass
class Compiled:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        name = f"r{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidDefinition(f"{where}: value must be a number, got {json.dumps(value)[:40]}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidDefinition(f"{where}: value must be a number, got {json.dumps(value)[:40]}") from None
    # The exponent bound keeps a value like "1e-999999" (finite, tiny) from reaching Postgres `numeric`,
    # which cannot hold it.
    if (
        not number.is_finite()
        or abs(number) > Decimal("1e15")
        or (isinstance(exponent := number.normalize().as_tuple().exponent, int) and exponent < -15)
    ):
        raise InvalidDefinition(f"{where}: value must be a finite number below 1e15, at most 15 decimal places")
    return number


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 200 or "\x00" in value:
        raise InvalidDefinition(f"{where}: value must be a string of 1 to 200 characters (no NUL)")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
        raise InvalidDefinition(f"{where}: value must be a non-empty list of at most {MAX_LIST} items")
    return value


def _scalar(value: Any, where: str) -> str | int | float | bool:
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, bool) or (isinstance(value, int | float) and abs(value) < 1e15 and value == value):
        return value
    raise InvalidDefinition(f"{where}: value must be a string, number or boolean")


def validate(node: Any) -> None:
    """Raises `InvalidDefinition` with the reason (and where) if the tree is not a valid rule."""
    count = [0]
    _validate(node, "$", 1, count)


def _validate(node: Any, where: str, depth: int, count: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise InvalidDefinition(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise InvalidDefinition(f"{where}: a node must be an object with all, any, not or field")
    groups = [k for k in ("all", "any", "not") if k in node]
    if groups:
        if len(node) != 1:
            raise InvalidDefinition(f"{where}: a group node has exactly one key (all, any or not), got {sorted(node)}")
        key = groups[0]
        if key == "not":
            return _validate(node["not"], f"{where}.not", depth + 1, count)
        children = node[key]
        if not isinstance(children, list) or not children:
            raise InvalidDefinition(f"{where}.{key}: must be a non-empty list of nodes")
        for i, child in enumerate(children):
            _validate(child, f"{where}.{key}[{i}]", depth + 1, count)
        return None
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise InvalidDefinition(f"{where}: more than {MAX_CONDITIONS} conditions")
    name, op = node.get("field"), node.get("op")
    extra = EVENT_KEYS.get(name, ()) if isinstance(name, str) else ()
    unknown = set(node) - {"field", "op", "value", *extra}
    if unknown:
        raise InvalidDefinition(
            f"{where}: unknown keys {sorted(unknown)} (a condition has field, op, value{''.join(', ' + k for k in extra)})"
        )
    if not isinstance(name, str):
        raise InvalidDefinition(f"{where}: field is required (one of {sorted(FIELDS)} or attributes.<name>)")
    kind = field_type(name, where)
    if extra:
        _check_event_keys(node, where)
    if op not in OPS[kind]:
        raise InvalidDefinition(f"{where}: operator {op!r} does not apply to {name} ({kind}); use one of {sorted(OPS[kind])}")
    if op in NO_VALUE:
        if "value" in node:
            raise InvalidDefinition(f"{where}: operator {op} takes no value")
        return None
    if "value" not in node:
        raise InvalidDefinition(f"{where}: value is required for operator {op}")
    _check_value(kind, op, node["value"], f"{where}.value")
    return None


def _check_event_keys(node: dict, where: str) -> None:
    event_type = node.get("event_type")
    if not isinstance(event_type, str) or not EVENT_TYPE_NAME.match(event_type):
        raise InvalidDefinition(
            f"{where}.event_type: {node['field']} needs event_type, a custom event type's name "
            f'like "order.shipped" (matching {EVENT_TYPE_NAME.pattern})'
        )
    if "within_days" in node:
        days = node["within_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= MAX_DAYS:
            raise InvalidDefinition(f"{where}.within_days: days must be an integer from 1 to {MAX_DAYS}")


def field_type(name: str, where: str) -> str:
    if name.startswith("attributes."):
        if not ATTRIBUTE_NAME.match(name[len("attributes.") :]):
            raise InvalidDefinition(f"{where}: attribute name must match {ATTRIBUTE_NAME.pattern}")
        return "attribute"
    if name not in FIELDS:
        raise InvalidDefinition(f"{where}: unknown field {name[:60]!r}; use one of {sorted(FIELDS)} or attributes.<name>")
    return FIELDS[name][0]


def _check_value(kind: str, op: str, value: Any, where: str) -> None:
    if kind in ("number", "event_count"):
        if op == "between":
            pair = _list(value, where)
            if len(pair) != 2:
                raise InvalidDefinition(f"{where}: between takes [low, high]")
            low, high = (_number(v, where) for v in pair)
            if low > high:
                raise InvalidDefinition(f"{where}: between needs low <= high")
        elif op in ("in", "not_in"):
            for v in _list(value, where):
                _number(v, where)
        else:
            _number(value, where)
    elif kind in ("text", "segment", "fact", "bought"):
        if op in ("in", "not_in"):
            for v in _list(value, where):
                _text(v, where)
        else:
            _text(value, where)
    elif kind in ("time", "event_time"):
        if op in ("within_last_days", "not_within_last_days"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DAYS:
                raise InvalidDefinition(f"{where}: days must be an integer from 1 to {MAX_DAYS}")
        else:
            try:
                parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None or not 1900 <= parsed.year <= 2200:
                raise InvalidDefinition(f"{where}: value must be an ISO 8601 date-time with an offset, years 1900–2200")
    elif kind == "attribute":
        if op in ("in", "not_in"):
            for v in _list(value, where):
                _scalar(v, where)
        elif op in ("gt", "gte", "lt", "lte"):
            _number(value, where)
        else:
            _scalar(value, where)


def compile_rule(node: dict) -> Compiled:
    """SQL boolean expression over the aliases of `FROM_CLAUSE`; `:now` must be bound by the caller."""
    out = Compiled("")
    out.sql = _compile(node, out)
    return out


def _compile(node: dict, out: Compiled) -> str:
    if "all" in node:
        return "(" + " AND ".join(_compile(c, out) for c in node["all"]) + ")"
    if "any" in node:
        return "(" + " OR ".join(_compile(c, out) for c in node["any"]) + ")"
    if "not" in node:
        return f"(NOT {_compile(node['not'], out)})"
    return f"coalesce(({_condition(node, out)}), false)"


def _condition(node: dict, out: Compiled) -> str:
    name, op = node["field"], node["op"]
    value: Any = node.get("value")  # JSON that `validate` checked against the field's kind and the operator
    if name.startswith("attributes."):
        return _attribute(name[len("attributes.") :], op, value, out)
    kind, expr = FIELDS[name]
    if kind in ("event_count", "event_time"):
        kind, expr = _event_expr(node, out)
    if op == "is_null":
        return f"{expr} IS NULL"
    if op == "is_not_null":
        return f"{expr} IS NOT NULL"
    if kind == "fact":
        values = out.bind(value if isinstance(value, list) else [value])
        exists = (
            f"EXISTS (SELECT 1 FROM segmentation.customer_fact cf WHERE cf.customer_id = a.customer_id "
            f"AND cf.kind = '{expr}' AND cf.value = ANY(CAST({values} AS text[])))"
        )
        return exists if op in ("eq", "in") else f"NOT {exists}"
    if kind == "bought":
        # A cancelled order (its refund says so) was not bought; a partial refund leaves the purchase standing.
        values = out.bind(value if isinstance(value, list) else [value])
        return (
            f"EXISTS (SELECT 1 FROM segmentation.purchase_line pl WHERE pl.customer_id = a.customer_id "
            f"AND pl.{expr} = ANY(CAST({values} AS text[])) AND NOT EXISTS (SELECT 1 FROM "
            f"segmentation.purchase_refund rf WHERE rf.purchase_id = pl.purchase_id AND rf.cancelled))"
        )
    if kind == "segment":
        keys = out.bind(value if isinstance(value, list) else [value])
        exists = (
            "EXISTS (SELECT 1 FROM segmentation.segment_membership sm JOIN segmentation.segment sg "
            "ON sg.segment_id = sm.segment_id WHERE sm.customer_id = a.customer_id AND sm.left_at IS NULL "
            f"AND sg.key = ANY(CAST({keys} AS text[])))"
        )
        return exists if op == "member_of" else f"NOT {exists}"
    if kind == "time":
        if op in ("within_last_days", "not_within_last_days"):
            days = out.bind(int(value))
            inside = f"{expr} >= CAST(:now AS timestamptz) - make_interval(days => CAST({days} AS int))"
            return inside if op == "within_last_days" else f"{expr} IS NOT NULL AND NOT ({inside})"
        at = out.bind(datetime.fromisoformat(value))
        return f"{expr} {'<' if op == 'before' else '>'} CAST({at} AS timestamptz)"
    cast = "numeric" if kind == "number" else "text"
    if op == "between":
        low, high = out.bind(Decimal(str(value[0]))), out.bind(Decimal(str(value[1])))
        return f"{expr} BETWEEN CAST({low} AS numeric) AND CAST({high} AS numeric)"
    if op in ("in", "not_in"):
        items = out.bind([Decimal(str(v)) if kind == "number" else v for v in value])
        test = f"{expr} = ANY(CAST({items} AS {cast}[]))"
        return test if op == "in" else f"{expr} IS NOT NULL AND NOT ({test})"
    bound = out.bind(Decimal(str(value)) if kind == "number" else value)
    return f"{expr} {COMPARE[op]} CAST({bound} AS {cast})"


def _event_expr(node: dict, out: Compiled) -> tuple[str, str]:
    """The (type, SQL expression) of a custom event field: the count or the newest time of the customer's
    occurrences of `event_type` up to `:now` (an occurrence dated after the evaluation's now has not happened yet)."""
    event_type = out.bind(node["event_type"])
    where = (
        f"ce.customer_id = a.customer_id AND ce.event_type = CAST({event_type} AS text) "
        "AND ce.occurred_at <= CAST(:now AS timestamptz)"
    )
    if node["field"] == "event_last_at":
        return "time", f"(SELECT max(ce.occurred_at) FROM segmentation.custom_event ce WHERE {where})"
    if "within_days" in node:
        days = out.bind(int(node["within_days"]))
        where += f" AND ce.occurred_at >= CAST(:now AS timestamptz) - make_interval(days => CAST({days} AS int))"
    return "number", f"(SELECT count(*) FROM segmentation.custom_event ce WHERE {where})"


def _attribute(name: str, op: str, value: Any, out: Compiled) -> str:
    key = out.bind(name)
    # A removed attribute is stored as a JSON null (profiles/projection.py): absent to every operator.
    ref = f"nullif(a.attributes -> CAST({key} AS text), 'null'::jsonb)"
    if op == "exists":
        return f"{ref} IS NOT NULL"
    if op == "not_exists":
        return f"{ref} IS NULL"
    if op in ("gt", "gte", "lt", "lte"):
        # Only numeric attributes compare; the CASE keeps a text value from ever reaching the cast.
        bound = out.bind(Decimal(str(value)))
        number = f"CASE WHEN jsonb_typeof({ref}) = 'number' THEN CAST(({ref}) #>> '{{}}' AS numeric) END"
        return f"{number} {COMPARE[op]} CAST({bound} AS numeric)"
    if op in ("in", "not_in"):
        items = out.bind([json.dumps(v) for v in value])
        test = f"{ref} = ANY(CAST({items} AS jsonb[]))"
        return test if op == "in" else f"{ref} IS NOT NULL AND NOT ({test})"
    bound = out.bind(json.dumps(value))
    return f"{ref} {COMPARE[op]} CAST({bound} AS jsonb)"


def uses_rfm(node: dict) -> bool:
    text = json.dumps(node)
    return any(f'"{f}"' in text for f in ("rfm_r", "rfm_f", "rfm_m", "rfm_segment"))
