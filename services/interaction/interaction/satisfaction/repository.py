from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# The group column per grouping; chosen from an enum, never from the caller's text.
GROUPS = {
    "none": ("CAST(NULL AS text)", ""),
    "partner": ("f.source", ""),
    "proposition": ("f.proposition_id", "AND f.proposition_id IS NOT NULL"),
    # Current memberships (as segmentation last announced them), of the customer the feedback now belongs to.
    "segment": ("m.segment_key", ""),
}


def _sql(group_by: str, interval: str | None) -> sa.TextClause:
    column, where = GROUPS[group_by]
    join = "JOIN interaction.segment_membership m ON m.customer_id = f.customer_id AND m.member" if group_by == "segment" else ""
    period = (
        f"(date_trunc('{interval}', f.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        if interval
        else "CAST(NULL AS timestamptz)"
    )
    return sa.text(f"""
WITH f AS (
    SELECT a.customer_id, a.source, a.occurred_at, a.data->>'proposition_id' AS proposition_id,
           CAST(a.data->>'nps' AS int) AS nps, CAST(a.data->>'csat' AS int) AS csat
    FROM interaction.activity a
    WHERE a.type = 'feedback.submitted' AND a.occurred_at >= :start AND a.occurred_at < :end
)
SELECT {column} AS grp, {period} AS period, count(*) AS responses, count(f.nps) AS nps_responses,
       count(*) FILTER (WHERE f.nps >= 9) AS promoters, count(*) FILTER (WHERE f.nps BETWEEN 7 AND 8) AS passives,
       count(*) FILTER (WHERE f.nps <= 6) AS detractors, count(f.csat) AS csat_responses, avg(f.csat) AS mean_csat,
       count(*) FILTER (WHERE f.csat >= 4) AS satisfied
FROM f {join}
WHERE (f.nps IS NOT NULL OR f.csat IS NOT NULL) {where}
GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST
""")


async def satisfaction(
    session: AsyncSession, group_by: str, interval: str | None, start: datetime, end: datetime
) -> list[sa.Row]:
    return list((await session.execute(_sql(group_by, interval), {"start": start, "end": end})).all())
