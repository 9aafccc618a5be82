"""Consumes `interaction.events` and `clv.events` into per-customer facts, then re-derives the touched customers.

Per batch, set-based: the events become fact rows (one per event and kind, inserted once: a redelivered or
duplicate event adds nothing), identity events fold, restore or erase facts, deals move, and every customer
the batch touched is derived again: from the state kept with its stage when its new facts only extend its
history, else from its whole sorted history. Either way the stage is the one the sorted history gives, so it
never depends on arrival order.
"""

import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.envelope import by_event_type
from shared.contracts.identity import placement_lock_sql
from shared.contracts.interaction import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUnmerged,
    DealUpdated,
    FeedbackRecorded,
    LeadCaptured,
    PurchaseRecorded,
    PurchaseRefunded,
)
from shared.contracts.interaction import home as home_of
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox

from lifecycle.campaigns import projection as campaigns
from lifecycle.customers import repository as customers_repo
from lifecycle.customers import service as customers
from lifecycle.pipelines import service as deals
from lifecycle.rules.engine import Fact, FactKind
from lifecycle.stages import repository, service

EVENT_TYPES = by_event_type(
    CustomerCreated,
    LeadCaptured,
    DealUpdated,
    PurchaseRecorded,
    PurchaseRefunded,
    FeedbackRecorded,
    CustomerMerged,
    CustomerUnmerged,
    CustomerErased,
    CustomerValueUpdated,
)


def facts_of(e: ConsumedEvent, deal_is_open: Callable[[DealUpdated], bool]) -> list[tuple[uuid.UUID, Fact, dict]]:
    """The facts one event contributes: (the customer it came in under, fact, extra data to keep)."""
    p, src, eid = e.payload, e.envelope.source, e.envelope.id
    match p:
        # Interaction's facts name their home (shared/contracts/identity.py); others stand for their customer.
        case PurchaseRecorded():
            home = home_of(p)
            return [
                (
                    home,
                    Fact(FactKind.PURCHASE, p.occurred_at, src, eid, purchase_id=str(p.purchase_id)),
                    {"amount": str(p.amount), "currency": p.currency},
                )
            ]
        case PurchaseRefunded():
            home = home_of(p)
            # Every refund lowers the net spend; a cancellation also takes the purchase out of the rules.
            refund = (
                home,
                Fact(FactKind.REFUND, p.occurred_at, src, eid, purchase_id=str(p.purchase_id)),
                {"amount": str(p.amount), "currency": p.currency},
            )
            if not p.cancelled:
                return [refund]
            return [refund, (home, Fact(FactKind.CANCELLATION, p.occurred_at, src, eid, purchase_id=str(p.purchase_id)), {})]
        case LeadCaptured():
            kind = FactKind.QUALIFIED_LEAD if p.qualified else FactKind.LEAD
            out: list[tuple[uuid.UUID, Fact, dict]] = [(p.customer_id, Fact(kind, p.occurred_at, src, eid), {})]
            if p.referred_by_customer_id and p.referred_by_customer_id != p.customer_id:
                out.append((p.referred_by_customer_id, Fact(FactKind.REFERRAL, p.occurred_at, src, eid), {}))
            return out
        case DealUpdated() if deal_is_open(p):
            return [(p.customer_id, Fact(FactKind.DEAL_OPEN, p.occurred_at, src, eid), {})]
        case FeedbackRecorded() if p.nps is not None:
            return [(home_of(p), Fact(FactKind.FEEDBACK, p.occurred_at, src, eid, nps=p.nps), {})]
        case CustomerValueUpdated():
            # clv's version is kept with the fact: `reconcile` compares the newest one with clv's state.
            return [
                (
                    p.customer_id,
                    Fact(FactKind.VALUE, p.as_of, src, eid, tier=p.tier, probability_alive=p.probability_alive),
                    {"version": p.version} if p.version is not None else {},
                )
            ]
    return []


# Replicas apply batches side by side: one with a merge, unmerge or erasure runs alone (shared/contracts/identity.py),
# else a merge's move misses the facts another replica is inserting at the customer from before it.
PLACEMENT_LOCK = {exclusive: sa.text(placement_lock_sql("lifecycle.facts", exclusive)) for exclusive in (False, True)}
IDENTITY_TYPES = (CustomerMerged, CustomerUnmerged, CustomerErased)


def facts_subscription(outbox: Outbox) -> Subscription:
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        await session.execute(PLACEMENT_LOCK[any(isinstance(e.payload, IDENTITY_TYPES) for e in events)])
        touched: set[uuid.UUID] = set()
        await customers.apply(session, events)
        await campaigns.apply(session, events)
        deal_events = [e for e in events if isinstance(e.payload, DealUpdated)]
        if deal_events:  # a partner's deal about a customer erased before it arrived opens nothing (its facts go too)
            deals_of = {e.envelope.id: e.payload.customer_id for e in deal_events if isinstance(e.payload, DealUpdated)}
            erased = await customers_repo.erased_among(session, list(deals_of.values()))
            deal_events = [e for e in deal_events if deals_of[e.envelope.id] not in erased]
        outcomes = await deals.apply_partner_deals(session, outbox, deal_events) if deal_events else {}

        def open_at(event_id: str) -> Callable[[DealUpdated], bool]:  # whether the deal was open at that event
            return lambda _: outcomes.get(event_id, "open") == "open"

        rows, facts = [], []
        for e in events:
            for home, fact, extra in facts_of(e, open_at(e.envelope.id)):
                rows.append(repository.fact_row(home, fact, **extra))
                facts.append((fact, extra))
                touched.add(home)
        inserted = await repository.insert_facts(session, rows)
        touched |= set(inserted.values())
        # The facts actually stored (the same event twice in the batch is one fact), with the customer they
        # were stored with: what an incremental derivation applies to the state kept with that customer.
        new_facts: dict[uuid.UUID, repository.CustomerFacts] = {}
        for fact, extra in facts:
            if (customer_id := inserted.pop((fact.source, fact.event_id, fact.kind.value), None)) is not None:
                new_facts.setdefault(customer_id, repository.CustomerFacts()).add(fact, extra)
        # Identity events are rare: applied one by one; the facts follow the merges in force, in any order. They
        # move facts between customers (or delete them), so every customer they concern is replayed whole.
        for e in events:
            match e.payload:
                case CustomerMerged() as m:
                    moved = await repository.follow_identity(session, m) | {m.survivor_id, m.merged_id}
                case CustomerUnmerged() as u:
                    moved = await repository.follow_identity(session, u)
                    moved |= {u.survivor_id, u.restored_id}
                    await campaigns.follow_unmerge(session, u)
                case CustomerErased() as x:
                    # First: later facts and merges naming it are dropped.
                    await customers_repo.record_erased(session, x.customer_id, x.erased_at)
                    await campaigns.erase(session, x.customer_id)  # first: it reads the chain the next one drops
                    await repository.erase(session, x.customer_id)
                    moved = {x.customer_id}
                case _:
                    continue
            touched |= moved
            for customer_id in moved:
                new_facts.pop(customer_id, None)
        await service.rederive(
            session, outbox, list(touched), correlation_id=events[0].envelope.correlationid, new_facts=new_facts
        )

    return Subscription(name="facts", topics=[INTERACTION_EVENTS, CLV_EVENTS], event_types=EVENT_TYPES, handler=apply)
