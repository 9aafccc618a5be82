"""Consumes `interaction.events` and `clv.events` into per-customer facts, then re-derives the touched customers.

Per batch, set-based: the events become fact rows (one per event and kind, inserted once: a redelivered or
duplicate event adds nothing), identity events fold, restore or erase facts, deals move, and every customer
the batch touched is re-derived from its whole sorted history. So the stage never depends on arrival order.
"""

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.interaction import (
    CustomerErased, CustomerMerged, CustomerUnmerged, DealUpdated, FeedbackRecorded, LeadCaptured,
    PurchaseRecorded, PurchaseRefunded,
)
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox

from lifecycle.pipelines import service as deals
from lifecycle.rules.engine import Fact, FactKind
from lifecycle.stages import repository, service

EVENT_TYPES = {m.EVENT_TYPE: m for m in [
    LeadCaptured, DealUpdated, PurchaseRecorded, PurchaseRefunded, FeedbackRecorded, CustomerMerged,
    CustomerUnmerged, CustomerErased,
]} | {CustomerValueUpdated.EVENT_TYPE: CustomerValueUpdated}


def facts_of(e: ConsumedEvent, deal_is_open: Callable[[DealUpdated], bool]) -> list[tuple[uuid.UUID, Fact, dict]]:
    """The facts one event contributes: (the customer it came in under, fact, extra data to keep)."""
    p, src, eid = e.payload, e.envelope.source, e.envelope.id
    # Interaction's facts name their home (shared/contracts/identity.py); others stand for their customer.
    home = getattr(p, "home_customer_id", None) or p.customer_id
    match p:
        case PurchaseRecorded():
            return [(home, Fact(FactKind.PURCHASE, p.occurred_at, src, eid, purchase_id=str(p.purchase_id)),
                     {"amount": str(p.amount), "currency": p.currency})]
        case PurchaseRefunded():
            # Every refund lowers the net spend; a cancellation also takes the purchase out of the rules.
            refund = (home, Fact(FactKind.REFUND, p.occurred_at, src, eid, purchase_id=str(p.purchase_id)),
                      {"amount": str(p.amount), "currency": p.currency})
            if not p.cancelled:
                return [refund]
            return [refund, (home, Fact(FactKind.CANCELLATION, p.occurred_at, src, eid,
                                                 purchase_id=str(p.purchase_id)), {})]
        case LeadCaptured():
            kind = FactKind.QUALIFIED_LEAD if p.qualified else FactKind.LEAD
            out = [(p.customer_id, Fact(kind, p.occurred_at, src, eid), {})]
            if p.referred_by_customer_id and p.referred_by_customer_id != p.customer_id:
                out.append((p.referred_by_customer_id, Fact(FactKind.REFERRAL, p.occurred_at, src, eid), {}))
            return out
        case DealUpdated() if deal_is_open(p):
            return [(p.customer_id, Fact(FactKind.DEAL_OPEN, p.occurred_at, src, eid), {})]
        case FeedbackRecorded() if p.nps is not None:
            return [(home, Fact(FactKind.FEEDBACK, p.occurred_at, src, eid, nps=p.nps), {})]
        case CustomerValueUpdated():
            # clv's version is kept with the fact: `reconcile` compares the newest one with clv's state.
            return [(p.customer_id, Fact(FactKind.VALUE, p.as_of, src, eid, tier=p.tier,
                                         probability_alive=p.probability_alive),
                     {"version": p.version} if p.version is not None else {})]
    return []


def facts_subscription(outbox: Outbox) -> Subscription:
    async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        touched: set[uuid.UUID] = set()
        deal_events = [e for e in events if isinstance(e.payload, DealUpdated)]
        outcomes = await deals.apply_partner_deals(session, outbox, deal_events) if deal_events else {}
        rows = []
        for e in events:
            for home, fact, extra in facts_of(e, lambda _, e=e: outcomes.get(e.envelope.id, "open") == "open"):
                rows.append(repository.fact_row(home, fact, **extra))
                touched.add(home)
        touched |= await repository.insert_facts(session, rows)
        # Identity events are rare: applied one by one; the facts follow the merges in force, in any order.
        for e in events:
            match e.payload:
                case CustomerMerged() as m:
                    touched |= await repository.follow_identity(session, m.merge_id, m.survivor_id, m.merged_id,
                                                                m.version, undone=False)
                case CustomerUnmerged() as u:
                    touched |= await repository.follow_identity(session, u.merge_id, u.survivor_id, u.restored_id,
                                                                u.version, undone=True, listed=u.purchase_ids)
                case CustomerErased() as x:
                    await repository.erase(session, x.customer_id)
                    touched.add(x.customer_id)
        await service.rederive(session, outbox, list(touched), correlation_id=events[0].envelope.correlationid)

    return Subscription(name="facts", topics=[INTERACTION_EVENTS, CLV_EVENTS], event_types=EVENT_TYPES, handler=apply)
