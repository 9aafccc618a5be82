"""Queries of the stages feature: facts in and out, locks, and the derived stage and history written back.

Every batch statement has a fixed shape (`unnest` of arrays), so it is prepared once whatever the batch size.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import IdentityFollower, pin_legacy_unmerge_sql
from shared.contracts.interaction import CustomerMerged, CustomerUnmerged
from shared.contracts.lifecycle import Stage
from shared.contracts.redaction import redact_event_data, tokenizer
from shared.db import driver_connection
from shared.messaging.outbox import forget_subjects

from lifecycle.customers.repository import ERASED_AMONG, not_erased_sql
from lifecycle.rules.engine import Fact, FactKind, Transition
from lifecycle.tables import messaging

INSERT_FACTS = sa.text(f"""
INSERT INTO lifecycle.customer_fact (source, event_id, kind, customer_id, home_customer_id, occurred_at, data)
SELECT f.source, f.event_id, f.kind, coalesce(m.survivor_id, f.home), f.home, f.occurred_at, f.data
FROM unnest(CAST(:sources AS text[]), CAST(:event_ids AS text[]), CAST(:kinds AS text[]),
            CAST(:homes AS uuid[]), CAST(:occurred AS timestamptz[]), CAST(:data AS jsonb[]))
     AS f(source, event_id, kind, home, occurred_at, data)
-- A fact belongs to its home's live customer; one whose home was erased is dropped.
LEFT JOIN lifecycle.merged_customer m ON m.merged_id = f.home
WHERE {not_erased_sql("f.home")}
ON CONFLICT DO NOTHING
RETURNING customer_id, source, event_id, kind
""")

# Transaction-scoped per-customer locks, always taken in one order: the consumer, the sweep and manual moves
# re-derive the same customers without interleaving (and without deadlocking each other).
LOCK_CUSTOMERS = sa.text("""
SELECT pg_advisory_xact_lock(hashtextextended(c::text, 7)) FROM unnest(CAST(:customer_ids AS uuid[])) AS c
ORDER BY c
""")

SELECT_FACTS = sa.text("""
SELECT customer_id, source, event_id, kind, occurred_at, CAST(data AS text) AS data FROM lifecycle.customer_fact
WHERE customer_id = ANY(CAST(:customer_ids AS uuid[]))
""")

SELECT_HISTORY = sa.text("""
SELECT customer_id, from_stage, stage, entered_at, rule, trigger_event_id, reason FROM lifecycle.stage_history
WHERE customer_id = ANY(CAST(:customer_ids AS uuid[])) ORDER BY customer_id, entered_at, id
""")

DELETE_HISTORY = sa.text("DELETE FROM lifecycle.stage_history WHERE customer_id = ANY(CAST(:customer_ids AS uuid[]))")
DELETE_STAGES = sa.text("DELETE FROM lifecycle.customer_stage WHERE customer_id = ANY(CAST(:customer_ids AS uuid[]))")

INSERT_HISTORY = sa.text("""
INSERT INTO lifecycle.stage_history (customer_id, from_stage, stage, entered_at, left_at, reason, rule,
                                     trigger_source, trigger_event_id, actor, rule_set_version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:from_stages AS text[]), CAST(:stages AS text[]),
                     CAST(:entered AS timestamptz[]), CAST(:left AS timestamptz[]), CAST(:reasons AS text[]),
                     CAST(:rules AS text[]), CAST(:trigger_sources AS text[]), CAST(:trigger_ids AS text[]),
                     CAST(:actors AS text[]), CAST(:versions AS int[]))
""")

# `version` is null for a customer whose stage published nothing this time: the stored one stands.
UPSERT_STAGES = sa.text("""
INSERT INTO lifecycle.customer_stage AS s
    (customer_id, stage, stage_entered_at, order_count, total_spend, spend_by_currency, last_purchase_at,
     rule_set_version, version, derivation)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:stages AS text[]), CAST(:entered AS timestamptz[]),
                     CAST(:counts AS int[]), CAST(:totals AS numeric[]), CAST(:by_currency AS jsonb[]),
                     CAST(:lasts AS timestamptz[]), CAST(:versions AS int[]), CAST(:stage_versions AS bigint[]),
                     CAST(:derivations AS jsonb[]))
