"""funnel rows hold when each stage was itself first entered (was: that stage or a later one, so a skipped stage
counted as reached); recomputed from the stage history

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"
STAGES = ("approach", "acquisition", "development", "retention", "loyalty")


def _recompute(column: str, filters: dict[str, str]) -> None:
    sets = ", ".join(f"{column.format(s)} = h.{s}" for s in STAGES)
    picks = ", ".join(f"min(entered_at) FILTER (WHERE {filters[s]}) AS {s}" for s in STAGES)
    op.execute(f"""UPDATE {SCHEMA}.funnel_entry f SET {sets}, updated_at = now()
                   FROM (SELECT customer_id, {picks} FROM {SCHEMA}.stage_history GROUP BY customer_id) h
                   WHERE h.customer_id = f.customer_id""")


def upgrade() -> None:
    for s in STAGES:
        op.alter_column("funnel_entry", f"reached_{s}_at", new_column_name=f"entered_{s}_at", schema=SCHEMA)
    _recompute("entered_{}_at", {s: f"stage = '{s}'" for s in STAGES})


def downgrade() -> None:
    for s in STAGES:
        op.alter_column("funnel_entry", f"entered_{s}_at", new_column_name=f"reached_{s}_at", schema=SCHEMA)
    later = {s: "stage IN ({})".format(", ".join(f"'{t}'" for t in STAGES[i:])) for i, s in enumerate(STAGES)}
    _recompute("reached_{}_at", later)
