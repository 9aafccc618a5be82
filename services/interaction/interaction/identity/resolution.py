"""Resolves a batch's identifiers to customers in one pass: mints new customers, links new identifiers, merges.

Rules (docs/interaction.md): all identifiers named in one event belong to one customer. Identifiers already
known to two or more customers make them one: the oldest customer (earliest `first_seen_at`, then smallest
id) survives and the others are merged into it, unless a user has undone a merge between the two before.
Rows an event creates belong to the customer its subject resolves to; their home is the subject's home.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from interaction.identity import repository
from interaction.identity.normalise import IdentifierKey
from interaction.ingestion.validation import PartnerEvent


@dataclass(slots=True)
class Resolution:
    customer_of: list[uuid.UUID] = field(default_factory=list)  # per event: the live customer
    home_of: list[uuid.UUID] = field(default_factory=list)  # per event: the home its rows get
    created: dict[uuid.UUID, tuple[str, datetime]] = field(default_factory=dict)  # new id -> (source, first seen)
    # (id, survivor, merged, why, the partners whose events in the batch joined the two)
    merges: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str, list[str]]] = field(default_factory=list)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, x: object) -> object:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent.setdefault(parent, parent)
            self.parent[x] = grand
            x, parent = parent, grand
        return x

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


async def resolve(session: AsyncSession, events: list[PartnerEvent]) -> Resolution:
    all_keys = list(dict.fromkeys(k for e in events for k in e.keys))
    known = await repository.find(session, all_keys)
    first_seen = {cid: seen for cid, _, seen in known.values()}

    uf = _UnionFind()
    for e in events:
        for k in e.keys[1:]:
            uf.union(e.keys[0], k)
    for k, (cid, _, _) in known.items():
        uf.union(k, ("customer", cid))
    members: dict[object, set[uuid.UUID]] = {}
    for cid in first_seen:
        members.setdefault(uf.find(("customer", cid)), set()).add(cid)

    result = Resolution()
    survivor_of: dict[object, uuid.UUID] = {}
    merged_into: dict[uuid.UUID, uuid.UUID] = {}
    contested = [cid for customers in members.values() if len(customers) > 1 for cid in customers]
    blocked = await repository.blocked_pairs(session, contested) if contested else set()
    for root, customers in members.items():
        survivor = min(customers, key=lambda c: (first_seen[c], str(c)))
        survivor_of[root] = survivor
        for other in sorted(customers - {survivor}, key=str):
            if frozenset((survivor, other)) in blocked:
                continue
            merged_into[other] = survivor
            result.merges.append((uuid.uuid4(), survivor, other, "", []))
    if result.merges:
        reasons = _reasons(events, known, result.merges)
        # Every partner with an event in the linked group is named: one of them made the link (the reason says
        # which event), and none of them is left out of the audit.
        partners_of: dict[object, set[str]] = {}
        for e in events:
            partners_of.setdefault(uf.find(e.keys[0]), set()).add(e.envelope.source)
        result.merges = [
            (
                mid,
                s,
                m,
                reasons.get(m, "identifiers linked within one batch"),
                sorted(partners_of.get(uf.find(("customer", m)), ())),
            )
            for mid, s, m, _, _ in result.merges
        ]
    for e in events:  # components with no known customer get one new customer
        root = uf.find(e.keys[0])
        if root not in survivor_of:
            new_id = uuid.uuid4()
            survivor_of[root] = new_id
            result.created[new_id] = (e.envelope.source, e.occurred_at)
        elif survivor_of[root] in result.created:
            source, seen = result.created[survivor_of[root]]
            result.created[survivor_of[root]] = (source, min(seen, e.occurred_at))

    new_identifiers: dict[IdentifierKey, tuple[uuid.UUID, uuid.UUID]] = {}
    for e in events:
        subject = e.keys[0]
        if subject in known:
            cid, home, _ = known[subject]
            customer = merged_into.get(cid, cid)
        elif subject in new_identifiers:
            customer, home = new_identifiers[subject]
        else:
            linked = next((known[k] for k in e.keys if k in known), None)
            if linked is None:
                customer = home = survivor_of[uf.find(subject)]
            else:  # a new partner id for a known customer: it goes where the identifier it came with goes
                customer, home = merged_into.get(linked[0], linked[0]), linked[1]
            new_identifiers[subject] = (customer, home)
        for k in e.keys[1:]:
            if k not in known and k not in new_identifiers:
                new_identifiers[k] = (customer, home)
        result.customer_of.append(customer)
        result.home_of.append(home)

    await repository.insert_customers(session, {cid: seen for cid, (_, seen) in result.created.items()})
    await repository.insert_identifiers(session, new_identifiers)
    await repository.merge(session, result.merges)
    return result


def _reasons(events: list[PartnerEvent], known: dict, merges: list[tuple]) -> dict[uuid.UUID, str]:
    """Per merged customer, the event that tied it to its survivor, for the audit (ids only, no PII)."""
    wanted = {merged: survivor for _, survivor, merged, _, _ in merges}
    reasons: dict[uuid.UUID, str] = {}
    for e in events:
        owners = {known[k][0] for k in e.keys if k in known}
        for merged in owners & wanted.keys():
            if merged not in reasons and wanted[merged] in owners:
                reasons[merged] = f"event {e.envelope.source}/{e.envelope.id} names identifiers of both customers"
    for e in events:
        owners = {known[k][0] for k in e.keys if k in known}
        for merged in wanted.keys() - reasons.keys():
            if owners & {merged, wanted[merged]}:
                reasons[merged] = f"identifiers linked through event {e.envelope.source}/{e.envelope.id}"
    return reasons
