"""Applies validated partner events: resolves identities, stores the facts, recomputes traits, publishes changes.

Both doors end here, in the caller's transaction. Idempotency: the event id is claimed in the inbox (per
source) by the caller, an order is stored once per (source, order id), and traits are recomputed from the
stored rows, so a resent, late or out-of-order event leaves every trait as if all had come in order.
"""

import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import interaction as contracts
from shared.contracts.envelope import MAX_EVENT_BYTES, Envelope, InvalidEvent
from shared.contracts.topics import INTERACTION_EVENTS
from shared.ids import time_ordered_id
from shared.messaging.inbox import claim
from shared.messaging.outbox import Outbox
from shared.validation import printable

from interaction.customers.published import profile_updates
from interaction.customers.service import erase_customers
from interaction.event_types.service import Catalogue
from interaction.identity import repository as identity_repository
from interaction.identity.normalise import SOURCE, source_key
from interaction.identity.resolution import Resolution, resolve
from interaction.ingestion import repository as repo
from interaction.ingestion.handlers import Batch, Fact, handler_for, is_fact, timeline_row, wrap
from interaction.ingestion.validation import PartnerEvent, validate
from interaction.tables import messaging
from interaction.traits.service import extend_traits, recompute_traits

T = TypeVar("T")

# The inbox name both doors share, so an event sent through both is applied once.
INGEST_INBOX = "interaction.partner-ingest"


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: str  # accepted | duplicate | rejected
    id: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class CheckedBatch:
    """One request's items after validation: the rejected ones' results, and the valid events by position."""

    size: int
    results: dict[int, ItemResult]
    valid: list[tuple[int, PartnerEvent]]


def check_http_batch(items: Sequence[object], body_bytes: int = 0, custom: Catalogue | None = None) -> CheckedBatch:
    """The HTTP door's checks, outside any transaction: every item is validated, the bad ones rejected.

    `custom` is the registry's entries for the custom types the batch names (`custom_type_names`), read by the
    caller: a batch of fixed types only never reads the registry."""
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, PartnerEvent]] = []
    for i, raw in enumerate(items):
        # Echoed in the response: a lone surrogate in it would fail the response's encoding.
        ident = printable(raw["id"]) if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        try:
            if body_bytes > MAX_EVENT_BYTES:
                if len(_encoded(raw)) > MAX_EVENT_BYTES:
                    raise InvalidEvent(f"event is over the {MAX_EVENT_BYTES}-byte limit")
            valid.append((i, validate(raw, custom)))
        except InvalidEvent as exc:
            results[i] = ItemResult(i, "rejected", ident, printable(str(exc)))
    return CheckedBatch(len(items), results, valid)


async def store_http_batches(session: AsyncSession, outbox: Outbox, batches: Sequence[CheckedBatch]) -> list[list[ItemResult]]:
    """Applies the valid events of several requests in the caller's transaction; each request's item results.

    The requests' events are claimed and applied together, in request order, as if they had come in one
    batch: an event sent twice (in one request or in two of the group) is accepted once, then a duplicate.
    """
    # Claim, then lock (in apply_partner_events): the order of the Kafka door, so the two never wait on each other
    # in a cycle; an event in flight through both doors is applied by one and is a duplicate for the other.
    fresh_keys = await claim(
        session,
        messaging.inbox,
        INGEST_INBOX,
        list(dict.fromkeys((e.envelope.source, e.envelope.id) for b in batches for _, e in b.valid)),
    )
    seen: set[tuple[str, str]] = set()
    fresh: list[PartnerEvent] = []
    out: list[list[ItemResult]] = []
    for b in batches:
        results = dict(b.results)
        for i, event in b.valid:
            key = (event.envelope.source, event.envelope.id)
            if key in fresh_keys and key not in seen:
                seen.add(key)
                fresh.append(event)
                results[i] = ItemResult(i, "accepted", event.envelope.id)
            else:
                results[i] = ItemResult(i, "duplicate", event.envelope.id)
        out.append([results[i] for i in range(b.size)])
    await apply_partner_events(session, outbox, fresh)
    return out


