from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    FRONTEND = "frontend"
    ANALYST = "analyst"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key, the bootstrap admin key or a JWT subject."""

    id: str
    role: Role
    kind: str  # "api_key" | "bootstrap" | "jwt"
    partner_id: str | None = None
    rate_limit_per_s: float | None = None


PRINCIPAL_SCOPE_KEY = "crm.principal"
