"""Consumes the four domain topics through the inbox and enqueues one delivery per matching subscription.

Per batch: one read of the active subscriptions, matching in memory, one set-based INSERT (idempotent on
subscription + event; it leaves out customers erased before). `customer.erased` drops every delivery kept or
queued for that customer (but the erasure notice itself) and is remembered: later events about the customer
are not queued (R8).
"""

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import CustomerErased
from shared.messaging.inbox import ConsumedEvent, Subscription

from gateway.webhooks import repository
from gateway.webhooks.events import DOMAIN_EVENT_TYPES, DOMAIN_TOPICS

_MISSING = object()


def _field(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return _MISSING
        value = value.get(part, _MISSING)
    return value


def matches(filters: dict[str, str | list[str]], data: dict[str, Any]) -> bool:
    """Every filter holds: the field's value (as text; null as "null") is the one given, or one of the list."""
    for key, wanted in filters.items():
        value = _field(data, key)
        if value is _MISSING:
            return False
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if text not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    return True


def _key(event: ConsumedEvent) -> str:
    """The customer an event is about: the deliveries' ordering key."""
    return str(getattr(event.payload, "customer_id", None) or event.envelope.subject or "")


def deliveries_subscription(wake: Callable[[], None] | None = None) -> Subscription:
    async def enqueue(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        subs = await repository.active_subscriptions(session)
        cols: dict[str, list] = {k: [] for k in ("subscription_ids", "event_ids", "sources", "types", "keys", "payloads")}
        # Customers erased before this batch are left out by the INSERT itself; those erased in it, here.
        newly_erased: set[str] = set()
        for e in events:
            env, key = e.envelope, _key(e)
            if isinstance(e.payload, CustomerErased):
                newly_erased.add(key)
            elif key in newly_erased:
                continue  # about a customer erased earlier in the batch: it may carry what the erasure took out
            interested = [s for s in subs if env.type in s.event_types and matches(s.filters, env.data)]
            if not interested:
                continue
            body = env.to_json()
            for s in interested:
                cols["subscription_ids"].append(s.id)
                cols["event_ids"].append(env.id)
                cols["sources"].append(env.source)
                cols["types"].append(env.type)
                cols["keys"].append(key)
                cols["payloads"].append(body)
        if cols["event_ids"]:
            await session.execute(repository.ENQUEUE, cols)
        if newly_erased:
            await session.execute(repository.REMEMBER_ERASED, {"keys": sorted(newly_erased)})
            await session.execute(repository.FORGET_CUSTOMERS, {"keys": sorted(newly_erased)})
        if cols["event_ids"] and wake is not None:
            # The worker may look before this commits; then it finds them on its next poll.
            asyncio.get_running_loop().call_later(0.05, wake)

    return Subscription(name="webhooks", topics=list(DOMAIN_TOPICS), event_types=dict(DOMAIN_EVENT_TYPES), handler=enqueue)