def _encoded(raw: object) -> bytes:
    try:
        return orjson.dumps(raw)
    except orjson.JSONEncodeError:
        # Too deep, a huge integer or a lone surrogate: `validate` says which and where.
        validate(raw)
        raise InvalidEvent("the event cannot be encoded as JSON") from None


async def apply_partner_events(
    session: AsyncSession, outbox: Outbox, events: Sequence[PartnerEvent], timings: dict[str, float] | None = None
) -> None:
    """Apply checked, fresh events in one transaction (the caller's): each fact's handler collects what it
    means (handlers.py), then the phases below write it, one set-based statement per kind of row."""
    if not events:
        return
    phase = _Timer(timings)
    await identity_repository.lock_identity(session)
    erasures = [e for e in events if not is_fact(e)]
    facts = [e for e in events if is_fact(e)]
    sources = sorted({e.envelope.source for e in events})
    trusted = {r.id for r in await session.execute(repo.REGISTER_PARTNERS_AND_FIND_TRUSTED, {"ids": sources})}
    for e in facts:
        if e.envelope.source not in trusted:
            # An untrusted partner's emails and phones are its own: kept under its source, they link its own
            # customers only, never another partner's (docs/security.md).
            e.keys = [k if k[0] == SOURCE else (k[0], e.envelope.source, k[2]) for k in e.keys]

    resolution = await phase("resolve", resolve(session, facts))
    batch = Batch()
    await phase("prepare", _collect(session, batch, facts, resolution))
    await phase("activity", _write_activity(session, batch))
    await phase("purchases", _write_purchases(session, batch))
    await phase("adjustments", _write_adjustments(session, batch))
    await phase("other facts", _write_other_facts(session, batch))
    await phase("traits", _update_traits(session, batch))
    await phase("outbox", _publish(session, outbox, batch.outgoing, erasures))


async def _collect(session: AsyncSession, batch: Batch, facts: list[PartnerEvent], resolution: Resolution) -> None:
    """Identity changes first (the customers facts refer to), then every fact through its type's handler."""
    now = datetime.now(UTC)
    for cid, (source, first_seen) in resolution.created.items():
        batch.outgoing.append(wrap(contracts.CustomerCreated(customer_id=cid, source=source, first_seen_at=first_seen), cid))
    versions = await identity_repository.next_versions(session, len(resolution.merges))
    for (merge_id, survivor, merged, reason, _), version in zip(resolution.merges, versions, strict=True):
        batch.outgoing.append(
            wrap(
                contracts.CustomerMerged(
                    customer_id=survivor,
                    merge_id=merge_id,
                    survivor_id=survivor,
                    merged_id=merged,
                    reason=reason,
                    merged_at=now,
                    version=version,
                ),
                survivor,
            )
        )
    batch.history_changed = {m[1] for m in resolution.merges}
    # A merge fills the survivor's missing attributes from the merged customer's.
    batch.profile_changes = dict.fromkeys(batch.history_changed - {m[2] for m in resolution.merges}, (contracts.SOURCE, now))
    batch.touched = set(resolution.customer_of) | batch.history_changed
    for e, cid, home in zip(facts, resolution.customer_of, resolution.home_of, strict=True):
        handler = handler_for(e.payload)
        fact = Fact(cid, home, time_ordered_id())
        if handler.timeline:
            batch.activity_rows.append(timeline_row(e, fact))
        assert handler.collect is not None  # `facts` are the events whose handler collects (is_fact)
        handler.collect(batch, e, fact)


async def _write_activity(session: AsyncSession, batch: Batch) -> None:
    if batch.activity_rows:
        await session.execute(
            repo.INSERT_ACTIVITY,
            repo.columns(
                batch.activity_rows,
                {
                    "ids": "id",
                    "customer_ids": "customer_id",
                    "homes": "home",
                    "sources": "source",
                    "event_ids": "event_id",
                    "types": "type",
                    "occurred": "occurred",
                    "channels": "channel",
                    "data": "data",
                },
            ),
        )