ON CONFLICT (customer_id) DO UPDATE SET
    stage = EXCLUDED.stage, stage_entered_at = EXCLUDED.stage_entered_at, order_count = EXCLUDED.order_count,
    total_spend = EXCLUDED.total_spend, spend_by_currency = EXCLUDED.spend_by_currency,
    last_purchase_at = EXCLUDED.last_purchase_at,
    rule_set_version = EXCLUDED.rule_set_version, version = coalesce(EXCLUDED.version, s.version),
    derivation = EXCLUDED.derivation, updated_at = now()
""")

# Every customer asked for, with its stage row if it has one; one without counts its facts (a customer whose
# facts are all the batch's is derived from them, nothing read back: `rederive`). The JSON comes as text and is
# decoded with orjson, as it was written (a third of the cost of the driver's json.loads).
SELECT_CURRENT = sa.text("""
SELECT c.customer_id, s.stage, s.stage_entered_at, s.order_count, CAST(s.spend_by_currency AS text) AS spend_by_currency,
       s.last_purchase_at, s.rule_set_version, CAST(s.derivation AS text) AS derivation,
       CASE WHEN s.customer_id IS NULL
            THEN (SELECT count(*) FROM lifecycle.customer_fact f WHERE f.customer_id = c.customer_id) END AS facts
FROM unnest(CAST(:customer_ids AS uuid[])) AS c(customer_id)
LEFT JOIN lifecycle.customer_stage s ON s.customer_id = c.customer_id
""")

NEXT_VERSIONS = sa.text("SELECT nextval('lifecycle.stage_version_seq') FROM generate_series(1, :n)")


def fact_row(home: uuid.UUID, fact: Fact, **extra: object) -> dict:
    """A fact of the customer it came in under (`home`); it is stored with that customer's live survivor."""
    data = {
        k: v
        for k, v in {
            "purchase_id": fact.purchase_id,
            "nps": fact.nps,
            "tier": fact.tier,
            "probability_alive": fact.probability_alive,
            "to_stage": fact.to_stage,
            "actor": fact.actor,
            "reason": fact.reason,
            **extra,
        }.items()
        if v is not None
    }
    return {
        "source": fact.source,
        "event_id": fact.event_id,
        "kind": fact.kind.value,
        "home": home,
        "occurred_at": fact.occurred_at,
        "data": orjson.dumps(data, default=str).decode(),
    }


async def insert_facts(session: AsyncSession, rows: Sequence[dict]) -> dict[tuple[str, str, str], uuid.UUID]:
    """Stores the facts not stored yet; returns the key (source, event id, kind) of each one it inserted and
    the customer it was stored with (its home's live customer)."""
    if not rows:
        return {}
    inserted = await session.execute(
        INSERT_FACTS,
        {
            k: [r[c] for r in rows]
            for k, c in (
                ("sources", "source"),
                ("event_ids", "event_id"),
                ("kinds", "kind"),
                ("homes", "home"),
                ("occurred", "occurred_at"),
                ("data", "data"),
            )
        },
    )
    return {(r.source, r.event_id, r.kind): r.customer_id for r in inserted}


@dataclass(frozen=True, slots=True)
class Current:
    """A customer's current stage row (stage None: it has none, and `facts` stored facts)."""

    stage: str | None
    stage_entered_at: datetime | None
    order_count: int
    spend_by_currency: dict[str, str]
    last_purchase_at: datetime | None
    rule_set_version: int | None
    derivation: dict | None
    facts: int | None


async def load_current(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Current]:
    """The current stage rows of these customers (stage, aggregates, rule-set version, derivation state); one
    without a row has its facts counted."""
    return {
        r.customer_id: Current(
            r.stage,
            r.stage_entered_at,
            r.order_count or 0,
            orjson.loads(r.spend_by_currency) if r.spend_by_currency else {},
            r.last_purchase_at,
            r.rule_set_version,
            orjson.loads(r.derivation) if r.derivation else None,
            r.facts,
        )
        for r in await session.execute(SELECT_CURRENT, {"customer_ids": list(customer_ids)})
    }


