"""Redacting an erased customer's events: what of an event's data can carry personal data, and its replacement.

Erasure (R8) must leave no personal data of the customer in any stored payload. Only the interaction
service knows the customer's PII values, and free text holds anything (`note`, a refund's `reason`, a deal's
`owner`, an order id that happens to be an email), so the payload is redacted by its shape, not by a search:

- every optional free-text field of the event's contract (typed `str`, or a map or list of it: reasons,
  owners, summaries, campaigns, attribute values…) is dropped; a required one (an order or deal id the
  partner made up, a merge's reason) is replaced by a token, `erased:<hash>`, so the event stays valid;
- what the contract types as something else (uuids, amounts, times, enums, numbers, booleans) stays, and so
  do the few `str` fields that classify rather than describe (`STRUCTURAL`: currency, channel, stage…);
- fields the contract does not know (partners may send extra fields) are dropped.

The token is an HMAC of the value under a key made for one erasure and then forgotten: within the erasure
equal values map to equal tokens (an order id in the purchase row and in the event that recorded it stay
one order; unique constraints hold), and nobody can map a token back to the value or recognise it later.
"""

import hashlib
import hmac
import secrets
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from shared.contracts.clv import CLV_EVENT_TYPES
from shared.contracts.interaction import INTERACTION_EVENT_TYPES
from shared.contracts.lifecycle import LIFECYCLE_EVENT_TYPES
from shared.contracts.partner import PARTNER_EVENT_TYPES
from shared.contracts.segmentation import SEGMENTATION_EVENT_TYPES

TOKEN_PREFIX = "erased:"
# `str` fields that name a category the system defines or a partner, never a person.
STRUCTURAL = frozenset(
    {
        "source",
        "currency",
        "channel",
        "direction",
        "pipeline",
        "stage",
        "from_stage",
        "to_stage",
        "status",
        "tier",
        "previous_tier",
        "segment_key",
        "segment_name",
        "kind",
        "change",
        "model_version",
        "type",
    }
)
DOMAIN_EVENT_TYPES: Mapping[str, type[BaseModel]] = {
    **INTERACTION_EVENT_TYPES,
    **SEGMENTATION_EVENT_TYPES,
    **CLV_EVENT_TYPES,
    **LIFECYCLE_EVENT_TYPES,
}
Tokenizer = Callable[[str], str]


def tokenizer(key: bytes | None = None) -> Tokenizer:
    """A fresh tokenizer: the same value gives the same token for as long as this tokenizer lives."""
    secret = key or secrets.token_bytes(32)

    def token(value: str) -> str:
        if value.startswith(TOKEN_PREFIX):
            return value  # already redacted (a second erasure of a merged-away customer's rows)
        return TOKEN_PREFIX + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:24]

    return token


def redact_event_data(
    event_type: str, data: dict[str, Any], token: Tokenizer, models: Mapping[str, type[BaseModel]] | None = None
) -> dict[str, Any]:
    """The event's data with every free-text field tokenised and unknown fields dropped.

    `models`: the contracts to read the event type in; by default the domain events (the four topics the
    services publish). Partner events (the timeline stores them) pass `PARTNER_EVENT_TYPES`.
    """
    model = (models if models is not None else DOMAIN_EVENT_TYPES).get(event_type)
    return _model(model, data, token)


def redact_partner_data(event_type: str, data: dict[str, Any], token: Tokenizer) -> dict[str, Any]:
    return redact_event_data(event_type, data, token, PARTNER_EVENT_TYPES)


def _model(model: type[BaseModel] | None, data: dict[str, Any], token: Tokenizer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if model is None:  # no contract to read it in: every string but the structural ones is a token
            out[key] = _value(Any, key, value, token)
            continue
        field = model.model_fields.get(key)
        if field is None:
            continue  # not in the contract: nothing says it is not personal
        annotation = _strip_optional(field.annotation)
        if key not in STRUCTURAL and not field.is_required() and _holds_free_text(annotation):
            continue  # optional free text (a summary, a reason, an owner, attribute values): it goes
        out[key] = _value(annotation, key, value, token)
    return out


def _value(annotation: Any, key: str, value: Any, token: Tokenizer) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(value, dict):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return _model(annotation, value, token)
        inner = typing.get_args(annotation)[1] if origin is dict and len(typing.get_args(annotation)) == 2 else Any
        # Keys of a map (attribute names, consent purposes) are the system's words; the values are not.
        return {k: _value(inner, "", v, token) for k, v in value.items()}
    if isinstance(value, list):
        inner = typing.get_args(annotation)[0] if origin in (list, tuple, set) and typing.get_args(annotation) else Any
        return [_value(inner, key, v, token) for v in value]
    if not isinstance(value, str):
        return value
    if key in STRUCTURAL or not _free_text(annotation):
        return value
    # Required free text (an order or deal id, a merge's reason): a token keeps the event valid and joinable.
    return token(value)


def _holds_free_text(annotation: Any) -> bool:
    """Free text itself, or a map or list of it (not a list of models: those are redacted field by field)."""
    if _free_text(annotation):
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict and len(args) == 2:
        return _holds_free_text(_strip_optional(args[1]))
    if typing.get_origin(annotation) in (list, tuple, set) and args:
        return _free_text(_strip_optional(args[0]))
    return False


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _free_text(annotation: Any) -> bool:
    """Whether a string under this annotation can be anything a partner or user typed."""
    if annotation is str or annotation is Any:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_free_text(a) for a in typing.get_args(annotation))
    return False