async def _write_purchases(session: AsyncSession, batch: Batch) -> None:
    if not batch.purchases:
        return
    rows = list(batch.purchases.values())
    inserted = {
        (r.source, r.order_id)
        for r in await session.execute(
            repo.INSERT_PURCHASES,
            repo.columns(
                rows,
                {
                    "ids": "id",
                    "customer_ids": "customer_id",
                    "homes": "home",
                    "sources": "source",
                    "order_ids": "order_id",
                    "amounts": "amount",
                    "currencies": "currency",
                    "channels": "channel",
                    "occurred": "occurred",
                    "event_ids": "event_id",
                    "line_items": "line_items",
                    "shipping_costs": "shipping_cost",
                    "discounts": "discount",
                },
            ),
        )
    }
    for r in rows:  # in arrival order: one customer's events stay in order
        if (r["source"], r["order_id"]) in inserted:
            batch.new_purchase_ids.append(r["id"])
            batch.outgoing.append(
                wrap(
                    contracts.PurchaseRecorded(
                        customer_id=r["customer_id"],
                        purchase_id=r["id"],
                        source=r["source"],
                        order_id=r["order_id"],
                        amount=r["amount"],
                        currency=r["currency"],
                        channel=r["channel"],
                        occurred_at=r["occurred"],
                        # Costs travel with the purchase (clv's profitability); absent when the partner sent none.
                        lines=[contracts.PurchaseLine(**li.model_dump()) for li in r["lines"]],
                        shipping_cost=r["shipping_cost"],
                        discount=r["discount"],
                        home_customer_id=r["home"],
                    ),
                    r["customer_id"],
                    r["env"],
                )
            )


async def _update_traits(session: AsyncSession, batch: Batch) -> None:
    await recompute_traits(session, batch.history_changed)
    await extend_traits(
        session,
        batch.touched - batch.history_changed,
        [r["id"] for r in batch.activity_rows],
        batch.new_purchase_ids,
    )


async def _write_adjustments(session: AsyncSession, batch: Batch) -> None:
    adjustments, purchases = batch.adjustments, batch.purchases
    if adjustments:
        await session.execute(
            repo.INSERT_ADJUSTMENTS,
            repo.columns(
                adjustments,
                {
                    "ids": "id",
                    "customer_ids": "customer_id",
                    "homes": "home",
                    "sources": "source",
                    "order_ids": "order_id",
                    "event_ids": "event_id",
                    "amounts": "amount",
                    "currencies": "currency",
                    "cancelled": "cancelled",
                    "reasons": "reason",
                    "occurred": "occurred",
                },
            ),
        )
    if not (adjustments or purchases):
        return
    orders = {(a["source"], a["order_id"]) for a in adjustments} | set(purchases)
    # Only orders that have adjustments can publish one; skip the statement when none could.
    if adjustments or await _any_pending_adjustments(session, orders):
        for r in await session.execute(
            repo.PUBLISH_ADJUSTMENTS, {"sources": [o[0] for o in orders], "order_ids": [o[1] for o in orders]}
        ):
            batch.touched.add(r.customer_id)
            batch.history_changed.add(r.customer_id)
            batch.outgoing.append(
                wrap(
                    contracts.PurchaseRefunded(
                        customer_id=r.customer_id,
                        purchase_id=r.purchase_id,
                        refund_id=r.id,
                        source=r.source,
                        order_id=r.order_id,
                        amount=r.purchase_amount if r.amount is None or r.cancelled else r.amount,
                        currency=r.currency,
                        cancelled=r.cancelled,
                        occurred_at=r.occurred_at,
                        home_customer_id=r.home_customer_id,
                    ),
                    r.customer_id,
                )
            )


