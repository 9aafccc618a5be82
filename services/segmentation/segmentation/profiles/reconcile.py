"""`python -m segmentation reconcile [--repair]`: the stage (lifecycle's), value (clv's) and attribute
(interaction's) copies on `customer_aggregate` against their owners' state routes (shared/reconcile.py)."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import not_erased_sql, not_merged_away_sql
from shared.messaging.outbox import Outbox
from shared.reconcile import CopyCheck, Drift, newest_per_customer, run_checks

from segmentation.profiles.projection import ERASED
from segmentation.rules.service import refresh_rule_segments
from segmentation.settings import SCHEMA, SegmentationSettings
from segmentation.tables import messaging

RANGE = """(CAST(:ids AS uuid[]) IS NULL OR customer_id = ANY(CAST(:ids AS uuid[])))
    AND (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
    AND (CAST(:upto AS uuid) IS NULL OR customer_id <= CAST(:upto AS uuid))"""

# A merged-away id's row is left out: its owners hold nothing for it, and the copy keeps its stage and value for
# when an unmerge restores it (profiles/projection.py, FOLD_STATEMENTS); it is never read meanwhile.
LIVE = not_merged_away_sql("segmentation.customer_alias", "customer_aggregate.customer_id")
STAGE_COPY = sa.text(f"""SELECT customer_id, stage, stage_version FROM segmentation.customer_aggregate
WHERE stage IS NOT NULL AND {LIVE} AND {RANGE}""")
VALUE_COPY = sa.text(f"""SELECT customer_id, clv_currency, value_tier, value_version FROM segmentation.customer_aggregate
WHERE clv IS NOT NULL AND {LIVE} AND {RANGE}""")

# The owner's state with its version, unless the copy already holds a newer one (an event that arrived since).
REPAIR_STAGE = sa.text("""
INSERT INTO segmentation.customer_aggregate AS s (customer_id, stage, stage_changed_at, stage_version)
VALUES (:c, :stage, :at, :version)
ON CONFLICT (customer_id) DO UPDATE SET stage = EXCLUDED.stage, stage_changed_at = EXCLUDED.stage_changed_at,
    stage_version = EXCLUDED.stage_version, updated_at = now()
WHERE s.stage_version IS NULL OR s.stage_version <= EXCLUDED.stage_version
""")
# The owner holds nothing: the copy holds nothing either, as after `stage.cleared`. The version it held stays, so
# an older event arriving late cannot bring the state back (the owner's order), and a newer one that arrived since
# the check (another version) is not cleared.
CLEAR_STAGE = sa.text("""UPDATE segmentation.customer_aggregate SET stage = NULL, stage_changed_at = NULL, updated_at = now()
WHERE customer_id = :c AND stage_version IS NOT DISTINCT FROM :seen""")
REPAIR_VALUE = sa.text("""
INSERT INTO segmentation.customer_aggregate AS s
    (customer_id, clv, clv_currency, value_tier, p_alive, value_as_of, value_version)
VALUES (:c, :clv, :currency, :tier, :p_alive, :at, :version)
ON CONFLICT (customer_id) DO UPDATE SET clv = EXCLUDED.clv, clv_currency = EXCLUDED.clv_currency,
    value_tier = EXCLUDED.value_tier, p_alive = EXCLUDED.p_alive, value_as_of = EXCLUDED.value_as_of,
    value_version = EXCLUDED.value_version, updated_at = now()
WHERE s.value_version IS NULL OR s.value_version <= EXCLUDED.value_version
""")
CLEAR_VALUE = sa.text("""UPDATE segmentation.customer_aggregate SET clv = NULL, clv_currency = NULL, value_tier = NULL,
    p_alive = NULL, value_as_of = NULL, updated_at = now()
WHERE customer_id = :c AND value_version IS NOT DISTINCT FROM :seen""")

# The attribute copy of the customers that hold any: a row without attributes and no row read alike.
ATTRIBUTES_COPY = sa.text(f"""SELECT customer_id, CAST(attributes AS text) AS attributes
FROM segmentation.customer_aggregate WHERE attributes <> '{{}}'::jsonb AND {LIVE} AND {RANGE}""")
# The owner's profile with its version, unless the copy already holds a newer one (an event that arrived since).
REPAIR_ATTRIBUTES = sa.text(f"""
INSERT INTO segmentation.customer_aggregate AS s (customer_id, attributes, attributes_version)
SELECT CAST(:c AS uuid), CAST(:attributes AS jsonb), :version WHERE {not_erased_sql(ERASED, "CAST(:c AS uuid)")}
ON CONFLICT (customer_id) DO UPDATE SET attributes = EXCLUDED.attributes,
    attributes_version = EXCLUDED.attributes_version, updated_at = now()
WHERE s.attributes_version IS NULL OR s.attributes_version <= EXCLUDED.attributes_version
""")
# The owner publishes no profile for the customer (erased, say): the copy holds no attributes either, unless they
# changed since the check. The version stays, as for a stage cleared.
CLEAR_ATTRIBUTES = sa.text("""UPDATE segmentation.customer_aggregate SET attributes = '{}'::jsonb, updated_at = now()
WHERE customer_id = :c AND jsonb_strip_nulls(attributes) = CAST(:seen AS jsonb)""")


def present_attributes(attributes: dict) -> dict | None:
    """What of a set of attributes readers see: a null is an attribute removed (rules/language.py), and a customer
    without any is one without attributes (None)."""
    return {k: v for k, v in attributes.items() if v is not None} or None


def _range(ids: Sequence[uuid.UUID] | None, after: uuid.UUID | None, upto: uuid.UUID | None) -> dict:
    return {"ids": list(ids) if ids is not None else None, "after": after, "upto": upto}


async def stage_copy(session: AsyncSession, ids, after, upto) -> dict:
    return {r.customer_id: (r.stage, r.stage_version) for r in await session.execute(STAGE_COPY, _range(ids, after, upto))}


async def value_copy(session: AsyncSession, ids, after, upto) -> dict:
    return {
        r.customer_id: (r.clv_currency.strip() if r.clv_currency else None, r.value_tier, r.value_version)
        for r in await session.execute(VALUE_COPY, _range(ids, after, upto))
    }


async def attribute_copy(session: AsyncSession, ids, after, upto) -> dict:
    rows = await session.execute(ATTRIBUTES_COPY, _range(ids, after, upto))
    return {r.customer_id: a for r in rows if (a := present_attributes(orjson.loads(r.attributes))) is not None}


def checks(settings: SegmentationSettings) -> list[CopyCheck]:
    outbox = Outbox(messaging, SCHEMA, settings.topic_prefix)

    async def refresh(session: AsyncSession, drifts: list[Drift]) -> None:
        # The repaired customers' rule segments are re-evaluated, as after any event.
        await refresh_rule_segments(session, outbox, settings.reporting_currency, customer_ids=[d.customer_id for d in drifts])

    async def repair_stage(session: AsyncSession, drifts: list[Drift]) -> None:
        for d in drifts:
            o = d.owner_state
            if o is None:
                await session.execute(CLEAR_STAGE, {"c": d.customer_id, "seen": d.copy[1]})
            else:
                await session.execute(
                    REPAIR_STAGE,
                    {
                        "c": d.customer_id,
                        "stage": o["stage"],
                        "version": o["version"],
                        "at": datetime.fromisoformat(o["changed_at"]),
                    },
                )
        await refresh(session, drifts)

    async def repair_value(session: AsyncSession, drifts: list[Drift]) -> None:
        for d in drifts:
            o = d.owner_state
            if o is None:
                await session.execute(CLEAR_VALUE, {"c": d.customer_id, "seen": d.copy[2]})
            else:
                await session.execute(
                    REPAIR_VALUE,
                    {
                        "c": d.customer_id,
                        "clv": o["clv"],
                        "currency": o["currency"],
                        "tier": o["tier"],
                        "p_alive": o["probability_alive"],
                        "at": datetime.fromisoformat(o["as_of"]),
                        "version": o["version"],
                    },
                )
        await refresh(session, drifts)

    async def repair_attributes(session: AsyncSession, drifts: list[Drift]) -> None:
        for d in drifts:
            o = d.owner_state
            if o is None:
                await session.execute(CLEAR_ATTRIBUTES, {"c": d.customer_id, "seen": orjson.dumps(d.copy).decode()})
            else:
                await session.execute(
                    REPAIR_ATTRIBUTES,
                    {"c": d.customer_id, "attributes": orjson.dumps(o["attributes"]).decode(), "version": o["version"]},
                )
        await refresh(session, drifts)

    return [
        CopyCheck(
            fact="stage (lifecycle)",
            owner="lifecycle",
            owner_url=settings.lifecycle_url,
            owner_path="/v1/lifecycle/stages/state",
            owner_params=(),
            owner_states=newest_per_customer,
            comparable=lambda o: (o["stage"], o["version"]),
            load_copy=stage_copy,
            repair=repair_stage,
        ),
        CopyCheck(
            fact="value (clv)",
            owner="clv",
            owner_url=settings.clv_url,
            owner_path="/v1/value/state",
            owner_params=(),
            owner_states=newest_per_customer,
            comparable=lambda o: (o["currency"], o["tier"], o["version"]),
            load_copy=value_copy,
            repair=repair_value,
        ),
        CopyCheck(
            fact="attributes (interaction)",
            owner="interaction",
            owner_url=settings.interaction_url,
            owner_path="/v1/customers/profiles/state",
            owner_params=(),
            owner_states=newest_per_customer,
            # The attributes only, not the version: profiles published before interaction kept their versions
            # were given new ones (its migration 0011), so equal attributes under another version are no drift.
            comparable=lambda o: present_attributes(o["attributes"]),
            load_copy=attribute_copy,
            repair=repair_attributes,
        ),
    ]


async def run(settings: SegmentationSettings, repair: bool) -> list[Drift]:
    return await run_checks(settings.database_url, checks(settings), repair)
