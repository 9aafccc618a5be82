"""Value formats of partner events, as types that validate and describe themselves in the JSON Schema.

Each rule the ingestion enforces on a value is here once, so the AsyncAPI document a partner builds against
says what the services check: money as a decimal string, ISO 4217 currencies (the `iso4217` package's list,
updated with the standard), E.164 phones whose lengths fit their country code, flat attribute values.
"""

from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import iso4217
from pydantic import AfterValidator, Field, WithJsonSchema

# Every string of an event may hold any character but NUL (Postgres text and jsonb cannot store it). The AsyncAPI
# generator adds this pattern to strings that have no stricter pattern or format (docs/interaction.md).
NO_NUL = "^[^\\u0000]*$"

# Blank: the characters Python's str.isspace() and ECMAScript's `\s` call white space, listed so the ingestion's
# check and a partner's JSON Schema validator (Ajv, jsonschema) agree on every character.
_BLANK = "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
# A required id (the envelope's `subject`): not blank, no NUL.
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_BLANK}][^\\u0000]*$"

CURRENCIES: tuple[str, ...] = tuple(sorted(c.value for c in iso4217.Currency))
_CURRENCY_SET = frozenset(CURRENCIES)


def _currency(code: str) -> str:
    if code not in _CURRENCY_SET:
        raise ValueError(f"{code[:10]!r} is not an ISO 4217 currency code")
    return code


Currency = Annotated[
    str,
    AfterValidator(_currency),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(CURRENCIES),
            "examples": ["EUR"],
            "description": "ISO 4217 alphabetic code (the current list); anything else is rejected.",
        }
    ),
]

# 14 significant digits, at most 4 after the point (numeric(14,4) in the stores), never negative.
AMOUNT_PATTERN = "^[0-9]{1,10}(\\.[0-9]{1,4})?$"
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=4),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "examples": ["59.90"],
            "description": "A decimal string, minimum 0: up to 10 digits before the point and 4 after (a JSON number "
            "is accepted too, but a string keeps every digit).",
        }
    ),
]

EMAIL_MAX = 320
Email = Annotated[
    str,
    Field(max_length=EMAIL_MAX),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": EMAIL_MAX,
            "examples": ["ada@example.com"],
            "description": "An email address (local part, `@`, a domain with a dot); matched case-insensitively.",
        }
    ),
]


@cache
def phone_pattern() -> str:
    """E.164 numbers whose national part has a length libphonenumber deems possible for the country code.

    It is what the ingestion's check (`phonenumbers.is_possible_number`) accepts, written as a regex so a
    partner's validator can apply it; national numbers start 1–9 (a leading 0 is a trunk prefix)."""
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for code, regions in sorted(COUNTRY_CODE_TO_REGION_CODE.items()):
        meta = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        if meta is None or meta.general_desc is None:
            continue
        lengths = tuple(sorted(n for n in meta.general_desc.possible_length or () if n > 0))
        if lengths:
            by_lengths.setdefault(lengths, []).append(str(code))
    branches = []
    for lengths, codes in sorted(by_lengths.items()):
        national = "|".join(f"[1-9][0-9]{{{n - 1}}}" for n in lengths if len(codes[0]) + n <= 15)
        if national:
            branches.append(f"(?:{'|'.join(codes)})(?:{national})")
    return "^\\+(?:" + "|".join(branches) + ")$"


PHONE_MAX = 40
Phone = Annotated[
    str,
    Field(max_length=PHONE_MAX),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": PHONE_MAX,
            "x-pattern": "phone",
            "examples": ["+442079460958"],
            "description": "E.164: `+`, the country code and a national number of a length possible for that country. "
            "Spaced or dashed forms with the country code (`+44 20 7946 0958`) are accepted and stored "
            "in E.164; a number without its country code is rejected.",
        }
    ),
]

# Attribute values are flat: a string, a number, a boolean or null (ISO 8601 strings are typed `date`). The
# ingestion checks them itself (interaction.ingestion.validation.attribute_type) so a value no store can hold (a
# lone surrogate, NUL) is reported as such; this type carries the same rules into the JSON Schema.
ATTRIBUTE_KEY_MAX, ATTRIBUTE_VALUE_MAX, ATTRIBUTES_MAX = 100, 2000, 200
NUMBER_BOUND = 9.2e18  # inside a signed 64-bit integer, which every store and encoder holds
Attributes = Annotated[
    dict[str, Any],
    Field(max_length=ATTRIBUTES_MAX),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": ATTRIBUTES_MAX,
            "propertyNames": {"minLength": 1, "maxLength": ATTRIBUTE_KEY_MAX},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": ATTRIBUTE_VALUE_MAX},
                    {"type": "number", "minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
            "examples": [{"tier": "gold", "visits": 12, "vip": True, "birthday": "1990-04-01"}],
            "description": f"Custom properties, flat: keys of 1–{ATTRIBUTE_KEY_MAX} characters, values a string (≤ "
            f"{ATTRIBUTE_VALUE_MAX:,} characters; ISO 8601 dates are typed `date`), a number (within "
            f"±{NUMBER_BOUND:.1e}), a boolean or null. Objects and arrays are rejected.",
        }
    ),
]


# A field an event type does not list: ignored by the CRM (producers may add fields), but it must still be
# storable. The schema is a flat subset of what is accepted (values nest up to 32 levels, integers up to 64 bits).
EXTRA_SCALAR: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number", "minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
EXTRA_FIELD: dict[str, Any] = {
    "description": "A field this version does not define: ignored, and kept with the event. Any JSON value the "
    "stores hold: no NUL in strings or keys, integers within 64 bits, at most 32 levels deep.",
    "anyOf": [
        EXTRA_SCALAR,
        {"type": "array", "items": EXTRA_SCALAR},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": EXTRA_SCALAR},
    ],
}


def resolve_placeholders(schema: dict[str, Any]) -> None:
    """Puts the phone pattern in place of its placeholder: building it loads every country's metadata (~1 s,
    12 MB), which only the document generator should pay, not every service importing the contracts."""
    if schema.pop("x-pattern", None) == "phone":
        schema["pattern"] = phone_pattern()
