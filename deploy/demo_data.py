"""Synthetic but realistic demo data, sent through the real ingestion path (`POST /v1/events`).

Customers follow the shapes CRM data has: most buy once or twice, a few buy often (geometric counts), order
values are log-normal, purchases spread over the last two years, three partner sources and several channels.
"""

import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

PARTNERS = {"shop-eu": ("EUR", ["web", "app"]), "pos-stores": ("EUR", ["store"]), "marketplace-us": ("USD", ["web"])}
BATCH = 500


def generate_events(customers: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for n in range(customers):
        partner = rng.choice(list(PARTNERS))
        currency, channels = PARTNERS[partner]
        external_id = f"C{n:07d}"
        orders = min(1 + int(rng.expovariate(0.6)), 60)
        first = now - timedelta(days=rng.uniform(1, 730))
        for k in range(orders):
            when = min(first + timedelta(days=k * rng.uniform(5, 90)), now)
            events.append({
                "specversion": "1.0",
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "source": partner,
                "type": "order.completed",
                "subject": external_id,
                "time": when.isoformat(),
                "data": {
                    "order_id": f"{external_id}-{k}",
                    "amount": f"{rng.lognormvariate(3.6, 0.8):.2f}",
                    "currency": currency,
                    "channel": rng.choice(channels),
                    "occurred_at": when.isoformat(),
                },
            })
    events.sort(key=lambda e: e["time"])
    return events


async def load_demo_data(gateway_url: str, customers: int, api_key: str) -> None:
    events = generate_events(customers)
    sent = 0
    async with aiohttp.ClientSession(headers={"X-API-Key": api_key}) as session:
        for i in range(0, len(events), BATCH):
            batch = events[i : i + BATCH]
            async with session.post(f"{gateway_url}/v1/events", json=batch) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"demo data rejected ({resp.status}): {await resp.text()}")
            sent += len(batch)
            _progress(sent, len(events), customers)
    print(file=sys.stderr)


def _progress(done: int, total: int, customers: int) -> None:
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"\rdemo data: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events, {customers} customers")
    sys.stderr.flush()
