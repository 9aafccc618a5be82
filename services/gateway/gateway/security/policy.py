"""The role-by-route policy: one function, decided on the method and path before any routing.

- open: health, metrics, `/docs`, `/openapi.json`, `/asyncapi`;
- admin: everything;
- frontend: every data route except key management (`/v1/api-keys`), event ingestion (`POST /v1/events`),
  changes to the partner registry (a partner's `trust_contact_linking` is a security setting), changes to
  clv's cost settings (`/v1/value/profitability/settings`: they change every customer's profit) and registering
  custom event types (`POST /v1/event-types`: what every partner may send);
- analyst: GET (and HEAD) on the same routes as frontend, and the POSTs that only read (`READ_ONLY_POSTS`, and
  starting a segment's CSV export job, `POST /v1/segments/{id}/exports`: it reads what an analyst may GET);
- partner: `POST /v1/events` only (and only events whose `source` is its partner id, checked by the proxy).
"""

import re

from gateway.security.principal import Role

OPEN_EXACT = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/asyncapi", "/asyncapi.json", "/metrics"}
OPEN_PREFIXES = ("/health/",)
READ_METHODS = {"GET", "HEAD"}
# POSTs that change nothing (a body too rich for a query string): an analyst may send them.
READ_ONLY_POSTS = {"/v1/segments/preview"}
# An export job only reads a segment (its members or history, which an analyst may GET or stream anyway).
READ_ONLY_POST_PATTERNS = (re.compile(r"^/v1/segments/[^/]+/exports$"),)


def is_open(method: str, path: str) -> bool:
    return path in OPEN_EXACT or path.startswith(OPEN_PREFIXES)


def is_key_management(path: str) -> bool:
    return path == "/v1/api-keys" or path.startswith("/v1/api-keys/")


def is_ingestion(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/") == "/v1/events"


def is_partner_registry_change(method: str, path: str) -> bool:
    return method not in READ_METHODS and (path == "/v1/partners" or path.startswith("/v1/partners/"))


def is_cost_settings_change(method: str, path: str) -> bool:
    settings = "/v1/value/profitability/settings"
    return method not in READ_METHODS and (path.rstrip("/") == settings or path.startswith(settings + "/"))


def is_event_type_change(method: str, path: str) -> bool:
    return method not in READ_METHODS and (path == "/v1/event-types" or path.startswith("/v1/event-types/"))


def allowed(role: Role, method: str, path: str) -> bool:
    if role is Role.ADMIN:
        return True
    if role is Role.PARTNER:
        return is_ingestion(method, path)
    if (
        is_key_management(path)
        or is_ingestion(method, path)
        or is_partner_registry_change(method, path)
        or is_cost_settings_change(method, path)
        or is_event_type_change(method, path)
    ):
        return False
    if role is Role.FRONTEND:
        return True
    return method in READ_METHODS or (method == "POST" and is_read_only_post(path.rstrip("/")))  # analyst


def is_read_only_post(path: str) -> bool:
    return path in READ_ONLY_POSTS or any(p.match(path) for p in READ_ONLY_POST_PATTERNS)
