"""Synthetic but realistic demo data, sent through the real ingestion path (`POST /v1/events`), then analysed.

Customers follow the shapes CRM data has: most buy once or twice, a few buy often (geometric counts), order
values are log-normal, purchases spread over the last two years, three partner sources and several channels.
Around the orders: sign-ups with an email, a name and attributes, support and email touchpoints, NPS feedback with
perceived against expected value (some about a proposition), the odd refund, and prospects who are only leads so
far. More than half the customers were first reached by a campaign (registered with budget and cost, so the
campaign report shows cost per acquisition and return); two field-sales employees (partner kind `employee`) visit
and survey customers, so partner figures and satisfaction trends show something. Orders carry a line with its
category and (mostly) its unit cost, shipping costs and discounts, and the demo sets default cost rates and costs
per touchpoint kind, so the profitability matrix has something to show. Once loaded, the
value models are fitted and scored and the portfolio is segmented, so every part of the 360° view has data.
"""

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

PARTNERS = {"shop-eu": ("EUR", ["web", "app"]), "pos-stores": ("EUR", ["store"]), "marketplace-us": ("USD", ["web"])}
# Sign-up names, picked from the customer's number (not from the random stream: the demo's figures stay as
# they were); a name is shown in segment member lists where the customer's email_marketing consent allows.
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca"]
LAST_NAMES = ["Adler", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova", "Jensen"]
# The network-development programme: field sales employees who visit and survey customers.
EMPLOYEES = {"rep-anna": "Anna (field sales)", "rep-ben": "Ben (field sales)"}
# The acquisition programme: campaigns with their cost, and where their leads come from.
CAMPAIGNS = {
    "spring-sale": {
        "name": "Spring sale",
        "channel": "email",
        "currency": "EUR",
        "budget": "6000",
        "cost": "4500",
        "sources": ["newsletter", "web"],
    },
    "webinar-q3": {
        "name": "Q3 product webinar",
        "channel": "web",
        "currency": "EUR",
        "budget": "2000",
        "cost": "1800",
        "sources": ["webinar"],
    },
    "fair-2026": {
        "name": "Trade fair 2026",
        "channel": "event",
        "currency": "EUR",
        "budget": "9000",
        "cost": "8000",
        "sources": ["event", "referral"],
    },
    "us-launch": {
        "name": "US marketplace launch",
        "channel": "social",
        "currency": "USD",
        "budget": "5000",
        "cost": "3500",
        "sources": ["social"],
    },
}
PROPOSITIONS = ["express-shipping", "loyalty-club", "extended-warranty"]
BATCH = 500
# Product categories and what their goods cost as a share of the price (the demo's cost settings use them
# for the lines sent without a unit cost).
CATEGORIES = {"books": 0.55, "electronics": 0.80, "apparel": 0.45, "home": 0.60}
COST_SETTINGS = {
    "cost_rates": [{"scope": "category", "key": k, "cost_rate": v} for k, v in CATEGORIES.items()]
    + [{"scope": "partner", "key": "marketplace-us", "cost_rate": 0.7}],
    "touchpoint_costs": [
        {"kind": kind, "currency": currency, "cost": cost}
        for currency in ("EUR", "USD")
        for kind, cost in [("support", "6.00"), ("phone", "9.00"), ("email", "0.80"), ("return", "4.00")]
    ],
}


def generate_events(customers: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    # Costs draw from their own stream, so the orders, refunds and touchpoints are those of the demo without costs.
    costs = random.Random(seed + 1)
    now = datetime.now(UTC)
    events = []

    def event(partner: str, external_id: str, kind: str, when: datetime, data: dict, ids: random.Random = rng) -> None:
        events.append(
            {
                "specversion": "1.0",
                "id": str(uuid.UUID(int=ids.getrandbits(128))),
                "source": partner,
                "type": kind,
                "subject": external_id,
                "time": when.isoformat(),
                "data": {**data, "occurred_at": when.isoformat()},
            }
        )

    for n in range(customers):
        partner = rng.choice(list(PARTNERS))
        currency, channels = PARTNERS[partner]
        external_id = f"C{n:07d}"
        first = now - timedelta(days=rng.uniform(1, 730))
        event(
            partner,
            external_id,
            "customer.identified",
            first - timedelta(minutes=5),
            {
                "identifiers": {"email": f"customer{n}@example.com"},
                "attributes": {
                    "plan": rng.choice(["basic", "plus", "premium"]),
                    "region": rng.choice(["north", "south"]),
                    "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
                    "last_name": LAST_NAMES[n // len(FIRST_NAMES) % len(LAST_NAMES)],
                },
                "consent": {"email_marketing": rng.random() < 0.6},
            },
        )
        if rng.random() < 0.55:  # reached by a campaign first: a lead before any order
            key = "us-launch" if currency == "USD" else rng.choice(["spring-sale", "webinar-q3", "fair-2026"])
            event(
                partner,
                external_id,
                "lead.captured",
                first - timedelta(days=rng.uniform(0.5, 20)),
                {"campaign": key, "lead_source": rng.choice(CAMPAIGNS[key]["sources"]), "qualified": rng.random() < 0.6},
            )
        if rng.random() < 0.15:  # a prospect: a lead, no order yet
            continue
        if rng.random() < 0.25:  # an employee visits (touchpoint), identified by the customer's email; a third
            rep = rng.choice(list(EMPLOYEES))  # of the visits come first: the employee brought the customer in
            visit = (
                first - timedelta(days=rng.uniform(1, 10))
                if rng.random() < 0.33
                else min(first + timedelta(days=rng.uniform(1, 60)), now)
            )
            event(
                rep,
                f"{rep}-{n}",
                "interaction.logged",
                visit,
                {
                    "channel": "store",
                    "direction": "outbound",
                    "outcome": "visited",
                    "identifiers": {"email": f"customer{n}@example.com"},
                },
            )
        # The buy-till-you-die story the value models assume: purchases at a personal rate, and after each one
        # a personal chance of never coming back.
        mean_gap_days, p_drop = rng.gammavariate(1.5, 40), rng.betavariate(2, 6)
        # Some customers want a lot of service, some hunt for discounts (the profitability matrix's shapes).
        needy, bargain_hunter = costs.random() < 0.25, costs.random() < 0.3
        when = first
        for k in range(60):
            amount = rng.lognormvariate(3.6, 0.8)
            channel = rng.choice(channels)
            event(
                partner,
                external_id,
                "order.completed",
                when,
                {
                    "order_id": f"{external_id}-{k}",
                    "amount": f"{amount:.2f}",
                    "currency": currency,
                    "channel": channel,
                    **_order_costs(costs, amount, channel, bargain_hunter),
                },
            )
            if needy and costs.random() < 0.7:
                event(
                    partner,
                    external_id,
                    "interaction.logged",
                    min(when + timedelta(days=2), now),
                    {"channel": costs.choice(["support", "phone"]), "direction": "inbound", "outcome": "resolved"},
                    ids=costs,
                )
            if rng.random() < 0.03:
                event(
                    partner,
                    external_id,
                    "order.refunded",
                    min(when + timedelta(days=3), now),
                    {"order_id": f"{external_id}-{k}", "amount": f"{amount / 2:.2f}", "currency": currency},
                )
            if rng.random() < 0.2:
                event(
                    partner,
                    external_id,
                    "interaction.logged",
                    min(when + timedelta(days=1), now),
                    {
                        "channel": rng.choice(["support", "email", "phone"]),
                        "direction": "inbound",
                        "outcome": rng.choice(["resolved", "answered", "escalated"]),
                    },
                )
            when += timedelta(days=rng.expovariate(1 / mean_gap_days))
            if when > now or rng.random() < p_drop:
                break
        for _ in range(3):  # satisfaction over time, from the shop or an employee's survey, some about a proposition
            if rng.random() >= 0.3:
                break
            nps = min(10, max(0, int(rng.gauss(7.5, 2))))
            when = min(first + timedelta(days=rng.uniform(7, 400)), now)
            answer = {
                "nps": nps,
                "csat": min(5, max(1, round(nps / 2))),
                "perceived_value": round(rng.uniform(4, 9), 1),
                "expected_value": round(rng.uniform(6, 9), 1),
            }
            if rng.random() < 0.4:
                answer["proposition_id"] = rng.choice(PROPOSITIONS)
            source, subject = partner, external_id
            if rng.random() < 0.3:
                source = rng.choice(list(EMPLOYEES))
                subject = f"{source}-{n}"
                answer["identifiers"] = {"email": f"customer{n}@example.com"}
            event(source, subject, "feedback.submitted", when, answer)
    events.sort(key=lambda e: e["time"])
    return events


def _order_costs(costs: random.Random, amount: float, channel: str, bargain_hunter: bool) -> dict:
    """One line (category, price before the discount, a unit cost for most orders), shipping, discount."""
    discount = amount * costs.uniform(0.1, 0.25) if costs.random() < (0.7 if bargain_hunter else 0.1) else 0.0
    category = costs.choice(list(CATEGORIES))
    line = {
        "sku": f"{category}-{costs.randrange(100)}",
        "quantity": 1,
        "unit_price": f"{amount + discount:.2f}",
        "category": category,
    }
    if costs.random() < 0.7:  # the rest are costed by the category's default rate
        line["unit_cost"] = f"{(amount + discount) * CATEGORIES[category] * costs.uniform(0.8, 1.2):.2f}"
    out = {"line_items": [line]}
    if channel != "store":
        out["shipping_cost"] = f"{costs.uniform(3, 9):.2f}"
    if discount:
        out["discount"] = f"{discount:.2f}"
    return out


async def load_demo_data(gateway_url: str, customers: int, api_key: str) -> None:
    events = generate_events(customers)
    sent = 0
    async with aiohttp.ClientSession(headers={"X-API-Key": api_key}) as session:
        await register_partners(session, gateway_url)
        async with session.put(f"{gateway_url}/v1/value/profitability/settings", json=COST_SETTINGS) as resp:
            if resp.status != 200:
                raise RuntimeError(f"demo cost settings rejected ({resp.status}): {await resp.text()}")
        await register_campaigns(session, gateway_url)
        for i in range(0, len(events), BATCH):
            batch = events[i : i + BATCH]
            async with session.post(f"{gateway_url}/v1/events", json=batch) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"demo data rejected ({resp.status}): {await resp.text()}")
            sent += len(batch)
            _progress(sent, len(events), customers)
        print(file=sys.stderr)
        await analyse(session, gateway_url)


async def register_campaigns(session: aiohttp.ClientSession, gateway_url: str) -> None:
    """The demo campaigns with budget and cost, so the campaign report shows cost per acquisition and return."""
    today = datetime.now(UTC).date()
    for key, c in CAMPAIGNS.items():
        body = {k: v for k, v in c.items() if k != "sources"} | {
            "starts_on": (today - timedelta(days=730)).isoformat(),
            "ends_on": today.isoformat(),
        }
        async with session.post(f"{gateway_url}/v1/campaigns", json={"key": key, **body}) as resp:
            if resp.status == 409:  # registered by an earlier run
                continue
            if resp.status != 201:
                raise RuntimeError(f"demo campaign {key} not registered ({resp.status}): {await resp.text()}")


async def register_partners(session: aiohttp.ClientSession, gateway_url: str) -> None:
    """The demo partners (and employees), trusted to link customers by email and phone (off for partners nobody
    registered)."""
    kinds = {p: ("retailer", p) for p in PARTNERS} | {e: ("employee", name) for e, name in EMPLOYEES.items()}
    for partner, (kind, name) in kinds.items():
        body = {"name": name, "kind": kind, "trust_contact_linking": True}
        async with session.post(f"{gateway_url}/v1/partners", json={"id": partner, **body}) as resp:
            if resp.status == 409:  # registered by an earlier run: make sure it is trusted
                async with session.patch(f"{gateway_url}/v1/partners/{partner}", json=body) as patched:
                    patched.raise_for_status()
            elif resp.status != 201:
                raise RuntimeError(f"demo partner {partner} not registered ({resp.status}): {await resp.text()}")


async def analyse(session: aiohttp.ClientSession, gateway_url: str) -> None:
    """Fit and score the value models per currency, then run RFM, clustering and tiers on the loaded data."""
    for currency in sorted({c for c, _ in PARTNERS.values()}):
        fit = await _job(
            session,
            f"{gateway_url}/v1/value/models/fits",
            {"currency": currency, "holdout_days": 90},
            "id",
            f"{gateway_url}/v1/value/models/fits/{{}}",
            f"value model fit ({currency})",
        )
        if fit.get("status") == "succeeded":
            await _job(
                session,
                f"{gateway_url}/v1/value/scorings",
                {"currency": currency},
                "id",
                f"{gateway_url}/v1/value/scorings/{{}}",
                f"value scoring ({currency})",
            )
    # Value events reach segmentation asynchronously; a moment lets tiers by CLV see most of them.
    await asyncio.sleep(1)
    for kind in ["rfm", "clustering", "tiers"]:
        await _job(
            session,
            f"{gateway_url}/v1/segmentation/runs",
            {"kind": kind},
            "run_id",
            f"{gateway_url}/v1/segmentation/runs/{{}}",
            f"segmentation {kind} run",
        )


async def _job(session: aiohttp.ClientSession, start_url: str, body: dict, id_field: str, poll_url: str, label: str) -> dict:
    """Start a long job (202), wait for it to end, and say how it ended; a failed job is reported, not fatal."""
    async with session.post(start_url, json=body) as resp:
        job = await resp.json()
        if resp.status != 202:
            print(f"demo data: {label} not started ({resp.status}): {job.get('detail', job)}", file=sys.stderr)
            return job
    while job.get("status") in ("queued", "running"):
        await asyncio.sleep(0.3)
        async with session.get(poll_url.format(job[id_field])) as resp:
            job = await resp.json()
    detail = "" if job.get("status") == "succeeded" else f": {job.get('error') or job}"
    print(f"demo data: {label} {job.get('status')}{detail}", file=sys.stderr)
    return job


def _progress(done: int, total: int, customers: int) -> None:
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"\rdemo data: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events, {customers} customers")
    sys.stderr.flush()
