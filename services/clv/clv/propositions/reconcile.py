"""`python -m clv reconcile [--repair]`: the copy of lifecycle's stages that targets value propositions, against
lifecycle's state route (shared/reconcile.py)."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import not_merged_away_sql
from shared.reconcile import CopyCheck, Drift, run_checks

from clv.settings import ClvSettings

# A row without a stage (stage.cleared) holds none, as lifecycle does. A merged-away id's row is left out: lifecycle
# has no stage for it, and the copy keeps the row for when an unmerge restores it (clv/transaction_summary/projection.py,
# FOLD); it is never read meanwhile.
STAGE_COPY = sa.text(f"""SELECT customer_id, stage, version FROM clv.customer_stage s
WHERE s.stage IS NOT NULL AND {not_merged_away_sql("clv.customer_alias", "s.customer_id")}
  AND (CAST(:ids AS uuid[]) IS NULL OR customer_id = ANY(CAST(:ids AS uuid[])))
  AND (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
  AND (CAST(:upto AS uuid) IS NULL OR customer_id <= CAST(:upto AS uuid))""")
# The owner's state with its version, unless the copy already holds a newer one (an event that arrived since).
REPAIR = sa.text("""
INSERT INTO clv.customer_stage AS s (customer_id, stage, changed_at, version) VALUES (:c, :stage, :at, :version)
ON CONFLICT (customer_id) DO UPDATE SET stage = EXCLUDED.stage, changed_at = EXCLUDED.changed_at,
    version = EXCLUDED.version, updated_at = now()
WHERE s.version IS NULL OR s.version <= EXCLUDED.version
""")
# Lifecycle holds no stage: the copy holds none either, as after `stage.cleared`. The version it held stays, so an
# older `stage.changed` arriving late cannot bring the stage back (the owner's order), and a newer one that arrived
# since the check (another version) is not cleared.
CLEAR = sa.text("""UPDATE clv.customer_stage SET stage = NULL, updated_at = now()
WHERE customer_id = :c AND version IS NOT DISTINCT FROM :seen""")


async def stage_copy(session: AsyncSession, ids, after, upto) -> dict:
    params = {"ids": list(ids) if ids is not None else None, "after": after, "upto": upto}
    return {r.customer_id: (r.stage, r.version) for r in await session.execute(STAGE_COPY, params)}


async def repair_stages(session: AsyncSession, drifts: list[Drift]) -> None:
    for d in drifts:
        o = d.owner_state
        if o is None:
            await session.execute(CLEAR, {"c": d.customer_id, "seen": d.copy[1]})
        else:
            await session.execute(
                REPAIR,
                {"c": d.customer_id, "stage": o["stage"], "version": o["version"], "at": datetime.fromisoformat(o["changed_at"])},
            )


def checks(settings: ClvSettings) -> list[CopyCheck]:
    return [
        CopyCheck(
            fact="stage (lifecycle)",
            owner="lifecycle",
            owner_url=settings.lifecycle_url,
            owner_path="/v1/lifecycle/stages/state",
            owner_params=(),
            owner_states=lambda items: {uuid.UUID(i["customer_id"]): i for i in items},
            comparable=lambda o: (o["stage"], o["version"]),
            load_copy=stage_copy,
            repair=repair_stages,
        )
    ]


async def run(settings: ClvSettings, repair: bool) -> list[Drift]:
    return await run_checks(settings.database_url, checks(settings), repair)