async def _write_other_facts(session: AsyncSession, batch: Batch) -> None:
    if batch.properties:
        await _apply_properties(session, batch)
    # After this batch's merges and property changes: each changed profile published whole, in commit order.
    batch.outgoing.extend(await profile_updates(session, batch.profile_changes))
    if batch.deals:
        deal_rows = list(batch.deals.values())
        changed = {
            (r.source, r.deal_id)
            for r in await session.execute(
                repo.UPSERT_DEALS,
                repo.columns(
                    deal_rows,
                    {
                        "sources": "source",
                        "deal_ids": "deal_id",
                        "customer_ids": "customer_id",
                        "homes": "home",
                        "pipelines": "pipeline",
                        "stages": "stage",
                        "amounts": "amount",
                        "currencies": "currency",
                        "closes": "close",
                        "owners": "owner",
                        "lost": "lost",
                        "occurred": "occurred",
                    },
                ),
            )
        }
        for d in deal_rows:
            if (d["source"], d["deal_id"]) in changed:
                batch.outgoing.append(
                    wrap(
                        contracts.DealUpdated(
                            customer_id=d["customer_id"],
                            source=d["source"],
                            deal_id=d["deal_id"],
                            pipeline=d["pipeline"],
                            stage=d["stage"],
                            amount=d["amount"],
                            currency=d["currency"],
                            expected_close=d["close"],
                            owner=d["owner"],
                            lost_reason=d["lost"],
                            occurred_at=d["occurred"],
                        ),
                        d["customer_id"],
                        d["env"],
                    )
                )
    if batch.leads:
        leads = batch.leads
        referrers = await identity_repository.find(
            session, [source_key(e.envelope.source, lead.referred_by) for e, lead, _, _ in leads if lead.referred_by]
        )
        for e, lead, cid, home in leads:
            referrer = referrers.get(source_key(e.envelope.source, lead.referred_by)) if lead.referred_by else None
            batch.outgoing.append(
                wrap(
                    contracts.LeadCaptured(
                        customer_id=cid,
                        source=e.envelope.source,
                        campaign=lead.campaign,
                        lead_source=lead.lead_source,
                        qualified=lead.qualified,
                        referred_by_customer_id=referrer[0] if referrer else None,
                        occurred_at=e.occurred_at,
                        home_customer_id=home,
                    ),
                    cid,
                    e.envelope,
                )
            )


async def _publish(session: AsyncSession, outbox: Outbox, outgoing: list[Envelope], erasures: list[PartnerEvent]) -> None:
    if erasures:
        known = await identity_repository.find(session, [e.keys[0] for e in erasures])
        ids = {known[e.keys[0]][0] for e in erasures if e.keys[0] in known}
        # This batch's events go to the outbox first, so that the erasure redacts those about the customer too.
        await outbox.add(session, INTERACTION_EVENTS, outgoing)
        outgoing = await erase_customers(session, ids)
    await outbox.add(session, INTERACTION_EVENTS, outgoing)


async def _any_pending_adjustments(session: AsyncSession, orders: set[tuple[str, str]]) -> bool:
    found = await session.execute(
        repo.ANY_PENDING_ADJUSTMENTS, {"sources": [o[0] for o in orders], "order_ids": [o[1] for o in orders]}
    )
    return found.first() is not None


async def _apply_properties(session: AsyncSession, batch: Batch) -> None:
    """Upsert attributes and consent; the customers whose properties changed join `batch.profile_changes`."""
    rows = list(batch.properties.values())
    changed = await session.execute(
        repo.UPSERT_PROPERTIES,
        repo.columns(
            rows,
            {
                "customer_ids": "customer_id",
                "kinds": "kind",
                "keys": "key",
                "values": "value",
                "types": "type",
                "sources": "source",
                "occurred": "occurred",
            },
        ),
    )
    latest: dict[uuid.UUID, dict] = {}
    for r in changed:
        row = batch.properties[(r.customer_id, r.kind, r.key)]
        if r.customer_id not in latest or row["occurred"] > latest[r.customer_id]["occurred"]:
            latest[r.customer_id] = row
    batch.profile_changes.update({cid: (row["source"], row["occurred"]) for cid, row in latest.items()})


class _Timer:
    """Phase timings for the benchmark (bench/ingest.py): wraps a phase's awaitable; free when nobody asks."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    async def __call__(self, name: str, work: Awaitable[T]) -> T:
        if self.timings is None:
            return await work
        started = time.perf_counter()
        try:
            return await work
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
