import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.models import webhook_delivery, webhook_subscription

PUBLIC_SUBSCRIPTION = [c for c in webhook_subscription.c if c.name != "secret"]

# Nothing about a customer erased before this statement (it may carry what the erasure took out) but the erasure
# notice itself.
ENQUEUE = sa.text("""
INSERT INTO gateway.webhook_delivery (subscription_id, event_id, event_source, event_type, ordering_key, payload)
SELECT * FROM unnest(CAST(:subscription_ids AS uuid[]), CAST(:event_ids AS text[]), CAST(:sources AS text[]),
                     CAST(:types AS text[]), CAST(:keys AS text[]), CAST(:payloads AS bytea[]))
              AS u(subscription_id, event_id, event_source, event_type, ordering_key, payload)
WHERE u.event_type = 'customer.erased'
   OR NOT EXISTS (SELECT 1 FROM gateway.erased_customer e WHERE e.customer_id = u.ordering_key)
ON CONFLICT (subscription_id, event_source, event_id) DO NOTHING
""")
REMEMBER_ERASED = sa.text("""
INSERT INTO gateway.erased_customer (customer_id) SELECT unnest(CAST(:keys AS text[])) ON CONFLICT DO NOTHING
""")

# Erasure (R8): every delivery about the customer goes, sent or still queued (a queued one must not carry the
# PII out afterwards), except the `customer.erased` notices themselves, which subscribers need to act on.
FORGET_CUSTOMERS = sa.text("""
DELETE FROM gateway.webhook_delivery
WHERE ordering_key = ANY(CAST(:keys AS text[])) AND event_type <> 'customer.erased'
""")

# The head of each (subscription, key) queue only: a later delivery waits for every earlier pending one.
CLAIM = sa.text("""
WITH due AS (
    SELECT d.id FROM gateway.webhook_delivery d
    JOIN gateway.webhook_subscription s ON s.id = d.subscription_id AND s.active
    WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
      AND NOT EXISTS (SELECT 1 FROM gateway.webhook_delivery e
                      WHERE e.subscription_id = d.subscription_id AND e.ordering_key = d.ordering_key
                        AND e.status = 'pending' AND e.id < d.id)
    ORDER BY d.next_attempt_at, d.id
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE gateway.webhook_delivery d SET lease_until = now() + make_interval(secs => :lease_s), updated_at = now()
FROM due, gateway.webhook_subscription s
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.event_type, d.attempts, d.payload, s.url, s.secret
""")

RECORD = sa.text("""
UPDATE gateway.webhook_delivery d SET
    status = v.status, attempts = d.attempts + 1, last_status_code = v.code, last_error = v.error,
    delivered_at = CASE WHEN v.status = 'delivered' THEN now() ELSE d.delivered_at END,
    next_attempt_at = now() + make_interval(secs => v.delay_s), lease_until = NULL, updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:codes AS int[]), CAST(:errors AS text[]),
            CAST(:delays AS float8[])) AS v(id, status, code, error, delay_s)
WHERE d.id = v.id
""")


async def active_subscriptions(session: AsyncSession) -> list[sa.Row]:
    t = webhook_subscription
    return list((await session.execute(sa.select(t.c.id, t.c.event_types, t.c.filters).where(t.c.active))).all())


async def insert_subscription(session: AsyncSession, row: dict) -> sa.Row:
    return (await session.execute(sa.insert(webhook_subscription).values(**row).returning(*webhook_subscription.c))).one()


async def subscription(session: AsyncSession, sub_id: uuid.UUID) -> sa.Row | None:
    t = webhook_subscription
    return (await session.execute(sa.select(*PUBLIC_SUBSCRIPTION).where(t.c.id == sub_id))).one_or_none()


async def subscriptions_page(session: AsyncSession, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[sa.Row]:
    t = webhook_subscription
    q = sa.select(*PUBLIC_SUBSCRIPTION).order_by(t.c.created_at, t.c.id).limit(limit)
    if after is not None:
        q = q.where(sa.tuple_(t.c.created_at, t.c.id) > sa.tuple_(*after))
    return list((await session.execute(q)).all())


async def update_subscription(session: AsyncSession, sub_id: uuid.UUID, values: dict) -> sa.Row | None:
    t = webhook_subscription
    q = sa.update(t).where(t.c.id == sub_id).values(**values, updated_at=sa.func.now()).returning(*PUBLIC_SUBSCRIPTION)
    return (await session.execute(q)).one_or_none()


async def delete_subscription(session: AsyncSession, sub_id: uuid.UUID) -> bool:
    t = webhook_subscription
    return (await session.execute(sa.delete(t).where(t.c.id == sub_id).returning(t.c.id))).first() is not None


DELIVERY_COLUMNS = [c for c in webhook_delivery.c if c.name not in ("payload", "lease_until")]


async def deliveries_page(
    session: AsyncSession, sub_id: uuid.UUID, status: str | None, before: int | None, limit: int
) -> list[sa.Row]:
    t = webhook_delivery
    q = sa.select(*DELIVERY_COLUMNS).where(t.c.subscription_id == sub_id).order_by(t.c.id.desc()).limit(limit)
    if status is not None:
        q = q.where(t.c.status == status)
    if before is not None:
        q = q.where(t.c.id < before)
    return list((await session.execute(q)).all())


async def redeliver(session: AsyncSession, sub_id: uuid.UUID, delivery_id: int) -> sa.Row | None:
    t = webhook_delivery
    q = (
        sa.update(t)
        .where(t.c.id == delivery_id, t.c.subscription_id == sub_id)
        .values(status="pending", attempts=0, next_attempt_at=sa.func.now(), lease_until=None, updated_at=sa.func.now())
        .returning(*DELIVERY_COLUMNS)
    )
    return (await session.execute(q)).one_or_none()
