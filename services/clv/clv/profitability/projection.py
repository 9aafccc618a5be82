"""Folds interaction events into the rows profitability costs: orders with their costs, refunds, touchpoints.

Its own inbox name (`clv.profitability`), apart from the transaction summary's, so the two features change
independently (one consumer applies both, in one transaction: clv/app.py) and a new install reads the topic's
history for its touchpoints. Merges are not its own:
every fact belongs to live(home) over clv.customer_merge (shared/contracts/identity.py), the record of merges
both consumers keep (each records what it hears of; recording is idempotent, and a merge only goes from in
force to undone), so both place every fact at the same customer once each has read the topic.
"""

import itertools
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import by_event_type
from shared.contracts.interaction import (
    CustomerErased,
    CustomerMerged,
    CustomerUnmerged,
    PurchaseRecorded,
    PurchaseRefunded,
    TouchpointRecorded,
    home,
)
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

from clv.profitability import repository as repo


def order_costs(p: PurchaseRecorded) -> tuple[Decimal, list[tuple[str | None, Decimal]]]:
    """(cost of the lines that carry a unit cost, [(category, value at price) of what carries none]).

    An order without lines is one uncosted part worth its amount (costed by the partner's default)."""
    if not p.lines:
        return Decimal(0), [(None, p.amount)]
    known, parts = Decimal(0), []
    for line in p.lines:
        if line.unit_cost is not None:
            known += line.unit_cost * line.quantity
        else:
            parts.append((line.category, line.unit_price * line.quantity))
    return known, parts


IDENTITY_TYPES = (CustomerMerged, CustomerUnmerged, CustomerErased)


async def apply_events(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    # Replicas apply batches side by side: a batch with a merge, unmerge or erasure runs alone, so no batch places
    # facts at a live customer the merge is changing (repo.placement_lock).
    await repo.placement_lock(session, exclusive=any(isinstance(e.payload, IDENTITY_TYPES) for e in events))
    for kind, run in itertools.groupby(events, key=lambda e: type(e.payload)):
        payloads = [e.payload for e in run]
        # Each branch takes its run's payloads as their type (a run holds one type: the isinstance only types them).
        if kind is PurchaseRecorded:
            # One row per purchase and statement (an upsert cannot touch a row twice): the first event wins.
            orders = list({p.purchase_id: p for p in reversed(payloads) if isinstance(p, PurchaseRecorded)}.values())[::-1]
            costs = [order_costs(p) for p in orders]
            # Parts of the orders stored now only (a purchase seen twice keeps its first parts; a copy made at
            # install gets the event's): the statement keeps those of the orders it stores.
            parts = [(p.purchase_id, category, value) for p, (_, ps) in zip(orders, costs, strict=True) for category, value in ps]
            await session.execute(
                repo.PLACE_ORDERS,
                {
                    "purchase_ids": [p.purchase_id for p in orders],
                    "ids": [home(p) for p in orders],
                    "sources": [p.source for p in orders],
                    "currencies": [p.currency for p in orders],
                    "amounts": [p.amount for p in orders],
                    "known_costs": [c[0] for c in costs],
                    "shipping": [p.shipping_cost or 0 for p in orders],
                    "discounts": [p.discount or 0 for p in orders],
                    "occurred": [p.occurred_at for p in orders],
                    "part_purchase_ids": [x[0] for x in parts],
                    "part_categories": [x[1] for x in parts],
                    "part_values": [x[2] for x in parts],
                },
            )
        elif kind is PurchaseRefunded:
            refunds = [p for p in payloads if isinstance(p, PurchaseRefunded)]
            await session.execute(
                repo.INSERT_REFUNDS,
                {
                    "refund_ids": [p.refund_id for p in refunds],
                    "purchase_ids": [p.purchase_id for p in refunds],
                    "amounts": [p.amount for p in refunds],
                    "cancelled": [p.cancelled for p in refunds],
                    "occurred": [p.occurred_at for p in refunds],
                    "homes": [home(p) for p in refunds],
                },
            )
        elif kind is TouchpointRecorded:
            touchpoints = [p for p in payloads if isinstance(p, TouchpointRecorded)]
            homes = [home(p) for p in touchpoints]
            live = await repo.lives(session, homes)
            await session.execute(
                repo.INSERT_TOUCHPOINTS,
                {
                    "touchpoint_ids": [p.touchpoint_id for p in touchpoints],
                    "homes": homes,
                    "customer_ids": [live.get(h, h) for h in homes],
                    "kinds": [p.channel for p in touchpoints],
                    "occurred": [p.occurred_at for p in touchpoints],
                },
            )
        elif kind is CustomerErased:
            for statement in repo.ERASE:
                await session.execute(statement, {"ids": [p.customer_id for p in payloads if isinstance(p, CustomerErased)]})
        elif kind in (CustomerMerged, CustomerUnmerged):
            for p in [p for p in payloads if isinstance(p, CustomerMerged | CustomerUnmerged)]:
                await repo.IDENTITY.follow(session, p)


def profitability_subscription() -> Subscription:
    async def handler(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        await apply_events(session, events)

    return Subscription(
        name="profitability",
        topics=[INTERACTION_EVENTS],
        handler=handler,
        event_types=by_event_type(
            PurchaseRecorded,
            PurchaseRefunded,
            TouchpointRecorded,
            CustomerMerged,
            CustomerUnmerged,
            CustomerErased,
        ),
    )
