"""Identifier normalisation: emails lower-cased and trimmed, phones in E.164 (the `phonenumbers` library)."""

import phonenumbers

from shared.contracts.envelope import InvalidEvent

EMAIL, PHONE, SOURCE = "email", "phone", "source"
IdentifierKey = tuple[str, str, str]  # (kind, source, external id); source is '' for email and phone


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email:
        raise InvalidEvent(f"identifiers.email: {raw!r:.80} is not an email address")
    return email


def normalise_phone(raw: str) -> str:
    """E.164; numbers must carry their country code (`+44 …`), as partners serve many countries."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidEvent(f"identifiers.phone: {raw!r:.60} is not a phone number with a country code") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidEvent(f"identifiers.phone: {raw!r:.60} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def source_key(source: str, external_id: str) -> IdentifierKey:
    return (SOURCE, source, external_id)