async def latest_fact_at(session: AsyncSession, customer_id: uuid.UUID) -> datetime | None:
    return (
        await session.execute(
            sa.text("SELECT max(occurred_at) FROM lifecycle.customer_fact WHERE customer_id = :c"), {"c": customer_id}
        )
    ).scalar()


async def lock_customers(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(LOCK_CUSTOMERS, {"customer_ids": list(customer_ids)})


class CustomerFacts:
    """A customer's facts as the rules read them, plus the purchase aggregates the view shows."""

    __slots__ = ("facts", "amounts", "currencies", "refunded")

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.amounts: dict[str, Decimal] = {}
        self.currencies: dict[str, str] = {}  # purchase id → its currency
        self.refunded: dict[str, Decimal] = {}  # purchase id → refunded so far

    def add(self, fact: Fact, data: dict | None = None) -> None:
        """One fact, with the data stored beside it (a purchase's or refund's amount and currency)."""
        self.facts.append(fact)
        data = data or {}
        amount, pid = data.get("amount"), fact.purchase_id
        if amount is None or pid is None:  # only purchases and refunds have both
            return
        if fact.kind is FactKind.PURCHASE:
            self.amounts[pid] = Decimal(str(amount))
            self.currencies[pid] = data.get("currency", "")
        elif fact.kind is FactKind.REFUND:
            self.refunded[pid] = self.refunded.get(pid, Decimal(0)) + Decimal(str(amount))


async def load_facts(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CustomerFacts]:
    out: dict[uuid.UUID, CustomerFacts] = defaultdict(CustomerFacts)
    rows = await session.execute(SELECT_FACTS, {"customer_ids": list(customer_ids)})
    for r in rows:
        d = orjson.loads(r.data)
        kind = FactKind(r.kind)
        out[r.customer_id].add(
            Fact(
                kind=kind,
                occurred_at=r.occurred_at,
                source=r.source,
                event_id=r.event_id,
                purchase_id=d.get("purchase_id"),
                nps=d.get("nps"),
                tier=d.get("tier"),
                probability_alive=d.get("probability_alive"),
                to_stage=Stage(d["to_stage"]) if d.get("to_stage") else None,
                actor=d.get("actor"),
                reason=d.get("reason"),
            ),
            d,
        )
    return out


# A stored transition as the rules would give it again; the reason is part of it ("5 purchases in 365 days"
# becomes "4 …" when an earlier purchase is cancelled or unmerged away: the row is rewritten, nothing published).
HistoryKey = tuple[str | None, str, datetime, str | None, str | None, str | None]


async def load_history_keys(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[HistoryKey]]:
    out: dict[uuid.UUID, list[HistoryKey]] = defaultdict(list)
    for r in await session.execute(SELECT_HISTORY, {"customer_ids": list(customer_ids)}):
        out[r.customer_id].append((r.from_stage, r.stage, r.entered_at, r.rule, r.trigger_event_id, r.reason))
    return out


def history_key(t: Transition) -> HistoryKey:
    return (t.from_stage.value if t.from_stage else None, t.stage.value, t.entered_at, t.rule, t.trigger_event_id, t.reason)


CLOSE_OPEN = sa.text("""
UPDATE lifecycle.stage_history h SET left_at = v.left_at, updated_at = now()
FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:left AS timestamptz[])) AS v(customer_id, left_at)
WHERE h.customer_id = v.customer_id AND h.left_at IS NULL
""")


async def write_history(
    session: AsyncSession, derived: dict[uuid.UUID, list[Transition]], stored: dict[uuid.UUID, list[HistoryKey]], version: int
) -> None:
    """Writes the derived history of these customers (and their funnel rows); no transitions, no history.

    The common case, transitions appended to an unchanged past, closes the open row and inserts the new ones;
    a changed past (late event, rule change, merge) rewrites the customer's history.
    """
    if not derived:
        return
    keep: dict[uuid.UUID, int] = {}
    for cid, transitions in derived.items():
        old = stored.get(cid, [])
        if old and len(old) < len(transitions) and [history_key(t) for t in transitions[: len(old)]] == old:
            keep[cid] = len(old)
    rewrite = [cid for cid in derived if cid not in keep and stored.get(cid)]
    if rewrite:
        await session.execute(DELETE_HISTORY, {"customer_ids": rewrite})
    if keep:
        await session.execute(CLOSE_OPEN, {"customer_ids": list(keep), "left": [derived[c][keep[c]].entered_at for c in keep]})
    hist = _history_rows(derived, keep, version)
    if hist:
        await session.execute(INSERT_HISTORY, hist)
    await refresh_funnel_entries(session, list(derived))


async def append_history(session: AsyncSession, appended: dict[uuid.UUID, list[Transition]], version: int) -> None:
    """Transitions that follow a customer's stored history (incremental derivation): the open row is closed
    where the first of them begins, they are inserted, and the funnel rows refreshed."""
    appended = {cid: ts for cid, ts in appended.items() if ts}
    if not appended:
        return
    await session.execute(CLOSE_OPEN, {"customer_ids": list(appended), "left": [ts[0].entered_at for ts in appended.values()]})
    await session.execute(INSERT_HISTORY, _history_rows(appended, {}, version))
    await refresh_funnel_entries(session, list(appended))


def _history_rows(derived: dict[uuid.UUID, list[Transition]], keep: dict[uuid.UUID, int], version: int) -> dict:
    hist: dict[str, list] = defaultdict(list)
    for cid, transitions in derived.items():
        for i, t in enumerate(transitions):
            if i < keep.get(cid, 0):
                continue
            hist["customer_ids"].append(cid)
            hist["from_stages"].append(t.from_stage.value if t.from_stage else None)
            hist["stages"].append(t.stage.value)
            hist["entered"].append(t.entered_at)
            hist["left"].append(transitions[i + 1].entered_at if i + 1 < len(transitions) else None)
            hist["reasons"].append(t.reason)
            hist["rules"].append(t.rule)
            hist["trigger_sources"].append(t.trigger_source)
            hist["trigger_ids"].append(t.trigger_event_id)
            hist["actors"].append(t.actor)
            hist["versions"].append(version)
    return dict(hist)


async def next_versions(session: AsyncSession, n: int) -> list[int]:
    """`n` new stage versions, increasing. Taken under the customers' locks, so a customer's versions increase
    in the order its changes commit."""
    if n == 0:
        return []
    return sorted((await session.execute(NEXT_VERSIONS, {"n": n})).scalars().all())


CENTS = Decimal("0.0001")  # as total_spend's numeric(18, 4)


def _single_total(spend: dict[str, Decimal]) -> Decimal | None:
    return Decimal(0) if not spend else next(iter(spend.values())) if len(spend) == 1 else None


async def write_current(
    session: AsyncSession,
    derived: dict[uuid.UUID, list[Transition]],
    aggregates: dict[uuid.UUID, tuple[int, dict[str, Decimal], datetime | None]],
    version: int,
    stage_versions: dict[uuid.UUID, int],
    derivations: dict[uuid.UUID, dict],
) -> None:
    """The current stage row of each customer: its last transition and purchase aggregates; none without one.

    `stage_versions` holds the version of the last stage.changed published for a customer in this transaction;
    `derivations` the rules' state after each customer's last fact (JSON)."""
    staged = {cid: ts[-1] for cid, ts in derived.items() if ts}
    gone = [cid for cid, ts in derived.items() if not ts]
    if gone:
        await session.execute(DELETE_STAGES, {"customer_ids": gone})
    if staged:
        await session.execute(
            UPSERT_STAGES,
            {
                "customer_ids": list(staged),
                "stages": [t.stage.value for t in staged.values()],
                "entered": [t.entered_at for t in staged.values()],
                "counts": [aggregates[c][0] for c in staged],
                # One figure only for one currency (or none): money of two currencies is never added.
                "totals": [_single_total(aggregates[c][1]) for c in staged],
                "by_currency": [
                    orjson.dumps({k: str(v.quantize(CENTS)) for k, v in sorted(aggregates[c][1].items())}).decode()
                    for c in staged
                ],
                "lasts": [aggregates[c][2] for c in staged],
                "versions": [version] * len(staged),
                "stage_versions": [stage_versions.get(c) for c in staged],
                "derivations": [orjson.dumps(derivations[c]).decode() if c in derivations else None for c in staged],
            },
        )


REFRESH_FUNNEL = sa.text("""
WITH summary AS (
    SELECT customer_id, min(entered_at) AS first_entered_at, date_trunc('month', min(entered_at), 'UTC'),
           min(entered_at) FILTER (WHERE stage = 'approach'),
           min(entered_at) FILTER (WHERE stage = 'acquisition'),
           min(entered_at) FILTER (WHERE stage = 'development'),
           min(entered_at) FILTER (WHERE stage = 'retention'),
           min(entered_at) FILTER (WHERE stage = 'loyalty')
    FROM lifecycle.stage_history WHERE customer_id = ANY(CAST(:customer_ids AS uuid[]))
    GROUP BY customer_id
), gone AS (
    DELETE FROM lifecycle.funnel_entry f WHERE f.customer_id = ANY(CAST(:customer_ids AS uuid[]))
      AND NOT EXISTS (SELECT 1 FROM summary s WHERE s.customer_id = f.customer_id)
)
INSERT INTO lifecycle.funnel_entry AS f (customer_id, first_entered_at, cohort_month, entered_approach_at,
                                         entered_acquisition_at, entered_development_at, entered_retention_at,
                                         entered_loyalty_at)
SELECT * FROM summary
ON CONFLICT (customer_id) DO UPDATE SET
    first_entered_at = EXCLUDED.first_entered_at, cohort_month = EXCLUDED.cohort_month,
    entered_approach_at = EXCLUDED.entered_approach_at,
    entered_acquisition_at = EXCLUDED.entered_acquisition_at, entered_development_at = EXCLUDED.entered_development_at,
    entered_retention_at = EXCLUDED.entered_retention_at, entered_loyalty_at = EXCLUDED.entered_loyalty_at,
    updated_at = now()
""")


async def refresh_funnel_entries(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> None:
    """Recomputes these customers' funnel rows from their stage history (one statement)."""
    if customer_ids:
        await session.execute(REFRESH_FUNNEL, {"customer_ids": list(customer_ids)})


# --- identity: merge, unmerge, erasure --------------------------------------------------------------------

ERASE = [
    sa.text("DELETE FROM lifecycle.customer_fact WHERE customer_id = :customer_id"),
    sa.text("DELETE FROM lifecycle.deal WHERE customer_id = :customer_id"),
    sa.text("DELETE FROM lifecycle.merged_customer WHERE merged_id = :customer_id OR survivor_id = :customer_id"),
    sa.text("DELETE FROM lifecycle.customer_merge WHERE merged_id = :customer_id OR survivor_id = :customer_id"),
]


# The GET of a customer's lifecycle, which frontends and the freshness probes poll, reads on the session's driver
# connection (shared.db.driver_connection): its two statements cost 1.5x less CPU than through SQLAlchemy.
#
# The stage row (all nulls without one) and the survivor of a merged-away id, in one round trip: a customer
# polled before its first fact reached lifecycle (every poll of the freshness benchmark) costs one statement.
STAGE_OR_SURVIVOR = """
SELECT s.customer_id, s.stage, s.stage_entered_at, s.order_count, s.total_spend, s.spend_by_currency, s.last_purchase_at,
       s.rule_set_version, (SELECT survivor_id FROM lifecycle.merged_customer WHERE merged_id = q.id) AS survivor_of
FROM (SELECT CAST($1 AS uuid) AS id) q LEFT JOIN lifecycle.customer_stage s ON s.customer_id = q.id
"""
STAGE_HISTORY = """
SELECT stage, from_stage, entered_at, left_at, rule, reason, trigger_event_id, trigger_source, actor, rule_set_version
FROM lifecycle.stage_history WHERE customer_id = $1 ORDER BY entered_at, id
"""


async def stage_or_survivor(session: AsyncSession, customer_id: uuid.UUID) -> tuple[Any, uuid.UUID | None]:
    """The customer's stage row (an asyncpg record), or None and its survivor if it was merged away (None: not, as
    far as lifecycle has heard)."""
    row = await (await driver_connection(session)).fetchrow(STAGE_OR_SURVIVOR, customer_id)
    return (row if row["customer_id"] is not None else None), row["survivor_of"]


async def stage_history_of(session: AsyncSession, customer_id: uuid.UUID) -> list[Any]:
    """The customer's stage history, oldest first (asyncpg records)."""
    return await (await driver_connection(session)).fetch(STAGE_HISTORY, customer_id)


async def survivor_of(session: AsyncSession, merged: uuid.UUID) -> uuid.UUID | None:
    """The customer a merged-away id now lives in (None: not merged away, as far as lifecycle has heard)."""
    return (
        await session.execute(sa.text("SELECT survivor_id FROM lifecycle.merged_customer WHERE merged_id = :m"), {"m": merged})
    ).scalar()


# The copy's merges (shared/contracts/identity.py): every fact belongs to live(home) over the merges in force.
REFRESH_ALIASES = [
    sa.text(sql)
    for sql in [
        "DELETE FROM lifecycle.merged_customer WHERE merged_id = ANY(CAST(:ids AS uuid[]))",
        """INSERT INTO lifecycle.merged_customer (merged_id, survivor_id, merge_id)
       SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[]), CAST(:merge_ids AS uuid[])) AS a(id, live, m)
       WHERE a.id <> a.live""",
    ]
]
# Facts whose home is in the chain go to their home's live customer; returns the customers they left.
MOVE_FACTS = [
    sa.text("""
WITH target AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[])) AS a(home, live)),
old AS (SELECT f.customer_id FROM lifecycle.customer_fact f JOIN target t ON f.home_customer_id = t.home
        WHERE f.customer_id <> t.live),
moved AS (UPDATE lifecycle.customer_fact f SET customer_id = t.live, updated_at = now() FROM target t
          WHERE f.home_customer_id = t.home AND f.customer_id <> t.live)
SELECT DISTINCT customer_id FROM old
""")
]
# The undo of a merge from before identity versions moves the purchase facts it lists
# (shared/contracts/identity.py); the other facts folded by the merge got their home at the upgrade.
PIN_LEGACY_UNMERGE = [
    (sa.text(pin_legacy_unmerge_sql("lifecycle.customer_fact", "CAST(data->>'purchase_id' AS uuid)")[0]), ["purchase_ids"])
]
# A merged-away id's deals go to its live customer (they carry no home: an unmerge leaves them there).
FOLD_DEALS = sa.text("UPDATE lifecycle.deal SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged")
IDENTITY = IdentityFollower(
    "lifecycle.customer_merge",
    erased_among=ERASED_AMONG,
    refresh_aliases=REFRESH_ALIASES,
    move_facts=MOVE_FACTS,
    fold=[FOLD_DEALS],
    pin_legacy=PIN_LEGACY_UNMERGE,
)


async def follow_identity(session: AsyncSession, p: CustomerMerged | CustomerUnmerged) -> set[uuid.UUID]:
    """Records a merge (or its undo) and moves every fact whose home's live customer it changes; returns the
    customers whose facts changed (shared/contracts/identity.py)."""
    return (await IDENTITY.follow(session, p)).touched


async def erase(session: AsyncSession, customer_id: uuid.UUID) -> None:
    for statement in ERASE:
        await session.execute(statement, {"customer_id": customer_id})
    # A manual move's reason travels in `stage.changed`: no event about the customer keeps free text (R8).
    token = tokenizer()
    await forget_subjects(
        session, messaging, [str(customer_id)], lambda event_type, data: redact_event_data(event_type, data, token)
    )


async def stage_states(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, customer_ids: Sequence[uuid.UUID] | None
) -> list[sa.Row]:
    """Current stages with their versions in customer id order, after `after` (or of the given customers)."""
    return list(
        await session.execute(
            sa.text("""
        SELECT customer_id, stage, stage_entered_at AS changed_at, version FROM lifecycle.customer_stage
        WHERE (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
          AND (CAST(:ids AS uuid[]) IS NULL OR customer_id = ANY(CAST(:ids AS uuid[])))
        ORDER BY customer_id LIMIT :limit"""),
            {"after": after, "limit": limit, "ids": list(customer_ids) if customer_ids else None},
        )
    )
