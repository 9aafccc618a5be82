"""Which service owns a path: the URL ownership table agreed between the teams, matched by prefix.

A route a service adds under its prefixes is proxied without touching the gateway. More specific rules come
first (`/v1/customers/{id}/value` belongs to clv; the rest of `/v1/customers` to interaction).
"""

import re

_SEG = r"[^/]+"
OWNERSHIP: list[tuple[str, str]] = [
    (rf"^/v1/customers/{_SEG}/(segmentation|segments)(/|$)", "segmentation"),
    (rf"^/v1/customers/{_SEG}/(value|propositions)(/|$)", "clv"),
    (rf"^/v1/customers/{_SEG}/(lifecycle|deals)(/|$)", "lifecycle"),
    (r"^/v1/(customers|events|event-types|merges|partners|satisfaction)(/|$)", "interaction"),
    (r"^/v1/(segments|segmentation)(/|$)", "segmentation"),
    (r"^/v1/(value|propositions)(/|$)", "clv"),
    (r"^/v1/(lifecycle|pipelines|deals|campaigns)(/|$)", "lifecycle"),
]
_COMPILED = [(re.compile(pattern), service) for pattern, service in OWNERSHIP]
# The gateway's own routes; never proxied.
GATEWAY_PREFIXES = ("/v1/api-keys", "/v1/webhooks")


def owner(path: str) -> str | None:
    """The service that owns `path`, or None (the gateway's own path, or nobody's)."""
    if path.startswith(GATEWAY_PREFIXES):
        return None
    for pattern, service in _COMPILED:
        if pattern.match(path):
            return service
    return None
