"""Segment members with contact details: segmentation's page, plus name and email from the gateway's copy of
the profile where the customer's consent allows it.

Segmentation holds no PII (the events it consumes carry none, by design), so it cannot list names; the
gateway already holds interaction's profile part per customer (gateway/customer_view, erased on
`customer.erased`), so it composes: it forwards the page request to segmentation as the caller, then reads
the page's profiles (the copy where fresh, else interaction, as the 360° view does) and adds

- `name`: the profile attribute `name` (or `full_name`), else `first_name` and `last_name` joined;
- `email`: the profile's first `email` identifier;

both only when the profile's consent `email_marketing` (CONTACT_CONSENT) is granted, and only to a role the
policy lets read the customer's profile. Otherwise both are null and `contact_withheld` says why. The page
(`items` order, `next_cursor`, every field segmentation sends) is passed on as segmentation answered it.
"""

import uuid
from typing import Any

import orjson

from shared.internal_auth import Caller

from gateway.customer_view.service import CustomerViews, Part
from gateway.security import policy
from gateway.security.principal import Principal
from gateway.upstream import UpstreamResponse, Upstreams

# The consent purpose that allows showing a member's name and email (the partners send it as `email_marketing`
# in customer.identified / consent.changed).
CONTACT_CONSENT = "email_marketing"
# Why a member's name and email are null.
NOT_PERMITTED = "not-permitted"  # the caller's role may not read customer profiles
NO_CONSENT = "no-consent"  # the profile holds no granted CONTACT_CONSENT
ERASED = "erased"  # the customer's PII was erased
NO_PROFILE = "no-profile"  # interaction knows no such customer, or could not answer and no copy is held


def may_read_profiles(principal: Principal) -> bool:
    """A role that may not read a customer's profile gets no name or email here either."""
    return policy.allowed(principal.role, "GET", "/v1/customers/{customer_id}")


def contact(part: Part | None) -> tuple[str | None, str | None, str | None]:
    """(name, email, why withheld) from a profile part."""
    if part is None or part.status != 200:
        return None, None, NO_PROFILE
    profile = orjson.loads(part.body)
    if profile.get("erased_at"):
        return None, None, ERASED
    consent = (profile.get("consent") or {}).get(CONTACT_CONSENT) or {}
    if consent.get("granted") is not True:
        return None, None, NO_CONSENT
    return _name(profile.get("attributes") or {}), _email(profile.get("identifiers") or []), None


def _text(attributes: dict[str, Any], key: str) -> str | None:
    value = (attributes.get(key) or {}).get("value")
    return (value.strip() or None) if isinstance(value, str) else None


def _name(attributes: dict[str, Any]) -> str | None:
    if full := _text(attributes, "name") or _text(attributes, "full_name"):
        return full
    parts = [p for p in (_text(attributes, "first_name"), _text(attributes, "last_name")) if p]
    return " ".join(parts) or None


def _email(identifiers: list[dict[str, Any]]) -> str | None:
    return next((i.get("external_id") for i in identifiers if i.get("kind") == "email"), None)


async def members_page(
    upstreams: Upstreams, views: CustomerViews, principal: Principal, segment_id: uuid.UUID, query: str
) -> UpstreamResponse | bytes:
    """The composed page (JSON bytes), or segmentation's answer as it is when it is not a page (404, 400…)."""
    caller: Caller = principal.caller
    resp = await upstreams.request("segmentation", "GET", f"/v1/segments/{segment_id}/members", caller=caller, query=query)
    if resp.status != 200:
        return resp
    page = orjson.loads(resp.body)
    items = page.get("items") or []
    if may_read_profiles(principal):
        ids = list(dict.fromkeys(uuid.UUID(m["customer_id"]) for m in items))
        profiles = await views.profiles(ids, caller)
        for m in items:
            m["name"], m["email"], m["contact_withheld"] = contact(profiles.get(uuid.UUID(m["customer_id"])))
    else:
        for m in items:
            m["name"], m["email"], m["contact_withheld"] = None, None, NOT_PERMITTED
    return orjson.dumps(page)
