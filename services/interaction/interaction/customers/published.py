"""`customer.updated`: the customer's published profile as a whole, in interaction's order.

Each event carries every attribute the customer holds (bar PII-looking names) and its current consent, with a
`version` from `profile_version_seq`. Copies keep the state with the greatest version (shared/contracts/
ordering.py), so they converge on interaction's profile whatever order the events arrive in, merges and
unmerges included: both publish the new profile of every customer they change. Before, the event carried the
changed attributes only and a copy merged them in arrival order, which a merge can reorder (the update of a
merged-away id, keyed by that id, can arrive after the merge, keyed by its survivor) and an unmerge cannot
undo (the fills it takes back were never published).

Every writer of a customer's properties (ingestion, merge, unmerge, erasure) holds the identity lock to its
commit, so versions drawn under it increase in commit order.
"""

import uuid
from datetime import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import interaction as contracts
from shared.contracts.envelope import Envelope

from interaction.customers.schemas import ProfileState

# Attribute names that usually hold PII: kept in the profile, never published in `customer.updated`.
PII_ATTRIBUTE_HINTS = (
    "name",
    "email",
    "mail",
    "phone",
    "mobile",
    "address",
    "street",
    "city",
    "zip",
    "postal",
    "birth",
    "dob",
    "ssn",
    "passport",
    "iban",
    "card",
    "ip_",
    "ipaddress",
    "gender",
)

# The profile's two parts as JSON text, for the customer `c`.
PROFILE_COLUMNS = """
       CAST(coalesce((SELECT jsonb_object_agg(p.key, p.value) FROM interaction.customer_property p
                      WHERE p.customer_id = c.id AND p.kind = 'attribute'), '{}') AS text) AS attributes,
       CAST(coalesce((SELECT jsonb_object_agg(p.key, p.value) FROM interaction.customer_property p
                      WHERE p.customer_id = c.id AND p.kind = 'consent'), '{}') AS text) AS consent"""

# One round trip: a new version, kept on the customer (what the state route answers), and the whole profile.
PROFILES = sa.text(f"""
WITH c AS (
    UPDATE interaction.customer c SET profile_version = nextval('interaction.profile_version_seq')
    FROM unnest(CAST(:ids AS uuid[])) AS u(id) WHERE c.id = u.id
    RETURNING c.id, c.profile_version
)
SELECT c.id AS customer_id, c.profile_version AS version, {PROFILE_COLUMNS}
FROM c
""")

# The profile state route: every live customer with a published profile, in id order, after `after` or of `ids`.
PROFILE_STATES = sa.text(f"""
SELECT c.id AS customer_id, c.profile_version AS version, {PROFILE_COLUMNS}
FROM interaction.customer c
WHERE c.profile_version IS NOT NULL AND c.merged_into IS NULL AND c.erased_at IS NULL
  AND (CAST(:after AS uuid) IS NULL OR c.id > CAST(:after AS uuid))
  AND (CAST(:ids AS uuid[]) IS NULL OR c.id = ANY(CAST(:ids AS uuid[])))
ORDER BY c.id LIMIT :limit
""")


def publishable_attributes(attributes: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in attributes.items() if not any(h in k.lower() for h in PII_ATTRIBUTE_HINTS)}


async def profile_updates(session: AsyncSession, changes: dict[uuid.UUID, tuple[str, datetime]]) -> list[Envelope]:
    """One `customer.updated` per customer, with its profile as this transaction leaves it: `changes` maps each
    to (the source of the change, when it happened). The caller holds the identity lock."""
    if not changes:
        return []
    out = []
    for r in await session.execute(PROFILES, {"ids": list(changes)}):
        source, at = changes[r.customer_id]
        payload = contracts.CustomerUpdated(
            customer_id=r.customer_id,
            source=source,
            attributes=publishable_attributes(orjson.loads(r.attributes)),
            consent={k: bool(v) for k, v in orjson.loads(r.consent).items()},
            updated_at=at,
            version=r.version,
        )
        out.append(Envelope.wrap(payload, source=contracts.SOURCE, subject=str(r.customer_id)))
    return out


async def profile_states(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, customer_ids: list[uuid.UUID] | None
) -> list[ProfileState]:
    """The published profile of each live customer that has one, with its version: what every copy of
    `customer.updated` must converge to. In customer id order, after `after` (or of the given customers)."""
    rows = await session.execute(PROFILE_STATES, {"after": after, "limit": limit, "ids": customer_ids or None})
    return [
        ProfileState(
            customer_id=r.customer_id,
            attributes=publishable_attributes(orjson.loads(r.attributes)),
            consent={k: bool(v) for k, v in orjson.loads(r.consent).items()},
            version=r.version,
        )
        for r in rows
    ]
