from dataclasses import dataclass, field
from enum import StrEnum

from shared.internal_auth import Caller


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
    # What the services are told about this principal, in the token the gateway signs for them.
    caller: Caller = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "caller", Caller(self.id, self.role.value, self.partner_id))


PRINCIPAL_SCOPE_KEY = "crm.principal"
